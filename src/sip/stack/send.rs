//! Putting bytes on the wire: over a phone's own connection, a new TCP connection, or
//! UDP to where the phone's requests came from; and requests we originate as client
//! transactions.

use super::client::ClientEvent;
use super::request::{OwnDialog, via_transport};
use super::transport::Origin;
use super::{SERVER, SipStack};
use crate::domain::SipTransport;
use crate::sip::message::{Method, Name, Request};
use crate::sip::uri::Uri;
use crate::sync::MutexExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

impl SipStack {
    /// Sends on the way the message came: UDP to its source address, or its connection.
    pub fn send(&self, origin: Origin, bytes: Arc<[u8]>) {
        match (origin.transport, origin.flow) {
            (SipTransport::Udp, _) => {
                if let Err(e) = self.udp.try_send_to(&bytes, origin.remote) {
                    tracing::debug!(error = %e, sip.remote = %origin.remote, "udp send");
                }
            }
            (_, Some(flow)) => {
                self.flows.send(flow, bytes);
            }
            (_, None) => tracing::debug!(sip.remote = %origin.remote, "no connection to answer on"),
        }
    }

    /// Sends to a peer: over its connection for streams (a new one for TCP when there
    /// is none); for UDP to the address and port requests came from, whatever the Via
    /// says (phones behind NAT).
    pub fn send_to(self: &Arc<Self>, dest: Origin, bytes: Arc<[u8]>) {
        if dest.transport == SipTransport::Tcp && dest.flow.is_none_or(|f| !self.flows.is_open(f)) {
            let stack = self.clone();
            tokio::spawn(async move { stack.send_over_new_tcp(dest.remote, bytes).await });
            return;
        }
        self.send(dest, bytes);
    }

    async fn send_over_new_tcp(self: Arc<Self>, remote: SocketAddr, bytes: Arc<[u8]>) {
        let known = self.outbound.lock_unpoisoned().get(&remote).copied();
        if let Some(flow) = known.filter(|f| self.flows.is_open(*f)) {
            self.flows.send(flow, bytes);
            return;
        }
        let Some(sink) = self.sink.get().and_then(std::sync::Weak::upgrade) else {
            return; // not serving (yet, or any more)
        };
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(remote),
        )
        .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let flow = super::transport::serve_outbound_tcp(
                    stream,
                    remote,
                    &self.flows,
                    sink,
                    self.shutdown.clone(),
                );
                self.outbound.lock_unpoisoned().insert(remote, flow);
                self.flows.send(flow, bytes);
            }
            _ => tracing::debug!(sip.remote = %remote, "TCP connect failed"),
        }
    }

    /// A request we originate (BYE, NOTIFY, OPTIONS): our Via with a fresh branch,
    /// the dialog's From, To, Call-ID and CSeq. Returns it with its branch.
    pub fn own_request(
        &self,
        method: Method,
        uri: Uri,
        dialog: OwnDialog<'_>,
        transport: SipTransport,
    ) -> (Request, String) {
        let branch = format!("z9hG4bK-sb-{}", crate::ids::lower_alnum(16));
        let mut req = Request {
            method: method.clone(),
            uri,
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push(
            Name::Via,
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                via_transport(transport),
                self.advertise
            ),
        );
        req.headers.push(Name::From, dialog.from);
        req.headers.push(Name::To, dialog.to);
        req.headers.push(Name::CallId, dialog.call_id);
        req.headers
            .push(Name::CSeq, format!("{} {method}", dialog.cseq));
        req.headers.push(Name::MaxForwards, "70");
        req.headers.push(Name::UserAgent, SERVER);
        (req, branch)
    }

    /// Sends a request as a client transaction to `dest`.
    pub fn start_client(
        self: &Arc<Self>,
        request: Request,
        branch: String,
        dest: Origin,
    ) -> mpsc::Receiver<ClientEvent> {
        let stack = self.clone();
        let send: Arc<dyn Fn(Arc<[u8]>) + Send + Sync> =
            Arc::new(move |bytes| stack.send_to(dest, bytes));
        self.clients
            .start(request, branch, dest.transport.is_reliable(), send)
    }

    /// Sends one request of ours and returns its final status (None: no answer).
    pub async fn send_and_wait(
        self: &Arc<Self>,
        req: Request,
        branch: String,
        dest: Origin,
    ) -> Option<u16> {
        let mut events = self.start_client(req, branch, dest);
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Response(r) if r.status >= 200 => return Some(r.status),
                ClientEvent::Response(_) => {}
                ClientEvent::Timeout => return None,
            }
        }
        None
    }
}

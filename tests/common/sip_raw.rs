//! A minimal SIP client over a real UDP socket, for what SIPp cannot express (replays,
//! SHA-256 digests, exact timing). Shared by the tests and the benchmarks.

use std::net::SocketAddr;
use std::time::Duration;
use switchboard::auth::digest::{self, Algorithm, ResponseInput};

/// SIP credentials of an extension.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub number: String,
    pub username: String,
    pub password: String,
}

/// A minimal SIP client over a real UDP socket, for exact control of what is sent.
pub struct RawSip {
    pub socket: tokio::net::UdpSocket,
    pub server: SocketAddr,
    seq: std::sync::atomic::AtomicU32,
}

/// Header value by name from a raw message (first match, case-insensitive).
pub fn header<'m>(msg: &'m str, name: &str) -> Option<&'m str> {
    msg.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn headers<'m>(msg: &'m str, name: &'m str) -> impl Iterator<Item = &'m str> + 'm {
    msg.split("\r\n").filter_map(move |line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn status(msg: &str) -> u16 {
    msg.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn challenge_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split([',', ' ']).next()
    }
}

/// An `Authorization` value answering `challenge` (RFC 7616, qop=auth).
pub fn authorization(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let realm = challenge_param(challenge, "realm").unwrap();
    let nonce = challenge_param(challenge, "nonce").unwrap();
    let (algorithm, name) = match challenge_param(challenge, "algorithm") {
        Some("SHA-256") => (Algorithm::Sha256, "SHA-256"),
        _ => (Algorithm::Md5, "MD5"),
    };
    let ha1 = digest::ha1(algorithm, user, realm, password);
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let response = digest::response(
        algorithm,
        &ha1,
        &ResponseInput {
            nonce,
            nc: &nc,
            cnonce,
            qop: "auth",
            method,
            uri,
        },
    );
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={name}, cnonce=\"{cnonce}\", qop=auth, nc={nc}"
    )
}

impl RawSip {
    /// Binds to `ip` (any port) or to `ip:port`.
    pub async fn bind(ip: &str, server: SocketAddr) -> RawSip {
        let socket = match ip.parse::<SocketAddr>() {
            Ok(addr) => tokio::net::UdpSocket::bind(addr).await.unwrap(),
            Err(_) => tokio::net::UdpSocket::bind((ip, 0)).await.unwrap(),
        };
        RawSip {
            socket,
            server,
            seq: Default::default(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn send(&self, msg: &str) {
        self.socket
            .send_to(msg.as_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next message within `limit`, or `None`.
    pub async fn recv(&self, limit: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        match tokio::time::timeout(limit, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    /// Sends and waits for a final (non-1xx) response.
    pub async fn transact(&self, msg: &str) -> String {
        self.send(msg).await;
        loop {
            let resp = self
                .recv(Duration::from_secs(5))
                .await
                .expect("a response within 5 s");
            if status(&resp) >= 200 {
                return resp;
            }
        }
    }

    /// A REGISTER for `aor_user`, with optional extra header lines.
    pub fn register(&self, aor_user: &str, call_id: &str, contact: &str, extra: &str) -> String {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let local = self.local();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-raw-{call_id}-{seq};rport\r\n\
             From: <sip:{aor_user}@127.0.0.1>;tag=raw{seq}\r\n\
             To: <sip:{aor_user}@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {seq} REGISTER\r\n\
             Contact: {contact}\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: switchboard-tests\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    /// REGISTER, answer the challenge, return the final response.
    pub async fn register_with_auth(
        &self,
        account: &Account,
        aor_user: &str,
        call_id: &str,
        contact: &str,
        extra: &str,
    ) -> String {
        let first = self
            .transact(&self.register(aor_user, call_id, contact, extra))
            .await;
        assert_eq!(status(&first), 401, "{first}");
        let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
        let auth = authorization(
            &challenge,
            &account.username,
            &account.password,
            "REGISTER",
            "sip:127.0.0.1",
            1,
        );
        let second = self.register(
            aor_user,
            call_id,
            contact,
            &format!("{extra}Authorization: {auth}\r\n"),
        );
        self.transact(&second).await
    }
}

impl RawSip {
    /// An INVITE from `caller` to `dialled` with `extra` header lines and an SDP body
    /// offering PCMU from the port above ours.
    pub fn invite(&self, caller: &str, dialled: &str, call_id: &str, extra: &str) -> String {
        self.invite_with_body(caller, dialled, call_id, extra, &self.pcmu_offer())
    }

    /// SDP offering PCMU from the port above ours.
    pub fn pcmu_offer(&self) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
            self.local().port() + 1
        )
    }

    /// An INVITE with the SDP `sdp` (empty: none).
    pub fn invite_with_body(
        &self,
        caller: &str,
        dialled: &str,
        call_id: &str,
        extra: &str,
        sdp: &str,
    ) -> String {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let local = self.local();
        let content_type = if extra.contains("Content-Type:") || sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "INVITE sip:{dialled}@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-inv-{call_id}-{seq};rport\r\n\
             From: <sip:{caller}@127.0.0.1>;tag=inv{seq}\r\n\
             To: <sip:{dialled}@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {seq} INVITE\r\n\
             Contact: <sip:{caller}@{local}>\r\n\
             {extra}{content_type}Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// INVITE, answer the 407 (and ACK it), return the next final response.
    pub async fn invite_with_auth(
        &self,
        account: &Account,
        dialled: &str,
        call_id: &str,
        extra: &str,
    ) -> String {
        self.invite_with_auth_body(account, dialled, call_id, extra, &self.pcmu_offer())
            .await
    }

    /// As [`Self::invite_with_auth`], with the SDP `sdp`.
    pub async fn invite_with_auth_body(
        &self,
        account: &Account,
        dialled: &str,
        call_id: &str,
        extra: &str,
        sdp: &str,
    ) -> String {
        let first = self
            .transact(&self.invite_with_body(&account.number, dialled, call_id, extra, sdp))
            .await;
        if status(&first) != 407 {
            return first;
        }
        self.send(&ack_of(&first, dialled)).await;
        let challenge = header(&first, "Proxy-Authenticate").unwrap().to_owned();
        let auth = authorization(
            &challenge,
            &account.username,
            &account.password,
            "INVITE",
            &format!("sip:{dialled}@127.0.0.1"),
            1,
        );
        let second = self.invite_with_body(
            &account.number,
            dialled,
            call_id,
            &format!("{extra}Proxy-Authorization: {auth}\r\n"),
            sdp,
        );
        self.transact(&second).await
    }
}

/// The ACK for a non-2xx final response (same Via branch, To from the response).
pub fn ack_of(response: &str, dialled: &str) -> String {
    let via = header(response, "Via").unwrap_or_default();
    let from = header(response, "From").unwrap_or_default();
    let to = header(response, "To").unwrap_or_default();
    let call_id = header(response, "Call-ID").unwrap_or_default();
    let seq = header(response, "CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    format!(
        "ACK sip:{dialled}@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

impl RawSip {
    /// INVITE, answer the 407 (and ACK it), send the authorised INVITE and return it
    /// without waiting: the caller reads what comes back itself.
    pub async fn send_invite_with_auth(
        &self,
        account: &Account,
        dialled: &str,
        call_id: &str,
        extra: &str,
        sdp: &str,
    ) -> String {
        let first = self
            .transact(&self.invite_with_body(&account.number, dialled, call_id, extra, sdp))
            .await;
        assert_eq!(status(&first), 407, "{first}");
        self.send(&ack_of(&first, dialled)).await;
        let challenge = header(&first, "Proxy-Authenticate").unwrap().to_owned();
        let auth = authorization(
            &challenge,
            &account.username,
            &account.password,
            "INVITE",
            &format!("sip:{dialled}@127.0.0.1"),
            1,
        );
        let second = self.invite_with_body(
            &account.number,
            dialled,
            call_id,
            &format!("{extra}Proxy-Authorization: {auth}\r\n"),
            sdp,
        );
        self.send(&second).await;
        second
    }

    /// The next request with this method within 5 s (other messages are skipped).
    pub async fn expect_request(&self, method: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no {method} within 5 s"));
            if msg.starts_with(&format!("{method} ")) {
                return msg;
            }
        }
    }

    /// The next response with this status to a request of this method within 5 s
    /// (other messages are skipped).
    pub async fn expect_response(&self, code: u16, method: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no {code} to {method} within 5 s"));
            let cseq_method = header(&msg, "CSeq").and_then(|c| c.split_whitespace().nth(1));
            if msg.starts_with("SIP/2.0 ") && status(&msg) == code && cseq_method == Some(method) {
                return msg;
            }
        }
    }
}

/// A response to `request` as a phone sends it: Vias, Record-Routes, From, Call-ID and
/// CSeq copied, To tagged with `to_tag` unless it already has a tag (RFC 3261 §8.2.6).
pub fn reply(
    request: &str,
    code: u16,
    reason: &str,
    to_tag: &str,
    extra: &str,
    body: &str,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in headers(request, "Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for rr in headers(request, "Record-Route") {
        out.push_str(&format!("Record-Route: {rr}\r\n"));
    }
    let to = header(request, "To").unwrap_or_default();
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag={to_tag}")
    };
    for (name, value) in [
        ("From", header(request, "From").unwrap_or_default()),
        ("To", &to),
        ("Call-ID", header(request, "Call-ID").unwrap_or_default()),
        ("CSeq", header(request, "CSeq").unwrap_or_default()),
    ] {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    out.push_str(&format!(
        "{extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    out
}

/// One side's view of a dialog, enough to send requests within it (RFC 3261 §12.2.1).
pub struct DialogView {
    pub call_id: String,
    /// Our From value, with our tag.
    pub local: String,
    /// Our To value, with the peer's tag.
    pub remote: String,
    /// The peer's Contact URI: the Request-URI.
    pub target: String,
    /// Route values, in the order they are sent.
    pub route: Vec<String>,
}

fn uri_in(name_addr: &str) -> String {
    match (name_addr.find('<'), name_addr.find('>')) {
        (Some(a), Some(b)) if a < b => name_addr[a + 1..b].to_owned(),
        _ => name_addr
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

impl DialogView {
    /// The caller's view, from its INVITE and a response carrying the callee's tag.
    pub fn of_caller(invite: &str, response: &str) -> DialogView {
        let mut route: Vec<String> = headers(response, "Record-Route")
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect();
        route.reverse();
        DialogView {
            call_id: header(invite, "Call-ID").unwrap_or_default().to_owned(),
            local: header(invite, "From").unwrap_or_default().to_owned(),
            remote: header(response, "To").unwrap_or_default().to_owned(),
            target: uri_in(header(response, "Contact").unwrap_or_default()),
            route,
        }
    }

    /// The callee's view, from the INVITE it received and the tag it answered with.
    pub fn of_callee(invite: &str, local_tag: &str) -> DialogView {
        DialogView {
            call_id: header(invite, "Call-ID").unwrap_or_default().to_owned(),
            local: format!(
                "{};tag={local_tag}",
                header(invite, "To").unwrap_or_default()
            ),
            remote: header(invite, "From").unwrap_or_default().to_owned(),
            target: uri_in(header(invite, "Contact").unwrap_or_default()),
            route: headers(invite, "Record-Route")
                .flat_map(|v| v.split(','))
                .map(|v| v.trim().to_owned())
                .collect(),
        }
    }

    /// A request within the dialog, sent from `via` (our address), with CSeq `cseq`.
    pub fn request(
        &self,
        method: &str,
        cseq: u32,
        via: std::net::SocketAddr,
        extra: &str,
    ) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let branch = format!("z9hG4bK-dlg-{method}-{cseq}-{n}");
        let route: String = self
            .route
            .iter()
            .map(|r| format!("Route: {r}\r\n"))
            .collect();
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch};rport\r\n\
             {route}From: {local}\r\nTo: {remote}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            target = self.target,
            local = self.local,
            remote = self.remote,
            call_id = self.call_id,
        )
    }
}

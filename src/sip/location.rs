//! Where requests go: which PBX a SIP domain names, and how a registered device is
//! reached (RFC 3261's location service, over the bindings the registrar keeps).

use super::message::{Request, Response};
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::uri::Uri;
use crate::domain::Pbx;
use crate::domain::SipTransport;
use crate::service::{Binding, Services};
use std::sync::Arc;

/// The PBX whose SIP domain is `host` (the default PBX for this server's own
/// addresses); else the answer to send: `unknown` for a domain we do not serve, 500
/// when the store cannot say.
pub async fn pbx_for_host(
    stack: &SipStack,
    services: &Services,
    req: &Request,
    ctx: &RequestCtx,
    origin: Origin,
    host: &str,
    unknown: (u16, &str),
) -> Result<Arc<Pbx>, Box<Response>> {
    let found = match services.pbx_for_domain(host).await {
        Ok(None) if stack.is_own_host(host) => services.default_pbx().await,
        other => other,
    };
    match found {
        Ok(Some(pbx)) => Ok(pbx),
        Ok(None) => {
            tracing::debug!(sip.domain = %host, "request for a domain no PBX hosts");
            Err(Box::new(
                stack.response(req, ctx, origin, unknown.0, unknown.1),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "PBX lookup failed");
            Err(Box::new(stack.response(
                req,
                ctx,
                origin,
                500,
                "Server Internal Error",
            )))
        }
    }
}

/// A registered device: its contact as Request-URI; as destination its connection,
/// or over UDP the address its registration came from when the contact names another
/// (a phone behind NAT), else the contact's own address. `None` when it cannot be
/// reached (a browser or TLS phone whose connection is gone).
pub fn device_destination(stack: &SipStack, b: &Binding) -> Option<(Uri, Origin)> {
    let uri = Uri::parse(&b.device.contact).ok()?;
    let source_ip: std::net::IpAddr = b.device.source_ip.parse().ok()?;
    let contact_ip = uri
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let flow = b.flow.filter(|f| stack.is_flow_open(*f));
    // Without NAT in between (the contact names the address the registration came
    // from), the contact's own port is where the phone listens; a connection that
    // closed is reopened there.
    let remote = match contact_ip {
        Some(ip) if ip == source_ip && flow.is_none() => {
            std::net::SocketAddr::new(ip, uri.port.unwrap_or(5060))
        }
        _ => std::net::SocketAddr::new(source_ip, b.device.source_port),
    };
    let dest = Origin {
        transport: b.device.transport,
        remote,
        flow,
    };
    if (dest.transport.is_websocket() || dest.transport == SipTransport::Tls) && dest.flow.is_none()
    {
        // Browser and TLS phones are reached only over the connection they opened
        // (we hold no client certificate policy to open one to them).
        return None;
    }
    Some((uri, dest))
}

/// Where every live device of an extension is reached.
pub fn device_destinations(
    stack: &SipStack,
    services: &Services,
    extension_id: &str,
) -> Vec<(Uri, Origin)> {
    services
        .live_bindings(extension_id)
        .iter()
        .filter_map(|b| device_destination(stack, b))
        .collect()
}

//! The messages and close codes of the two GraphQL-over-websocket protocols:
//! `graphql-transport-ws` (graphql-ws's PROTOCOL.md) and the legacy `graphql-ws` of
//! subscriptions-transport-ws. Parsing and rendering only; the connection's state
//! machine is in [`super::ws`].

use async_graphql::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which protocol a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// `graphql-ws`: subscriptions-transport-ws, kept for older clients.
    Legacy,
}

impl Protocol {
    /// The subprotocol names we accept, preferred first.
    pub const NAMES: [&'static str; 2] = ["graphql-transport-ws", "graphql-ws"];

    pub fn from_name(name: &str) -> Option<Protocol> {
        if name.eq_ignore_ascii_case("graphql-transport-ws") {
            Some(Protocol::TransportWs)
        } else if name.eq_ignore_ascii_case("graphql-ws") {
            Some(Protocol::Legacy)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }
}

/// Close codes. graphql-transport-ws defines the 44xx ones; the legacy protocol defines
/// none, so it gets the same.
pub mod close {
    /// A message that is not JSON, of an unknown type, or missing a field.
    pub const INVALID_MESSAGE: u16 = 4400;
    /// `subscribe` before the connection was acknowledged.
    pub const UNAUTHORIZED: u16 = 4401;
    /// `connection_init` with a missing or refused credential.
    pub const FORBIDDEN: u16 = 4403;
    /// No accepted `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// `subscribe` with the id of an operation still running.
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The legacy `connection_terminate`.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// We could not check the credential (the database did not answer).
    pub const INTERNAL: u16 = 1011;
}

/// A client message, checked against the socket's protocol.
#[derive(Debug)]
pub enum ClientMessage {
    /// `connection_init`; the payload is an object or `Null`.
    Init(Value),
    Ping,
    Pong,
    /// `subscribe` (legacy: `start`).
    Subscribe {
        id: String,
        request: Box<Request>,
    },
    /// `complete` (legacy: `stop`).
    Complete {
        id: String,
    },
    /// Legacy `connection_terminate`.
    Terminate,
}

/// Every message type either protocol knows, as it arrives.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    ConnectionInit {
        #[serde(default)]
        payload: Value,
    },
    Ping {},
    Pong {},
    Subscribe {
        id: String,
        payload: Box<Request>,
    },
    Complete {
        id: String,
    },
    Start {
        id: String,
        payload: Box<Request>,
    },
    Stop {
        id: String,
    },
    ConnectionTerminate,
}

impl Wire {
    fn kind(&self) -> &'static str {
        match self {
            Wire::ConnectionInit { .. } => "connection_init",
            Wire::Ping {} => "ping",
            Wire::Pong {} => "pong",
            Wire::Subscribe { .. } => "subscribe",
            Wire::Complete { .. } => "complete",
            Wire::Start { .. } => "start",
            Wire::Stop { .. } => "stop",
            Wire::ConnectionTerminate => "connection_terminate",
        }
    }
}

/// Parses one client message; `Err` carries the reason for closing with
/// [`close::INVALID_MESSAGE`].
pub fn parse(protocol: Protocol, bytes: &[u8]) -> Result<ClientMessage, String> {
    let wire: Wire =
        serde_json::from_slice(bytes).map_err(|e| format!("Invalid message received: {e}"))?;
    Ok(match (protocol, wire) {
        (_, Wire::ConnectionInit { payload }) => {
            if !(payload.is_object() || payload.is_null()) {
                return Err("The connection_init payload must be an object".to_owned());
            }
            ClientMessage::Init(payload)
        }
        (Protocol::TransportWs, Wire::Ping {}) => ClientMessage::Ping,
        (Protocol::TransportWs, Wire::Pong {}) => ClientMessage::Pong,
        (Protocol::TransportWs, Wire::Subscribe { id, payload })
        | (Protocol::Legacy, Wire::Start { id, payload }) => ClientMessage::Subscribe {
            id,
            request: payload,
        },
        (Protocol::TransportWs, Wire::Complete { id }) | (Protocol::Legacy, Wire::Stop { id }) => {
            ClientMessage::Complete { id }
        }
        (Protocol::Legacy, Wire::ConnectionTerminate) => ClientMessage::Terminate,
        (protocol, other) => {
            return Err(format!(
                "\"{}\" is not a {} message",
                other.kind(),
                protocol.name()
            ));
        }
    })
}

/// Server messages without a variable part.
pub const CONNECTION_ACK: &str = r#"{"type":"connection_ack"}"#;
pub const PONG: &str = r#"{"type":"pong"}"#;

#[derive(Serialize)]
struct Outgoing<'a, P> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

/// One result of operation `id`: `next` (legacy: `data`).
pub fn next(protocol: Protocol, id: &str, response: &Response) -> serde_json::Result<String> {
    let kind = match protocol {
        Protocol::TransportWs => "next",
        Protocol::Legacy => "data",
    };
    serde_json::to_string(&Outgoing {
        kind,
        id: Some(id),
        payload: Some(response),
    })
}

/// Operation `id` is over.
pub fn complete(id: &str) -> serde_json::Result<String> {
    serde_json::to_string(&Outgoing::<()> {
        kind: "complete",
        id: Some(id),
        payload: None,
    })
}

/// The legacy protocol's refusal of a `connection_init`.
pub fn connection_error(message: &str) -> serde_json::Result<String> {
    serde_json::to_string(&Outgoing {
        kind: "connection_error",
        id: None,
        payload: Some(serde_json::json!({ "message": message })),
    })
}

/// A close frame's reason may hold 123 bytes (RFC 6455 §5.5: a control frame carries
/// 125, two of them the code).
pub fn close_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(protocol: Protocol, text: &str) -> Result<ClientMessage, String> {
        parse(protocol, text.as_bytes())
    }

    #[test]
    fn each_protocol_takes_its_own_message_types_only() {
        use Protocol::{Legacy, TransportWs};
        let subscribe = r#"{"id":"1","type":"subscribe","payload":{"query":"{ a }"}}"#;
        let start = r#"{"id":"1","type":"start","payload":{"query":"{ a }"}}"#;
        assert!(matches!(
            parsed(TransportWs, subscribe),
            Ok(ClientMessage::Subscribe { id, .. }) if id == "1"
        ));
        assert!(matches!(
            parsed(Legacy, start),
            Ok(ClientMessage::Subscribe { .. })
        ));
        assert!(parsed(TransportWs, start).is_err());
        assert!(parsed(Legacy, subscribe).is_err());
        assert!(matches!(
            parsed(TransportWs, r#"{"type":"complete","id":"1"}"#),
            Ok(ClientMessage::Complete { .. })
        ));
        assert!(matches!(
            parsed(Legacy, r#"{"type":"stop","id":"1"}"#),
            Ok(ClientMessage::Complete { .. })
        ));
        assert!(matches!(
            parsed(TransportWs, r#"{"type":"ping","payload":{"a":1}}"#),
            Ok(ClientMessage::Ping)
        ));
        assert!(parsed(Legacy, r#"{"type":"ping"}"#).is_err());
        assert!(matches!(
            parsed(Legacy, r#"{"type":"connection_terminate"}"#),
            Ok(ClientMessage::Terminate)
        ));
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let tw = Protocol::TransportWs;
        for bad in [
            "not json",
            r#"{"id":"1"}"#,
            r#"{"type":"subscribe","payload":{"query":"{ a }"}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":1}}"#,
            r#"{"type":"what"}"#,
            r#"{"type":"connection_init","payload":"token"}"#,
        ] {
            let reason = parsed(tw, bad).expect_err(bad);
            assert!(!reason.is_empty());
        }
        assert!(matches!(
            parsed(tw, r#"{"type":"connection_init"}"#),
            Ok(ClientMessage::Init(Value::Null))
        ));
    }

    #[test]
    fn server_messages_have_the_protocol_shape() {
        let response = Response::new(async_graphql::Value::Null);
        assert_eq!(
            next(Protocol::TransportWs, "7", &response).unwrap(),
            r#"{"type":"next","id":"7","payload":{"data":null}}"#
        );
        assert_eq!(
            next(Protocol::Legacy, "7", &response).unwrap(),
            r#"{"type":"data","id":"7","payload":{"data":null}}"#
        );
        assert_eq!(complete("7").unwrap(), r#"{"type":"complete","id":"7"}"#);
        assert_eq!(
            connection_error("no").unwrap(),
            r#"{"type":"connection_error","payload":{"message":"no"}}"#
        );
    }

    #[test]
    fn close_reasons_are_cut_to_fit_a_control_frame() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut));
        assert_eq!(close_reason("short"), "short");
    }
}

//! Where an incoming call to an extension goes: one pure function, in the order the
//! product defines.
//!
//! 1. DND → voicemail (486 Busy Here when voicemail is off);
//! 2. no live device → voicemail, else the forwarding number, else 480;
//! 3. otherwise ring every device for the ring timeout, then the forwarding number if
//!    set, else voicemail if enabled, else 480. Busy extensions still ring (call waiting).

use super::ExtensionType;

/// What an extension's settings and live state say about an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    pub kind: ExtensionType,
    pub dnd: bool,
    pub live_devices: u32,
    pub voicemail_enabled: bool,
    pub forwarding_number: Option<String>,
    pub ring_timeout_secs: u8,
}

/// A final routing outcome (no device rings, or ringing is over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Voicemail,
    Forward(String),
    /// A SIP status code and its reason phrase.
    Reject(u16, &'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Ring every live device for `timeout_secs`, then `then`.
    Ring { timeout_secs: u8, then: Fallback },
    /// Do not ring: go straight to the fallback.
    Direct(Fallback),
    /// A conference extension: the caller joins its room.
    Conference,
    /// Parking and paging extensions are not served yet.
    NotImplemented,
}

pub fn decide(target: &CallTarget) -> RouteDecision {
    match target.kind {
        ExtensionType::User => {}
        ExtensionType::Conference => return RouteDecision::Conference,
        _ => return RouteDecision::NotImplemented,
    }
    if target.dnd {
        return RouteDecision::Direct(if target.voicemail_enabled {
            Fallback::Voicemail
        } else {
            Fallback::Reject(486, "Busy Here")
        });
    }
    if target.live_devices == 0 {
        return RouteDecision::Direct(if target.voicemail_enabled {
            Fallback::Voicemail
        } else if let Some(number) = &target.forwarding_number {
            Fallback::Forward(number.clone())
        } else {
            Fallback::Reject(480, "Temporarily Unavailable")
        });
    }
    RouteDecision::Ring {
        timeout_secs: target.ring_timeout_secs,
        then: if let Some(number) = &target.forwarding_number {
            Fallback::Forward(number.clone())
        } else if target.voicemail_enabled {
            Fallback::Voicemail
        } else {
            Fallback::Reject(480, "Temporarily Unavailable")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> CallTarget {
        CallTarget {
            kind: ExtensionType::User,
            dnd: false,
            live_devices: 1,
            voicemail_enabled: true,
            forwarding_number: None,
            ring_timeout_secs: 20,
        }
    }

    #[test]
    fn dnd_goes_to_voicemail_or_busy() {
        let t = CallTarget {
            dnd: true,
            ..target()
        };
        assert_eq!(decide(&t), RouteDecision::Direct(Fallback::Voicemail));
        let t = CallTarget {
            voicemail_enabled: false,
            ..t
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Direct(Fallback::Reject(486, "Busy Here"))
        );
        let t = CallTarget {
            forwarding_number: Some("102".into()),
            ..t
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Direct(Fallback::Reject(486, "Busy Here")),
            "DND wins over forwarding"
        );
    }

    #[test]
    fn no_device_goes_to_voicemail_then_forwarding_then_480() {
        let t = CallTarget {
            live_devices: 0,
            ..target()
        };
        assert_eq!(decide(&t), RouteDecision::Direct(Fallback::Voicemail));
        let t = CallTarget {
            voicemail_enabled: false,
            forwarding_number: Some("5551234567".into()),
            ..t
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Direct(Fallback::Forward("5551234567".into()))
        );
        let t = CallTarget {
            forwarding_number: None,
            ..t
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Direct(Fallback::Reject(480, "Temporarily Unavailable"))
        );
    }

    #[test]
    fn ringing_falls_back_to_forwarding_then_voicemail_then_480() {
        let t = CallTarget {
            forwarding_number: Some("102".into()),
            ring_timeout_secs: 15,
            ..target()
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Ring {
                timeout_secs: 15,
                then: Fallback::Forward("102".into())
            }
        );
        assert_eq!(
            decide(&target()),
            RouteDecision::Ring {
                timeout_secs: 20,
                then: Fallback::Voicemail
            }
        );
        let t = CallTarget {
            voicemail_enabled: false,
            ..target()
        };
        assert_eq!(
            decide(&t),
            RouteDecision::Ring {
                timeout_secs: 20,
                then: Fallback::Reject(480, "Temporarily Unavailable")
            }
        );
    }

    #[test]
    fn conferences_join_their_room_and_parking_and_paging_are_not_served_yet() {
        let conference = CallTarget {
            kind: ExtensionType::Conference,
            ..target()
        };
        assert_eq!(decide(&conference), RouteDecision::Conference);
        for kind in [ExtensionType::Parking, ExtensionType::Paging] {
            assert_eq!(
                decide(&CallTarget { kind, ..target() }),
                RouteDecision::NotImplemented
            );
        }
    }
}

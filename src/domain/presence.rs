//! Presence: derived, never typed in twice.
//!
//! `status = derive_status(manual state, active calls, live registrations)`. The rule's
//! order is a product decision:
//! 1. `dnd` wins over everything: it also changes routing (calls go to voicemail), so a
//!    receptionist must see it even while the person is on a call or has no phone up;
//! 2. no live registration → `offline` (nobody can be reached, whatever they said);
//! 3. an answered call → `busy` (more telling than `away`);
//! 4. `away` if set, else `available`.
//!
//! A conference extension follows its room instead ([`room_status`]): `busy` while
//! anyone is in it, `available` while empty.

use serde::Serialize;

/// The presence a person sees on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Available,
    Busy,
    Away,
    Dnd,
    Offline,
}

impl PresenceStatus {
    pub const ALL: [PresenceStatus; 5] = [
        Self::Available,
        Self::Busy,
        Self::Away,
        Self::Dnd,
        Self::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Busy => "busy",
            Self::Away => "away",
            Self::Dnd => "dnd",
            Self::Offline => "offline",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The part of presence a person sets by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManualPresence {
    Away,
    Dnd,
}

impl ManualPresence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Away => "away",
            Self::Dnd => "dnd",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "away" => Some(Self::Away),
            "dnd" => Some(Self::Dnd),
            _ => None,
        }
    }
}

/// What a client may set: `Available` clears the manual state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum PresenceSetting {
    Available,
    Away,
    Dnd,
}

impl PresenceSetting {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "available" => Some(Self::Available),
            "away" => Some(Self::Away),
            "dnd" => Some(Self::Dnd),
            _ => None,
        }
    }

    pub fn manual(self) -> Option<ManualPresence> {
        match self {
            Self::Available => None,
            Self::Away => Some(ManualPresence::Away),
            Self::Dnd => Some(ManualPresence::Dnd),
        }
    }
}

/// A conference extension's status follows its room: `busy` while anyone is in it,
/// `available` while it is empty. Never `offline` (a room needs no phone), never
/// `away` or `dnd` (nobody sets those on a room).
pub fn room_status(participants: usize) -> PresenceStatus {
    if participants > 0 {
        PresenceStatus::Busy
    } else {
        PresenceStatus::Available
    }
}

/// The one place presence is computed.
pub fn derive_status(
    manual: Option<ManualPresence>,
    active_calls: u32,
    live_registrations: u32,
) -> PresenceStatus {
    match manual {
        Some(ManualPresence::Dnd) => PresenceStatus::Dnd,
        _ if live_registrations == 0 => PresenceStatus::Offline,
        _ if active_calls > 0 => PresenceStatus::Busy,
        Some(ManualPresence::Away) => PresenceStatus::Away,
        None => PresenceStatus::Available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PresenceStatus::*;

    /// Every combination of the three inputs, with small and large counts.
    #[test]
    fn derive_status_covers_every_combination() {
        let manuals = [None, Some(ManualPresence::Away), Some(ManualPresence::Dnd)];
        for manual in manuals {
            for calls in [0, 1, 7] {
                for regs in [0, 1, 10] {
                    let expected = match (manual, calls, regs) {
                        (Some(ManualPresence::Dnd), _, _) => Dnd,
                        (_, _, 0) => Offline,
                        (_, c, _) if c > 0 => Busy,
                        (Some(ManualPresence::Away), _, _) => Away,
                        (None, _, _) => Available,
                    };
                    assert_eq!(
                        derive_status(manual, calls, regs),
                        expected,
                        "{manual:?} calls={calls} regs={regs}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_room_is_busy_while_occupied_and_available_when_empty() {
        assert_eq!(room_status(0), Available);
        assert_eq!(room_status(1), Busy);
        assert_eq!(room_status(50), Busy);
    }

    #[test]
    fn dnd_beats_busy_and_offline() {
        assert_eq!(derive_status(Some(ManualPresence::Dnd), 1, 1), Dnd);
        assert_eq!(derive_status(Some(ManualPresence::Dnd), 0, 0), Dnd);
    }

    #[test]
    fn busy_beats_away_but_not_offline() {
        assert_eq!(derive_status(Some(ManualPresence::Away), 1, 1), Busy);
        assert_eq!(derive_status(Some(ManualPresence::Away), 1, 0), Offline);
        assert_eq!(derive_status(Some(ManualPresence::Away), 0, 2), Away);
    }

    #[test]
    fn no_devices_means_offline_and_one_device_means_available() {
        assert_eq!(derive_status(None, 0, 0), Offline);
        assert_eq!(derive_status(None, 0, 1), Available);
    }

    #[test]
    fn status_names_round_trip() {
        for s in PresenceStatus::ALL {
            assert_eq!(PresenceStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PresenceStatus::parse("Busy"), None);
    }

    #[test]
    fn setting_available_clears_the_manual_state() {
        assert_eq!(PresenceSetting::Available.manual(), None);
        assert_eq!(PresenceSetting::Dnd.manual(), Some(ManualPresence::Dnd));
        assert_eq!(PresenceSetting::parse("away"), Some(PresenceSetting::Away));
        assert_eq!(PresenceSetting::parse("busy"), None);
    }
}

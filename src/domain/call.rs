//! Calls: their record (who, when, how it ended) and live state.

use serde::Serialize;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

wire_enum!(
    /// Where a call comes from and goes to.
    CallDirection { Internal = "internal", Inbound = "inbound", Outbound = "outbound" }
);

wire_enum!(
    /// A call's live state.
    CallState { Ringing = "ringing", Answered = "answered", Ended = "ended" }
);

wire_enum!(
    /// How a call ended.
    Disposition {
        Answered = "answered",
        NoAnswer = "no-answer",
        Busy = "busy",
        Cancelled = "cancelled",
        Voicemail = "voicemail",
        Forwarded = "forwarded",
        Failed = "failed",
    }
);

wire_enum!(
    /// Who ended a call.
    HangupSide { Caller = "caller", Callee = "callee", System = "system" }
);

/// A call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: String,
    pub pbx_id: String,
    pub sip_call_id: String,
    pub direction: CallDirection,
    pub caller_extension_id: Option<String>,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub callee_extension_id: Option<String>,
    pub callee_number: String,
    pub callee_name: Option<String>,
    pub state: CallState,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// The device that answered.
    pub answered_by: Option<String>,
    pub disposition: Option<Disposition>,
    pub hangup_side: Option<HangupSide>,
    /// Why the system ended it, when it did (`max-duration`, `probe-failed`, …).
    pub end_reason: Option<String>,
    pub forwarded_to: Option<String>,
    pub node_id: String,
}

impl Call {
    pub fn is_active(&self) -> bool {
        self.state != CallState::Ended
    }

    /// Extensions on this call (caller and callee, when they are extensions).
    pub fn extension_ids(&self) -> impl Iterator<Item = &str> {
        self.caller_extension_id
            .as_deref()
            .into_iter()
            .chain(self.callee_extension_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for d in [
            Disposition::Answered,
            Disposition::NoAnswer,
            Disposition::Busy,
            Disposition::Cancelled,
            Disposition::Voicemail,
            Disposition::Forwarded,
            Disposition::Failed,
        ] {
            assert_eq!(Disposition::parse(d.as_str()), Some(d));
        }
        assert_eq!(Disposition::NoAnswer.as_str(), "no-answer");
        assert_eq!(
            serde_json::to_string(&Disposition::NoAnswer).unwrap(),
            "\"no-answer\""
        );
        assert_eq!(CallState::parse("answered"), Some(CallState::Answered));
        assert_eq!(HangupSide::parse("nobody"), None);
    }
}

//! Extensions: the numbers people dial, and the rules their fields follow.

use super::text::parse_name;
use super::{ManualPresence, ValidationError};
use serde::Serialize;

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// An extension number: 2 to 5 digits, unique within its PBX.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionNumber(String);

impl ExtensionNumber {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !all_digits(raw) || !(2..=5).contains(&raw.len()) {
            return Err(ValidationError::new("number", "must be 2 to 5 digits"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A person-readable name: 1 to 64 characters once trimmed, at least one visible, with
/// no control, bidirectional-control or line-separator characters (see
/// [`super::text::parse_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionName(String);

impl ExtensionName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        parse_name("name", raw).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The name shown to people this extension calls: same rule as the extension name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdName(String);

impl CallerIdName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        parse_name("callerIdName", raw).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The number presented on outside calls: E.164 (`+`, a first digit 1–9, then up to 14
/// more: 15 digits at most) or a national number of 3 to 15 digits (any first digit,
/// as `0` starts national numbers in much of the world). Nothing else: no spaces,
/// dashes or brackets, which carriers would not take in a `From` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdNumber(String);

impl CallerIdNumber {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = match raw.strip_prefix('+') {
            Some(e164) => {
                all_digits(e164) && (2..=15).contains(&e164.len()) && !e164.starts_with('0')
            }
            None => all_digits(raw) && (3..=15).contains(&raw.len()),
        };
        if !ok {
            return Err(ValidationError::new(
                "callerIdNumber",
                "must be an E.164 number (+ then 2 to 15 digits, not starting with 0) \
                 or a national number of 3 to 15 digits",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Where unanswered calls go: another extension (2–5 digits) or an outside number
/// (up to 15 digits, E.164's limit, with an optional leading `+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingNumber(String);

impl ForwardingNumber {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        if !all_digits(digits) || !(2..=15).contains(&digits.len()) {
            return Err(ValidationError::new(
                "forwardingNumber",
                "must be 2 to 15 digits, optionally starting with +",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Seconds an extension rings before forwarding or voicemail: 5 to 60.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingTimeout(u8);

impl RingTimeout {
    pub const DEFAULT: RingTimeout = RingTimeout(20);

    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        match u8::try_from(raw) {
            Ok(secs) if (5..=60).contains(&secs) => Ok(Self(secs)),
            _ => Err(ValidationError::new(
                "forwardingRingTimeout",
                "must be between 5 and 60 seconds",
            )),
        }
    }

    pub fn seconds(self) -> u8 {
        self.0
    }
}

/// Digits a caller enters (RFC 4733, then `#`) before joining a conference room: 4 to
/// 8 ASCII digits. Kept as a string: leading zeros count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferencePin(String);

impl ConferencePin {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !all_digits(raw) || !(4..=8).contains(&raw.len()) {
            return Err(ValidationError::new(
                "conferencePin",
                "must be 4 to 8 digits (0-9)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Callers a conference room takes at once: 1 to 500 ([`DEFAULT_MAX_PARTICIPANTS`]
/// when not set); one more gets 486.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxParticipants(u16);

impl MaxParticipants {
    pub const DEFAULT: MaxParticipants = MaxParticipants(DEFAULT_MAX_PARTICIPANTS);

    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        match u16::try_from(raw) {
            Ok(n) if (1..=500).contains(&n) => Ok(Self(n)),
            _ => Err(ValidationError::new(
                "maxParticipants",
                "must be between 1 and 500",
            )),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// What an extension is for. Only `user` extensions have phones that ring.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionType {
    User,
    Conference,
    Parking,
    Paging,
}

impl ExtensionType {
    pub const ALL: [ExtensionType; 4] = [Self::User, Self::Conference, Self::Parking, Self::Paging];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Conference => "conference",
            Self::Parking => "parking",
            Self::Paging => "paging",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                ValidationError::new("type", "must be one of user, conference, parking, paging")
            })
    }
}

/// An extension as stored. Presence status is not here: it is derived (see
/// [`super::derive_status`]) from `manual_presence` and live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub id: String,
    pub pbx_id: String,
    pub number: String,
    pub name: String,
    pub kind: ExtensionType,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub voicemail_enabled: bool,
    pub forwarding_number: Option<String>,
    pub forwarding_ring_timeout: u8,
    pub manual_presence: Option<ManualPresence>,
    pub sip_username: String,
    /// Conference extensions: digits a caller enters (RFC 4733) before joining.
    pub conference_pin: Option<String>,
    /// Conference extensions: callers in the room at once; one more gets 486.
    pub max_participants: u16,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Room size when none is set.
pub const DEFAULT_MAX_PARTICIPANTS: u16 = 50;

/// `id`, `number` and `name` of an extension: how events and listings name the
/// extension they are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRef {
    pub id: String,
    pub number: String,
    pub name: String,
}

impl ExtensionRef {
    pub fn new(id: impl Into<String>, number: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            number: number.into(),
            name: name.into(),
        }
    }
}

impl From<&Extension> for ExtensionRef {
    fn from(ext: &Extension) -> Self {
        Self::new(&ext.id, &ext.number, &ext.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_accepts_two_to_five_digits() {
        for ok in ["10", "101", "1001", "99999", "00"] {
            assert!(ExtensionNumber::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn number_rejects_letters_signs_and_wrong_lengths() {
        for bad in ["", "1", "123456", "10a", "+101", " 101", "10 1", "١٠١"] {
            let err = ExtensionNumber::parse(bad).expect_err(bad);
            assert_eq!(err.field, "number");
        }
    }

    #[test]
    fn name_is_trimmed_and_limited_to_64_printable_chars() {
        assert_eq!(ExtensionName::parse("  Zoë  ").unwrap().into_inner(), "Zoë");
        assert!(ExtensionName::parse(&"é".repeat(64)).is_ok());
        assert!(ExtensionName::parse(&"é".repeat(65)).is_err());
        assert!(ExtensionName::parse("   ").is_err());
        assert!(ExtensionName::parse("Bob\nSmith").is_err());
        assert!(ExtensionName::parse("Bob\u{7}").is_err());
    }

    #[test]
    fn names_and_caller_id_names_refuse_spoofing_and_blank_characters() {
        // The rules themselves are tested in `text`; both types apply them.
        for raw in [
            "\u{202E}ecilA",
            "\u{200B}\u{200B}",
            "Bob\u{2028}",
            "\u{2066}x\u{2069}",
        ] {
            assert_eq!(ExtensionName::parse(raw).unwrap_err().field, "name");
            assert_eq!(CallerIdName::parse(raw).unwrap_err().field, "callerIdName");
        }
        assert!(CallerIdName::parse("Acme Sales").is_ok());
    }

    #[test]
    fn caller_id_number_is_e164_or_national() {
        for ok in [
            "5551234567",
            "+15551234567",
            "+442071234567",
            "02071234567",
            "112",
            "+49",
            "123456789012345",
            "+123456789012345",
        ] {
            assert!(CallerIdNumber::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "12",
            "+",
            "+1",
            "+0441234567",
            "1234567890123456",
            "+1234567890123456",
            "555-123-4567",
            "(555) 1234567",
            "+1 555 123 4567",
            "++15551234567",
            "15551234567+",
            "555123456a",
            "١٢٣٤٥",
        ] {
            assert_eq!(
                CallerIdNumber::parse(bad).unwrap_err().field,
                "callerIdNumber",
                "{bad}"
            );
        }
    }

    #[test]
    fn forwarding_number_allows_plus_and_up_to_fifteen_digits() {
        assert!(ForwardingNumber::parse("102").is_ok());
        assert!(ForwardingNumber::parse("+442071234567").is_ok());
        assert!(ForwardingNumber::parse("123456789012345").is_ok());
        for bad in ["1", "1234567890123456", "+", "12a4", "++12", "12+3"] {
            assert_eq!(
                ForwardingNumber::parse(bad).unwrap_err().field,
                "forwardingNumber"
            );
        }
    }

    #[test]
    fn ring_timeout_is_between_5_and_60_seconds() {
        assert_eq!(RingTimeout::parse(5).unwrap().seconds(), 5);
        assert_eq!(RingTimeout::parse(60).unwrap().seconds(), 60);
        for bad in [4, 61, -1, 300, i64::MAX] {
            assert!(RingTimeout::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(RingTimeout::DEFAULT.seconds(), 20);
    }

    #[test]
    fn conference_pin_is_four_to_eight_ascii_digits() {
        for ok in ["0000", "0123", "12345678"] {
            assert_eq!(ConferencePin::parse(ok).unwrap().into_inner(), ok);
        }
        for bad in [
            "",
            "12",
            "123",
            "123456789",
            "12a4",
            " 1234",
            "12 34",
            "١٢٣٤",
            "+1234",
        ] {
            assert_eq!(
                ConferencePin::parse(bad).unwrap_err().field,
                "conferencePin",
                "{bad}"
            );
        }
    }

    #[test]
    fn max_participants_is_between_1_and_500() {
        assert_eq!(MaxParticipants::parse(1).unwrap().get(), 1);
        assert_eq!(MaxParticipants::parse(500).unwrap().get(), 500);
        for bad in [0, 501, -1, 70_000, i64::MAX] {
            assert_eq!(
                MaxParticipants::parse(bad).unwrap_err().field,
                "maxParticipants",
                "{bad}"
            );
        }
        assert_eq!(MaxParticipants::DEFAULT.get(), DEFAULT_MAX_PARTICIPANTS);
    }

    #[test]
    fn type_parses_the_four_kinds_in_lowercase_only() {
        assert_eq!(
            ExtensionType::parse("paging").unwrap(),
            ExtensionType::Paging
        );
        assert!(ExtensionType::parse("User").is_err());
        assert!(ExtensionType::parse("queue").is_err());
    }
}

//! Voicemail: mailboxes (one per extension with voicemail on), the rules of their
//! settings, and messages.

use super::ValidationError;
use sha2::{Digest, Sha256};

/// The longest message a mailbox records unless told otherwise.
pub const DEFAULT_MAX_MESSAGE_SECONDS: u32 = 120;
/// How long messages are kept unless told otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Uploaded greetings longer than this are refused.
pub const MAX_GREETING_SECONDS: u32 = 120;

/// The id of the mailbox of extension `number`: `vm_<number>`.
pub fn mailbox_id(number: &str) -> String {
    format!("vm_{number}")
}

/// The extension number a mailbox id names; `None` for anything that is no mailbox id.
pub fn mailbox_number(id: &str) -> Option<&str> {
    id.strip_prefix("vm_")
}

/// A mailbox as the API shows it (the PIN never leaves the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: String,
    pub pbx_id: String,
    pub extension_id: String,
    pub extension_number: String,
    pub extension_name: String,
    pub message_count: u32,
    pub new_messages: u32,
    pub greeting: GreetingType,
    pub notify_email: Option<String>,
    /// Whether a PIN is set (the PIN itself is never shown).
    pub pin_set: bool,
    pub max_message_seconds: u32,
    pub retention_days: u32,
}

/// A recorded message; its audio is a file the service layer keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailMessage {
    pub id: String,
    pub mailbox_id: String,
    pub extension_id: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
    pub heard: bool,
}

/// What callers hear before the beep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum GreetingType {
    /// The shipped prompt.
    Default,
    /// A WAV uploaded for this mailbox.
    Custom,
}

impl GreetingType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Custom => "custom",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "default" => Ok(Self::Default),
            "custom" => Ok(Self::Custom),
            _ => Err(ValidationError::new(
                "greetingType",
                "must be default or custom",
            )),
        }
    }
}

/// The PIN that opens a mailbox from a phone: 4 to 8 digits, kept as a string so
/// leading zeros count. Stored only as a salted hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !(4..=8).contains(&raw.len()) || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new("pin", "must be 4 to 8 digits"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// `<salt hex>$<sha256(salt ‖ pin) hex>`, with a fresh random salt.
    pub fn hash(&self) -> String {
        let salt: [u8; 16] = rand::random();
        let hash = Sha256::digest([&salt[..], self.0.as_bytes()].concat());
        format!("{}${}", hex::encode(salt), hex::encode(hash))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(…)")
    }
}

/// Whether `pin` matches a stored hash (for phone access to the mailbox).
pub fn pin_matches(stored: &str, pin: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some((salt, hash)) = stored.split_once('$') else {
        return false;
    };
    let Ok(salt) = hex::decode(salt) else {
        return false;
    };
    let computed = hex::encode(Sha256::digest([&salt[..], pin.as_bytes()].concat()));
    computed.as_bytes().ct_eq(hash.as_bytes()).into()
}

/// The longest message a mailbox records: 10 to 600 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMessageSeconds(u32);

impl MaxMessageSeconds {
    pub const DEFAULT: Self = Self(DEFAULT_MAX_MESSAGE_SECONDS);

    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        match u32::try_from(raw) {
            Ok(secs) if (10..=600).contains(&secs) => Ok(Self(secs)),
            _ => Err(ValidationError::new(
                "maxMessageSeconds",
                "must be between 10 and 600",
            )),
        }
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

/// How long a mailbox keeps messages: 1 to 3650 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub const DEFAULT: Self = Self(DEFAULT_RETENTION_DAYS);

    pub fn parse(raw: i64) -> Result<Self, ValidationError> {
        match u32::try_from(raw) {
            Ok(days) if (1..=3650).contains(&days) => Ok(Self(days)),
            _ => Err(ValidationError::new(
                "retentionDays",
                "must be between 1 and 3650",
            )),
        }
    }

    pub fn days(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_salted_hashes_that_still_verify() {
        let a = Pin::parse("1234").unwrap().hash();
        let b = Pin::parse("1234").unwrap().hash();
        assert_ne!(a, b, "salted");
        assert!(!a.contains("1234"));
        assert!(pin_matches(&a, "1234"));
        assert!(!pin_matches(&a, "1235"));
        assert!(!pin_matches("garbage", "1234"));
    }

    #[test]
    fn pins_are_four_to_eight_digits() {
        for ok in ["0042", "12345678"] {
            assert!(Pin::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["123", "123456789", "12a4", "12 4", ""] {
            assert_eq!(Pin::parse(bad).unwrap_err().field, "pin", "{bad}");
        }
    }

    #[test]
    fn message_length_and_retention_have_ranges() {
        assert_eq!(MaxMessageSeconds::parse(60).unwrap().seconds(), 60);
        for bad in [9, 601, -1, i64::MAX] {
            assert!(MaxMessageSeconds::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(RetentionDays::parse(3650).unwrap().days(), 3650);
        for bad in [0, 3651, -5] {
            assert!(RetentionDays::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mailbox_ids_name_the_extension_number() {
        assert_eq!(mailbox_id("101"), "vm_101");
        assert_eq!(mailbox_number("vm_101"), Some("101"));
        assert_eq!(mailbox_number("101"), None);
        assert_eq!(GreetingType::parse("default"), Ok(GreetingType::Default));
        assert!(GreetingType::parse("loud").is_err());
    }
}

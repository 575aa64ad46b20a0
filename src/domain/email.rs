//! Email addresses the server sends to (voicemail notifications): exactly one mailbox.

use super::ValidationError;

/// Longest address SMTP carries in a path (RFC 5321 §4.5.3.1.3: 256 octets with the
/// angle brackets).
const MAX_EMAIL_BYTES: usize = 254;

/// One email address as an `addr-spec` (`local@domain`, RFC 5322 §3.4.1): no display
/// name, no angle brackets, no list. The syntax is lettre's (the same parser that
/// addresses the mail), so `a@b.c;x@evil.com` and `a@evil.com@b.c` are refused rather
/// than read as a mailbox at `evil.com`. The domain must have a dot (or be a bracketed
/// IP literal): a bare host name is never a mail domain a PBX can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// `field` names the API field in the error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let refuse = || {
            ValidationError::new(
                field,
                "must be exactly one email address, like name@example.com",
            )
        };
        let value = raw.trim();
        if value.is_empty() || value.len() > MAX_EMAIL_BYTES {
            return Err(refuse());
        }
        let address: lettre::Address = value.parse().map_err(|_| refuse())?;
        let domain = address.domain();
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(refuse());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> bool {
        EmailAddress::parse("notifyEmail", raw).is_err_and(|e| e.field == "notifyEmail")
    }

    #[test]
    fn one_plain_address_is_accepted_trimmed() {
        for (raw, kept) in [
            ("alice@example.com", "alice@example.com"),
            ("  alice@example.com ", "alice@example.com"),
            (
                "a.b+voicemail@mail.example.co.uk",
                "a.b+voicemail@mail.example.co.uk",
            ),
            ("o'brien@example.ie", "o'brien@example.ie"),
        ] {
            assert_eq!(
                EmailAddress::parse("notifyEmail", raw).unwrap().as_str(),
                kept
            );
        }
    }

    #[test]
    fn two_addresses_in_one_are_refused() {
        for raw in [
            "a@b.c;x@evil.com",
            "a@evil.com@b.c",
            "a@b.c,x@evil.com",
            "a@b.c x@evil.com",
            "a@b.c\nx@evil.com",
            "a@b.c\r\nBcc: x@evil.com",
        ] {
            assert!(refused(raw), "{raw:?}");
        }
    }

    #[test]
    fn display_names_and_brackets_are_refused() {
        for raw in [
            "Alice <alice@example.com>",
            "<alice@example.com>",
            "alice@example.com>",
        ] {
            assert!(refused(raw), "{raw:?}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for raw in [
            "",
            "   ",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@.example.com",
            "alice@example.com.",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@example..com",
        ] {
            assert!(refused(raw), "{raw:?}");
        }
    }

    #[test]
    fn addresses_longer_than_254_bytes_are_refused() {
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(186));
        assert_eq!(long.len(), 255);
        assert!(refused(&long));
    }
}

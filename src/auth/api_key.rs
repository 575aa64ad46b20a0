//! API keys: `do_live_` or `do_test_`, then a 12-character public lookup id and a
//! 32-character secret (190 bits). Only a SHA-256 of the whole key is stored; the lookup
//! id finds the row, and the hash is compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const LIVE_PREFIX: &str = "do_live_";
pub const TEST_PREFIX: &str = "do_test_";
const LOOKUP_LEN: usize = 12;
const SECRET_LEN: usize = 32;

/// A freshly minted key: `plaintext` is shown once and never stored.
pub struct MintedKey {
    pub plaintext: String,
    pub prefix: &'static str,
    pub lookup: String,
    pub secret_hash: String,
}

pub fn mint(test: bool) -> MintedKey {
    let prefix = if test { TEST_PREFIX } else { LIVE_PREFIX };
    let lookup = crate::ids::alnum(LOOKUP_LEN);
    let secret = crate::ids::alnum(SECRET_LEN);
    let plaintext = format!("{prefix}{lookup}{secret}");
    let secret_hash = hash(&plaintext);
    MintedKey {
        plaintext,
        prefix,
        lookup,
        secret_hash,
    }
}

/// Whether `token` has the shape of an API key (as opposed to a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(LIVE_PREFIX) || token.starts_with(TEST_PREFIX)
}

/// The lookup id of a presented key, or `None` when it cannot be one of ours.
pub fn lookup_of(token: &str) -> Option<&str> {
    let rest = token
        .strip_prefix(LIVE_PREFIX)
        .or_else(|| token.strip_prefix(TEST_PREFIX))?;
    if rest.len() != LOOKUP_LEN + SECRET_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&rest[..LOOKUP_LEN])
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of a presented key against a stored hash.
pub fn verify(token: &str, stored_hash: &str) -> bool {
    hash(token).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_verify_and_expose_their_lookup_id() {
        let key = mint(false);
        assert!(key.plaintext.starts_with("do_live_"));
        assert_eq!(lookup_of(&key.plaintext), Some(key.lookup.as_str()));
        assert!(verify(&key.plaintext, &key.secret_hash));
        assert!(!key.plaintext.contains(&key.secret_hash));
    }

    #[test]
    fn test_keys_have_their_own_prefix() {
        assert!(mint(true).plaintext.starts_with("do_test_"));
    }

    #[test]
    fn altered_or_malformed_keys_are_refused() {
        let key = mint(false);
        let mut altered = key.plaintext.clone();
        altered.pop();
        altered.push(if key.plaintext.ends_with('a') {
            'b'
        } else {
            'a'
        });
        assert!(!verify(&altered, &key.secret_hash));
        assert_eq!(lookup_of("do_live_short"), None);
        assert_eq!(
            lookup_of(&format!("{}!", &key.plaintext[..key.plaintext.len() - 1])),
            None
        );
        assert_eq!(lookup_of("Bearer xyz"), None);
    }
}

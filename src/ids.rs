//! Random identifiers, API key secrets and SIP passwords.
//!
//! Everything here draws from `rand::rng()`, a CSPRNG reseeded from the OS.

use rand::RngExt;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// `len` random characters from `[a-z0-9]`.
pub fn lower_alnum(len: usize) -> String {
    random_from(LOWER_ALNUM, len)
}

/// `len` random characters from `[A-Za-z0-9]` (5.95 bits each).
pub fn alnum(len: usize) -> String {
    random_from(ALNUM, len)
}

/// A resource id such as `ext_k3j9x0q2m1c8v7b4`: a prefix and 16 random `[a-z0-9]`.
pub fn resource_id(prefix: &str) -> String {
    format!("{prefix}_{}", lower_alnum(16))
}

/// A SIP password: 24 characters of `[A-Za-z0-9]` (about 143 bits), safe to type on a
/// phone keypad and in any provisioning file without quoting.
pub fn sip_password() -> String {
    alnum(24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_have_prefix_and_sixteen_lowercase_alnum_chars() {
        let id = resource_id("ext");
        let rest = id.strip_prefix("ext_").expect("prefix");
        assert_eq!(rest.len(), 16);
        assert!(rest.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        assert_ne!(id, resource_id("ext"));
    }

    #[test]
    fn sip_passwords_are_long_and_alphanumeric() {
        let p = sip_password();
        assert!(p.len() >= 20);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}

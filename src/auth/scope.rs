//! API scopes, as a small bit set.

use std::fmt;

/// One permission an API key or token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    ExtensionsRead,
    ExtensionsWrite,
    PhonesRead,
    VoicemailRead,
    VoicemailWrite,
    ConferencesRead,
    ConferencesWrite,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Self::ExtensionsRead,
        Self::ExtensionsWrite,
        Self::PhonesRead,
        Self::VoicemailRead,
        Self::VoicemailWrite,
        Self::ConferencesRead,
        Self::ConferencesWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExtensionsRead => "pbx:extensions:read",
            Self::ExtensionsWrite => "pbx:extensions:write",
            Self::PhonesRead => "pbx:phones:read",
            Self::VoicemailRead => "pbx:voicemail:read",
            Self::VoicemailWrite => "pbx:voicemail:write",
            Self::ConferencesRead => "pbx:conferences:read",
            Self::ConferencesWrite => "pbx:conferences:write",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes; stored as a comma-separated list. One bit per scope: eight fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses `a,b,c`; an unknown name is an error naming it.
    pub fn parse_list(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Scope::parse(s).ok_or_else(|| s.to_owned()))
            .collect()
    }

    pub fn to_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_round_trip() {
        let set = ScopeSet::parse_list("pbx:phones:read, pbx:extensions:read").unwrap();
        assert!(set.contains(Scope::PhonesRead));
        assert!(set.contains(Scope::ExtensionsRead));
        assert!(!set.contains(Scope::ExtensionsWrite));
        assert_eq!(set.to_list(), "pbx:extensions:read,pbx:phones:read");
        assert_eq!(
            ScopeSet::parse_list(&ScopeSet::all().to_list()),
            Ok(ScopeSet::all())
        );
    }

    #[test]
    fn conference_scopes_parse_and_stay_apart() {
        let set = ScopeSet::parse_list("pbx:conferences:read").unwrap();
        assert!(set.contains(Scope::ConferencesRead));
        assert!(!set.contains(Scope::ConferencesWrite));
        assert!(ScopeSet::all().contains(Scope::ConferencesWrite));
        assert_eq!(
            Scope::parse("pbx:conferences:write"),
            Some(Scope::ConferencesWrite)
        );
    }

    #[test]
    fn unknown_scope_is_named() {
        assert_eq!(
            ScopeSet::parse_list("pbx:extensions:read,pbx:admin"),
            Err("pbx:admin".to_owned())
        );
    }
}

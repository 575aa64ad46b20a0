//! Wall-clock time as stored (milliseconds since the Unix epoch) and as shown (RFC 3339).

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, the unit every timestamp column uses so that the
/// SQLite and PostgreSQL schemas stay identical.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-28T12:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}

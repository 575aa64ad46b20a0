//! Tenants: a PBX and the SIP domain its phones register to.

/// A PBX (tenant). Its SIP domain is also the digest realm of every SIP password it
/// holds, so it is fixed once extensions exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pbx {
    pub id: String,
    pub name: String,
    pub sip_domain: String,
    pub created_at: i64,
    /// Caller ID presented on outside calls by extensions without their own.
    pub default_caller_id_name: Option<String>,
    pub default_caller_id_number: Option<String>,
}

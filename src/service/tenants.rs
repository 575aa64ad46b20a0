//! Tenants and API keys: first-start bootstrap and the CLI's `pbx create` and
//! `apikey create`.

use super::{ServiceResult, Services};
use crate::auth::{ScopeSet, api_key};
use crate::clock::now_ms;
use crate::domain::Pbx;
use crate::store::Store;
use crate::store::api_keys::ApiKeyRow;
use anyhow::{Context, bail};

/// Operations that need only the store (no running server).
pub struct Bootstrap<'a>(pub &'a Store);

impl Bootstrap<'_> {
    /// On an empty store: creates the `default` PBX and one API key with every scope,
    /// and returns that key (to be shown once). `None` when PBXes already exist.
    pub async fn ensure_default(&self, sip_domain: &str) -> anyhow::Result<Option<(Pbx, String)>> {
        if self.0.pbx_count().await? > 0 {
            return Ok(None);
        }
        let pbx = self.create_pbx("default", Some(sip_domain)).await?;
        let key = self.create_api_key(&pbx.id, ScopeSet::all(), false).await?;
        Ok(Some((pbx, key)))
    }

    /// Creates a PBX. Its SIP domain defaults to `<name>.local`, lowercased.
    pub async fn create_pbx(&self, name: &str, sip_domain: Option<&str>) -> anyhow::Result<Pbx> {
        // Consoles show it like an extension name: the same rule.
        let name = crate::domain::text::parse_name("name", name)
            .map_err(|e| anyhow::anyhow!("PBX name {}", e.message))?;
        let name = name.as_str();
        let domain = match sip_domain {
            Some(d) => d.trim().to_ascii_lowercase(),
            None => format!("{}.local", slug(name)),
        };
        if !valid_host(&domain) {
            bail!("SIP domain {domain:?} is not a valid host name or IP address");
        }
        let pbx = Pbx {
            id: crate::ids::resource_id("pbx"),
            name: name.to_owned(),
            sip_domain: domain,
            created_at: now_ms(),
            default_caller_id_name: None,
            default_caller_id_number: None,
        };
        self.0.insert_pbx(&pbx).await.map_err(|e| match e {
            crate::store::StoreError::Unique(what) if what.contains("sip_domain") => {
                anyhow::anyhow!("a PBX with SIP domain {} already exists", pbx.sip_domain)
            }
            crate::store::StoreError::Unique(_) => {
                anyhow::anyhow!("a PBX named {name:?} already exists")
            }
            other => other.into(),
        })?;
        Ok(pbx)
    }

    /// Mints an API key for the PBX named or numbered `pbx`; returns the plaintext key.
    pub async fn create_api_key(
        &self,
        pbx: &str,
        scopes: ScopeSet,
        test: bool,
    ) -> anyhow::Result<String> {
        if scopes.is_empty() {
            bail!("an API key needs at least one scope");
        }
        let pbx = self
            .0
            .pbx_by_id_or_name(pbx)
            .await?
            .with_context(|| format!("no PBX with id or name {pbx:?}"))?;
        let minted = api_key::mint(test);
        self.0
            .insert_api_key(&ApiKeyRow {
                id: crate::ids::resource_id("key"),
                pbx_id: pbx.id,
                prefix: minted.prefix.to_owned(),
                lookup: minted.lookup,
                secret_hash: minted.secret_hash,
                scopes: scopes.to_list(),
                created_at: now_ms(),
                revoked_at: None,
            })
            .await?;
        Ok(minted.plaintext)
    }
}

impl Services {
    pub fn bootstrap(&self) -> Bootstrap<'_> {
        Bootstrap(&self.store)
    }

    /// A PBX by id or, failing that, by name.
    pub async fn pbx_by_id_or_name(&self, key: &str) -> ServiceResult<Option<Pbx>> {
        Ok(self.store.pbx_by_id_or_name(key).await?)
    }
}

fn slug(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "pbx".to_owned()
    } else {
        s.to_owned()
    }
}

/// A DNS name (letters, digits, `-`, `.`) or an IP address.
fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_dns_safe() {
        assert_eq!(slug("Acme Corp!"), "acme-corp");
        assert_eq!(slug("***"), "pbx");
    }

    #[test]
    fn hosts_are_names_or_ip_addresses() {
        for ok in ["pbx.example.com", "127.0.0.1", "::1", "acme-corp.local"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", "a..b", "-a.com", "a b", "x.y-", "a/b"] {
            assert!(!valid_host(bad), "{bad}");
        }
    }
}

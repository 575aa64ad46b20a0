//! What the SIP side needs on every request, cached: the account behind a SIP username
//! (with its digest HA1s) and the PBX a SIP domain belongs to. Service functions that
//! change an extension invalidate its entry; PBX lookups expire after a few seconds
//! (PBXes are created by the CLI, in another process).

use super::{ServiceResult, Services};
use crate::domain::Pbx;
use crate::domain::{ExtensionRef, ExtensionType};
use crate::sync::RwLockExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::time::{Duration, Instant};

const PBX_TTL: Duration = Duration::from_secs(5);
/// A PBX lookup (a miss too) and when it was made.
type CachedPbx = (Instant, Option<Arc<Pbx>>);

/// The cache key of the default PBX (no domain is empty).
const DEFAULT_KEY: &str = "";

/// An extension as SIP authentication and routing see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAccount {
    pub extension_id: String,
    pub pbx_id: String,
    pub number: String,
    pub name: String,
    pub kind: ExtensionType,
    pub sip_username: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// Caller ID on outside calls, when the extension has its own.
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
}

impl SipAccount {
    /// The extension the account belongs to, as events name it.
    pub fn extension_ref(&self) -> ExtensionRef {
        ExtensionRef::new(&self.extension_id, &self.number, &self.name)
    }
}

#[derive(Default)]
pub struct AccountCache {
    by_user: RwLock<HashMap<String, Arc<SipAccount>>>,
    /// By lower-case domain, and the default PBX under [`DEFAULT_KEY`].
    by_domain: RwLock<HashMap<String, CachedPbx>>,
    /// One refresh of a domain at a time; everyone else keeps using the stale entry
    /// (at thousands of REGISTERs a second, an expiring entry must not send them all
    /// to the database at once).
    refreshing: tokio::sync::Mutex<()>,
}

impl AccountCache {
    /// Drops the cached account of an extension (after any change to it).
    pub fn invalidate(&self, extension_id: &str) {
        self.by_user
            .write_unpoisoned()
            .retain(|_, a| a.extension_id != extension_id);
    }
}

impl Services {
    /// The account a SIP username belongs to (any PBX: usernames are globally unique);
    /// `None` for an unknown username and for an extension without SIP credentials.
    pub async fn sip_account(&self, username: &str) -> ServiceResult<Option<Arc<SipAccount>>> {
        if let Some(hit) = self.accounts.by_user.read_unpoisoned().get(username) {
            return Ok(Some(hit.clone()));
        }
        let Some(secrets) = self.store.sip_secrets(username).await? else {
            return Ok(None);
        };
        // An extension without credentials (any type but `user`) is no account at all:
        // SIP answers its username exactly as it answers one that does not exist.
        if secrets.extension.kind != ExtensionType::User
            || secrets.ha1_md5.is_empty()
            || secrets.ha1_sha256.is_empty()
        {
            return Ok(None);
        }
        let ext = secrets.extension;
        let account = Arc::new(SipAccount {
            extension_id: ext.id,
            pbx_id: ext.pbx_id,
            number: ext.number,
            name: ext.name,
            kind: ext.kind,
            sip_username: ext.sip_username,
            ha1_md5: secrets.ha1_md5,
            ha1_sha256: secrets.ha1_sha256,
            caller_id_name: ext.caller_id_name,
            caller_id_number: ext.caller_id_number,
        });
        self.accounts
            .by_user
            .write_unpoisoned()
            .insert(username.to_owned(), account.clone());
        Ok(Some(account))
    }

    /// The PBX whose SIP domain is `host`, if any.
    pub async fn pbx_for_domain(&self, host: &str) -> ServiceResult<Option<Arc<Pbx>>> {
        let host = host.to_ascii_lowercase();
        self.cached_pbx(&host, |all| all.iter().find(|p| p.sip_domain == host))
            .await
    }

    /// The default PBX (named `default`, else the first), where requests for this
    /// server's own addresses go.
    pub async fn default_pbx(&self) -> ServiceResult<Option<Arc<Pbx>>> {
        self.cached_pbx(DEFAULT_KEY, |all| {
            all.iter()
                .find(|p| p.name == "default")
                .or_else(|| all.first())
        })
        .await
    }

    /// A PBX lookup cached under `key` for [`PBX_TTL`], misses included (a scanner
    /// trying random domains must not reach the database on every request).
    async fn cached_pbx(
        &self,
        key: &str,
        pick: impl FnOnce(&[Pbx]) -> Option<&Pbx>,
    ) -> ServiceResult<Option<Arc<Pbx>>> {
        let now = Instant::now();
        let cached = self.accounts.by_domain.read_unpoisoned().get(key).cloned();
        let _refresh = match cached {
            Some((at, pbx)) if now.duration_since(at) < PBX_TTL => return Ok(pbx),
            Some((_, stale)) => match self.accounts.refreshing.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(stale),
            },
            None => self.accounts.refreshing.lock().await,
        };
        let all = self.store.list_pbx().await?;
        let found = pick(&all).cloned().map(Arc::new);
        let mut cache = self.accounts.by_domain.write_unpoisoned();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key.to_owned(), (now, found.clone()));
        Ok(found)
    }
}

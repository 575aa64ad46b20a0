//! The in-memory index of live bindings: what every REGISTER, routed call and MWI
//! lookup reads, so none of them waits on the database.

use crate::domain::Device;
use crate::sync::RwLockExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A live binding: the stored device plus the connection it came over (TCP/websocket),
/// which requests to it reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Shared: the index hands out copies of an extension's bindings on every REGISTER.
    pub device: Arc<Device>,
    pub flow: Option<u64>,
    /// When the stored row was last written (its `last_registered`).
    pub stored_at: i64,
}

/// Live bindings per extension id.
#[derive(Default)]
pub struct BindingIndex {
    by_extension: RwLock<HashMap<String, Vec<Binding>>>,
}

impl BindingIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<Binding>>> {
        self.by_extension.read_unpoisoned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<Binding>>> {
        self.by_extension.write_unpoisoned()
    }

    /// The bindings of an extension (live or expired but not yet swept).
    pub fn of(&self, extension_id: &str) -> Vec<Binding> {
        self.read().get(extension_id).cloned().unwrap_or_default()
    }

    pub(super) fn replace(&self, extension_id: &str, bindings: Vec<Binding>) {
        let mut map = self.write();
        if bindings.is_empty() {
            map.remove(extension_id);
        } else {
            map.insert(extension_id.to_owned(), bindings);
        }
    }

    pub fn remove_extension(&self, extension_id: &str) {
        self.write().remove(extension_id);
    }

    /// Bindings held, over all extensions.
    pub fn total(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    /// Live bindings of a PBX's extensions.
    pub(super) fn live_in_pbx(&self, pbx_id: &str, now: i64) -> u32 {
        self.read()
            .values()
            .flatten()
            .filter(|b| b.device.pbx_id == pbx_id && b.device.expires_at > now)
            .count() as u32
    }

    pub(super) fn with_expired(&self, now: i64) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(_, bs)| bs.iter().any(|b| b.device.expires_at <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

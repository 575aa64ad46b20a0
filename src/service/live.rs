//! Live, in-memory inputs of presence: how many devices are registered and how many
//! answered calls each extension has right now. The registrar and the call tracker
//! write them; everything that shows presence reads them.

use crate::sync::RwLockExt;
use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Default)]
pub struct LiveState {
    devices: RwLock<HashMap<String, u32>>,
    calls: RwLock<HashMap<String, u32>>,
}

fn read(map: &RwLock<HashMap<String, u32>>, key: &str) -> u32 {
    map.read_unpoisoned().get(key).copied().unwrap_or(0)
}

fn write(map: &RwLock<HashMap<String, u32>>, key: &str, value: u32) {
    let mut guard = map.write_unpoisoned();
    if value == 0 {
        guard.remove(key);
    } else {
        guard.insert(key.to_owned(), value);
    }
}

impl LiveState {
    /// Live registrations of an extension.
    pub fn devices(&self, extension_id: &str) -> u32 {
        read(&self.devices, extension_id)
    }

    /// Answered calls an extension is on.
    pub fn calls(&self, extension_id: &str) -> u32 {
        read(&self.calls, extension_id)
    }

    pub fn set_devices(&self, extension_id: &str, count: u32) {
        write(&self.devices, extension_id, count);
    }

    pub fn set_calls(&self, extension_id: &str, count: u32) {
        write(&self.calls, extension_id, count);
    }

    /// Forgets a deleted extension.
    pub fn forget(&self, extension_id: &str) {
        write(&self.devices, extension_id, 0);
        write(&self.calls, extension_id, 0);
    }
}

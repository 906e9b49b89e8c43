//! Audit keys: one signing key (from the current master secret) and any
//! number of verification keys (current plus `PALISADE_PREVIOUS_SECRETS`),
//! each known by its public key id. Row keys and checkpoint keys are
//! derived under different labels, so a stolen checkpoint key cannot forge
//! rows and vice versa.

use crate::security::keys::{DerivedKey, Purpose};
use crate::security::secret::MasterSecret;

#[derive(Clone)]
pub struct KeySet {
    signing: usize,
    keys: Vec<(String, DerivedKey)>,
}

impl KeySet {
    fn new(current: &MasterSecret, previous: &[MasterSecret], purpose: Purpose) -> KeySet {
        let mut keys: Vec<(String, DerivedKey)> = Vec::new();
        for secret in std::iter::once(current).chain(previous.iter()) {
            let key = DerivedKey::derive(secret, purpose);
            let id = key.key_id();
            if !keys.iter().any(|(k, _)| *k == id) {
                keys.push((id, key));
            }
        }
        KeySet { signing: 0, keys }
    }

    pub fn signing(&self) -> (&str, &DerivedKey) {
        let (id, key) = &self.keys[self.signing];
        (id, key)
    }

    pub fn by_id(&self, id: &str) -> Option<&DerivedKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[derive(Clone)]
pub struct AuditKeys {
    pub rows: KeySet,
    pub checkpoints: KeySet,
}

impl AuditKeys {
    pub fn new(current: &MasterSecret, previous: &[MasterSecret]) -> AuditKeys {
        AuditKeys {
            rows: KeySet::new(current, previous, Purpose::AuditChain),
            checkpoints: KeySet::new(current, previous, Purpose::AuditCheckpoint),
        }
    }
}

//! Purpose keys derived from the master secret.
//!
//! Each purpose gets its own key, `HMAC-SHA256(master, "palisade/kdf/v1\0" ‖
//! label)`, so a token class can never be confused with another (an
//! invitation hash is useless as a reset hash) and one leaked derived key
//! does not reveal the master. HMAC is a PRF, and the master is high-entropy,
//! which is exactly the setting where a single PRF call is a sound KDF.
//!
//! The two agent-protocol derivations are different on purpose: they are
//! fixed by the z4j wire protocol and live in `security::frame`.

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::assert_not_impl;
use crate::security::secret::MasterSecret;

type HmacSha256 = hmac::Hmac<Sha256>;

const KDF_PREFIX: &[u8] = b"palisade/kdf/v1\0";

/// Every derivation label in one place, so two purposes cannot share one by
/// accident and reviewers can see the full list.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    SessionToken,
    CsrfToken,
    SetupToken,
    LockoutEmail,
    ApiKey,
    Invitation,
    PasswordReset,
    AuditChain,
    AuditCheckpoint,
    ChannelSecrets,
    MetricsToken,
}

impl Purpose {
    pub const ALL: [Purpose; 11] = [
        Purpose::SessionToken,
        Purpose::CsrfToken,
        Purpose::SetupToken,
        Purpose::LockoutEmail,
        Purpose::ApiKey,
        Purpose::Invitation,
        Purpose::PasswordReset,
        Purpose::AuditChain,
        Purpose::AuditCheckpoint,
        Purpose::ChannelSecrets,
        Purpose::MetricsToken,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Purpose::SessionToken => "session-token/v1",
            Purpose::CsrfToken => "csrf-token/v1",
            Purpose::SetupToken => "setup-token/v1",
            Purpose::LockoutEmail => "lockout-email/v1",
            Purpose::ApiKey => "api-key/v1",
            Purpose::Invitation => "invitation/v1",
            Purpose::PasswordReset => "password-reset/v1",
            Purpose::AuditChain => "audit-chain/v1",
            Purpose::AuditCheckpoint => "audit-checkpoint/v1",
            Purpose::ChannelSecrets => "channel-secrets/v1",
            Purpose::MetricsToken => "metrics-token/v1",
        }
    }
}

/// A 32-byte derived key. Not `Debug`, not `Display`, zeroed on drop.
/// Cloning copies the key (for handing it to a worker thread).
#[derive(Clone)]
pub struct DerivedKey {
    bytes: Zeroizing<[u8; 32]>,
}

assert_not_impl!(DerivedKey, std::fmt::Debug);
assert_not_impl!(DerivedKey, std::fmt::Display);

impl DerivedKey {
    pub fn derive(master: &MasterSecret, purpose: Purpose) -> DerivedKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&hmac_sha256(master.expose(), &[KDF_PREFIX, purpose.label().as_bytes()]));
        DerivedKey { bytes }
    }

    /// HMAC-SHA256 of `msg` under this key.
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        hmac_sha256(self.bytes.as_slice(), &[msg])
    }

    /// HMAC over several parts, fed in order without separators; callers that
    /// need unambiguous framing must length-prefix or delimit the parts.
    pub fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(self.bytes.as_slice(), parts)
    }

    /// Constant-time check of a tag against the MAC of `msg`.
    pub fn verify(&self, msg: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(msg);
        expected.ct_eq(tag).into()
    }

    /// A short public identifier of this key, stored next to what it signed
    /// so verifiers can pick the right key after a rotation. It is a MAC of a
    /// fixed string, so it reveals nothing about the key itself.
    pub fn key_id(&self) -> String {
        hex::encode(&self.mac(b"palisade/key-id")[..8])
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this constructor cannot fail; the
    // fallback keeps the function total without an unwrap.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0u8; 32],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// All purpose keys of one master secret, derived once at start-up.
pub struct Keyring {
    master: MasterSecret,
    keys: Vec<(Purpose, DerivedKey)>,
}

impl Keyring {
    pub fn new(master: MasterSecret) -> Keyring {
        let keys = Purpose::ALL.iter().map(|p| (*p, DerivedKey::derive(&master, *p))).collect();
        Keyring { master, keys }
    }

    pub fn key(&self, purpose: Purpose) -> &DerivedKey {
        // ALL lists every variant, so the search always succeeds; index 0 is
        // an unreachable fallback that keeps this total.
        match self.keys.iter().find(|(p, _)| *p == purpose) {
            Some((_, k)) => k,
            None => &self.keys[0].1,
        }
    }

    /// The master itself, for the protocol-defined agent derivations only.
    pub fn master(&self) -> &MasterSecret {
        &self.master
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterSecret {
        MasterSecret::from_string("z4j-test-master-secret-0123456789-ABCDEFGHIJKLMNOP".into()).unwrap()
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Purpose::ALL.iter().map(|p| p.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Purpose::ALL.len());
    }

    #[test]
    fn every_purpose_gets_a_different_key() {
        let ring = Keyring::new(master());
        let mut seen: Vec<[u8; 32]> = Purpose::ALL.iter().map(|p| *ring.key(*p).expose()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), Purpose::ALL.len());
    }

    #[test]
    fn derivation_is_pinned() {
        // HMAC-SHA256(master, "palisade/kdf/v1\0session-token/v1"), computed
        // independently with Python's hmac module.
        let key = DerivedKey::derive(&master(), Purpose::SessionToken);
        assert_eq!(hex::encode(key.expose()), "e4a96f4df2e17a6a86ad903f430f7f643e365312978bb0a006d814ffab66d564");
    }

    #[test]
    fn verify_is_exact() {
        let key = DerivedKey::derive(&master(), Purpose::CsrfToken);
        let tag = key.mac(b"abc");
        assert!(key.verify(b"abc", &tag));
        assert!(!key.verify(b"abd", &tag));
        assert!(!key.verify(b"abc", &tag[..31]));
    }
}

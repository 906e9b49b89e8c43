//! Channel secrets at rest.
//!
//! XChaCha20-Poly1305 (the `chacha20poly1305` crate, RustCrypto) under the
//! `Purpose::ChannelSecrets` key derived from the master secret. Why this
//! AEAD: its 192-bit nonce can be drawn at random for every write with no
//! counter to keep and no realistic collision risk (AES-GCM's 96-bit nonce
//! cannot), it is constant-time in software without AES-NI, and it comes
//! from the same audited family as the HMAC and SHA-2 code already used.
//!
//! Blob layout: `0x01 ‖ key id (8) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
//! The key id picks the master secret (current or one of
//! `PALISADE_PREVIOUS_SECRETS`) after a rotation. The associated data binds
//! the blob to its project and channel id, so a database writer cannot move
//! one channel's secrets (say, a Slack URL) onto another project's channel.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::assert_not_impl;
use crate::security::keys::{DerivedKey, Purpose};
use crate::security::secret::MasterSecret;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const AAD_LABEL: &[u8] = b"palisade/channel-secrets/v1\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("channel secrets could not be encrypted")]
    Encrypt,
    /// Wrong key (the master secret changed without listing the old one),
    /// a moved or altered row, or an unknown format.
    #[error("channel secrets could not be decrypted")]
    Decrypt,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: XChaCha20Poly1305,
}

impl Key {
    fn new(master: &MasterSecret) -> Key {
        let derived = DerivedKey::derive(master, Purpose::ChannelSecrets);
        let mut id = [0u8; KEY_ID_LEN];
        // The key id is a MAC of a fixed string: public, reveals nothing.
        id.copy_from_slice(&derived.mac(b"palisade/key-id")[..KEY_ID_LEN]);
        Key { id, aead: XChaCha20Poly1305::new(&(*derived.expose()).into()) }
    }
}

/// Encrypts under the current master, decrypts under any listed one.
pub struct ChannelCipher {
    current: Key,
    previous: Vec<Key>,
}

assert_not_impl!(ChannelCipher, std::fmt::Debug);

fn aad(project_id: Uuid, channel_id: Uuid) -> Vec<u8> {
    let mut aad = AAD_LABEL.to_vec();
    aad.extend_from_slice(project_id.as_bytes());
    aad.extend_from_slice(channel_id.as_bytes());
    aad
}

impl ChannelCipher {
    pub fn new(current: &MasterSecret, previous: &[MasterSecret]) -> ChannelCipher {
        ChannelCipher { current: Key::new(current), previous: previous.iter().map(Key::new).collect() }
    }

    pub fn encrypt(&self, project_id: Uuid, channel_id: Uuid, plaintext: &[u8]) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(project_id, channel_id);
        let sealed = self
            .current
            .aead
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| CipherError::Encrypt)?;
        let mut blob = Vec::with_capacity(HEADER_LEN + sealed.len());
        blob.push(VERSION);
        blob.extend_from_slice(&self.current.id);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    pub fn decrypt(&self, project_id: Uuid, channel_id: Uuid, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        if blob.len() < HEADER_LEN || blob[0] != VERSION {
            return Err(CipherError::Decrypt);
        }
        let (id, rest) = blob[1..].split_at(KEY_ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key =
            std::iter::once(&self.current).chain(&self.previous).find(|k| k.id == id).ok_or(CipherError::Decrypt)?;
        let nonce = XNonce::try_from(nonce).map_err(|_| CipherError::Decrypt)?;
        let aad = aad(project_id, channel_id);
        let plain = key.aead.decrypt(&nonce, Payload { msg: sealed, aad: &aad }).map_err(|_| CipherError::Decrypt)?;
        Ok(Zeroizing::new(plain))
    }

    /// Was this blob written under an earlier master secret? (Saving the
    /// channel again re-encrypts it under the current one.)
    pub fn is_stale(&self, blob: &[u8]) -> bool {
        blob.get(1..1 + KEY_ID_LEN).is_some_and(|id| id != self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(s: &str) -> MasterSecret {
        MasterSecret::from_string(format!("{s}-0123456789abcdefghijklmnopqrstuvwxyz")).unwrap()
    }

    #[test]
    fn round_trip_is_bound_to_row_and_key() {
        let c = ChannelCipher::new(&master("one"), &[]);
        let (p, ch) = (Uuid::new_v4(), Uuid::new_v4());
        let blob = c.encrypt(p, ch, b"{\"url\":\"https://hooks.slack.com/services/T/B/secret\"}").unwrap();
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(&c.decrypt(p, ch, &blob).unwrap()[..], b"{\"url\":\"https://hooks.slack.com/services/T/B/secret\"}");
        // Another channel or project, a flipped bit, a truncated blob.
        assert_eq!(c.decrypt(p, Uuid::new_v4(), &blob).err(), Some(CipherError::Decrypt));
        assert_eq!(c.decrypt(Uuid::new_v4(), ch, &blob).err(), Some(CipherError::Decrypt));
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(c.decrypt(p, ch, &bad).err(), Some(CipherError::Decrypt));
        assert_eq!(c.decrypt(p, ch, &blob[..HEADER_LEN]).err(), Some(CipherError::Decrypt));
        // Fresh nonce every time.
        assert_ne!(c.encrypt(p, ch, b"x").unwrap(), c.encrypt(p, ch, b"x").unwrap());
    }

    #[test]
    fn rotation_keeps_old_rows_readable() {
        let (p, ch) = (Uuid::new_v4(), Uuid::new_v4());
        let old = ChannelCipher::new(&master("old"), &[]);
        let blob = old.encrypt(p, ch, b"s3cret").unwrap();
        let rotated = ChannelCipher::new(&master("new"), &[master("old")]);
        assert_eq!(&rotated.decrypt(p, ch, &blob).unwrap()[..], b"s3cret");
        assert!(rotated.is_stale(&blob));
        let forgot = ChannelCipher::new(&master("new"), &[]);
        assert_eq!(forgot.decrypt(p, ch, &blob).err(), Some(CipherError::Decrypt));
    }
}

//! Keys fixed by the z4j protocol: the per-project frame key, the agent
//! bearer-token hash and the purge confirm token (spec §1.4, §1.5, §5.5).

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

const PROJECT_KEY_LABEL: &[u8] = b"z4j-project-secret-v1:";
const AGENT_TOKEN_SALT: &[u8] = b"z4j-agent-token-v1";
const SHA256_BLOCK: usize = 64;

/// A project's frame-signing key, kept as a ready HMAC state (the padded key
/// already absorbed) so each frame costs no key setup.
///
/// Deliberately not `Debug`/`Display`: the state is key-equivalent. Enabling
/// the `zeroize` features of `sha2`/`hmac` makes it wipe itself on drop.
#[derive(Clone)]
pub struct FrameKey {
    mac: HmacSha256,
}

crate::assert_not_impl!(FrameKey, std::fmt::Debug);
crate::assert_not_impl!(FrameKey, std::fmt::Display);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Both z4j's signer and verifier refuse keys under 32 bytes.
    #[error("frame key is {0} bytes; at least 32 are required")]
    TooShort(usize),
    #[error("frame key is not urlsafe base64")]
    InvalidBase64,
}

impl FrameKey {
    pub const MIN_LEN: usize = 32;

    pub fn new(raw: &[u8]) -> Result<FrameKey, KeyError> {
        if raw.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort(raw.len()));
        }
        Ok(FrameKey { mac: hmac_for(raw) })
    }

    /// Parses the agent's `Z4J_HMAC_SECRET` form: urlsafe base64 with or
    /// without `=` padding, surrounding whitespace ignored.
    pub fn from_urlsafe_b64(text: &str) -> Result<FrameKey, KeyError> {
        let trimmed = text.trim().trim_end_matches('=');
        let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(trimmed).map_err(|_| KeyError::InvalidBase64)?);
        FrameKey::new(&raw)
    }

    pub(crate) fn tag(&self, msg: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    /// Lowercase hex of the HMAC, as ASCII bytes (what goes into `hmac`).
    pub(crate) fn tag_hex(&self, msg: &[u8]) -> [u8; 64] {
        let mut hex_out = [0u8; 64];
        // Cannot fail: 32 bytes always encode to exactly 64.
        let _ = hex::encode_to_slice(self.tag(msg), &mut hex_out);
        hex_out
    }
}

/// HMAC-SHA256 keyed with `key` of any length.
///
/// RFC 2104 hashes keys longer than the block and zero-pads shorter ones; doing
/// that here lets us use the infallible block-sized constructor instead of
/// `new_from_slice`, whose error branch cannot occur for HMAC but would still
/// need handling.
fn hmac_for(key: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if key.len() > SHA256_BLOCK {
        let mut digest = Sha256::digest(key);
        for (dst, src) in block.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        digest.as_mut_slice().zeroize();
    } else {
        for (dst, src) in block.iter_mut().zip(key) {
            *dst = *src;
        }
    }
    let mac = HmacSha256::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_for(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The per-project frame key: `HMAC-SHA256(master, "z4j-project-secret-v1:"
/// ‖ project.bytes_le)`. `master` is the configured secret string's UTF-8
/// bytes (not base64-decoded). Every agent of the project shares this key.
pub fn derive_project_key(master: &[u8], project: uuid::Uuid) -> [u8; 32] {
    hmac_parts(master, &[PROJECT_KEY_LABEL, &project.to_bytes_le()])
}

/// The stored lookup hash of an agent bearer token:
/// `hex(HMAC-SHA256(master ‖ "z4j-agent-token-v1", token))`.
pub fn agent_token_hash(master: &[u8], token: &str) -> String {
    let key = Zeroizing::new([master, AGENT_TOKEN_SALT].concat());
    hex::encode(hmac_parts(&key, &[token.as_bytes()]))
}

/// The `purge_queue` confirm token the agent checks against the queue depth
/// it measures when it runs the command: `hex(HMAC(key, "purge|{queue}|{depth}"))`.
pub fn purge_confirm_token(key: &FrameKey, queue: &str, depth: u64) -> String {
    let msg = format!("purge|{queue}|{depth}");
    hex::encode(key.tag(msg.as_bytes()))
}

/// The `Z4J_HMAC_SECRET` an operator gives the agent: urlsafe base64 with
/// padding (44 characters for a 32-byte key).
pub fn hmac_secret_b64(key: &[u8]) -> String {
    URL_SAFE.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/vectors/z4j-wire-vectors.json")).unwrap()
    }

    #[test]
    fn project_key_derivation_vector() {
        let v = vectors();
        let d = &v["derivations"]["project_secret"];
        let master = d["master_secret_utf8"].as_str().unwrap();
        let project: uuid::Uuid = d["project_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(hex::encode(project.to_bytes_le()), d["project_id_bytes_le_hex"].as_str().unwrap());
        let key = derive_project_key(master.as_bytes(), project);
        assert_eq!(hex::encode(key), d["derived_secret_hex"].as_str().unwrap());
        let b64 = hmac_secret_b64(&key);
        assert_eq!(b64, d["Z4J_HMAC_SECRET_urlsafe_b64"].as_str().unwrap());
        assert_eq!(b64.len(), 44);
        // The agent-side parse of that string yields the same key.
        let from_env = FrameKey::from_urlsafe_b64(&format!("  {b64}\n")).unwrap();
        let direct = FrameKey::new(&key).unwrap();
        assert_eq!(from_env.tag(b"x"), direct.tag(b"x"));
        let unpadded = FrameKey::from_urlsafe_b64(b64.trim_end_matches('=')).unwrap();
        assert_eq!(unpadded.tag(b"x"), direct.tag(b"x"));
    }

    #[test]
    fn agent_token_hash_vector() {
        let v = vectors();
        let d = &v["derivations"]["agent_token_hash"];
        let master = d["master_secret_utf8"].as_str().unwrap();
        // The salted key is 68 bytes, longer than the SHA-256 block, so this
        // also covers the hashed-key branch of `hmac_for`.
        assert_eq!(hex::encode([master.as_bytes(), AGENT_TOKEN_SALT].concat()), d["hmac_key_hex"].as_str().unwrap());
        assert_eq!(
            agent_token_hash(master.as_bytes(), d["token_plaintext"].as_str().unwrap()),
            d["token_hash_hex"].as_str().unwrap()
        );
    }

    #[test]
    fn purge_confirm_token_vector() {
        let v = vectors();
        let d = &v["derivations"]["purge_confirm_token"];
        let key = FrameKey::new(&hex::decode(d["project_secret_hex"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(
            purge_confirm_token(&key, d["queue_name"].as_str().unwrap(), d["queue_depth"].as_u64().unwrap()),
            d["confirm_token_hex"].as_str().unwrap()
        );
    }

    #[test]
    fn padded_key_matches_the_generic_constructor() {
        for len in [0usize, 1, 32, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
            reference.update(b"message");
            let want: [u8; 32] = reference.finalize().into_bytes().into();
            assert_eq!(hmac_parts(&key, &[b"mess", b"age"]), want, "key length {len}");
        }
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        assert_eq!(FrameKey::new(&[7u8; 31]).err(), Some(KeyError::TooShort(31)));
        assert!(FrameKey::new(&[7u8; 32]).is_ok());
        assert!(FrameKey::new(&[7u8; 100]).is_ok());
        assert_eq!(FrameKey::from_urlsafe_b64("c2hvcnQ=").err(), Some(KeyError::TooShort(5)));
        assert_eq!(
            FrameKey::from_urlsafe_b64("gsXfJ8u0OJB1cvj3xxIOeuow/3vCX+xO1osQRaJPcu0=").err(),
            Some(KeyError::InvalidBase64)
        );
        // The error text never contains key material.
        let msg = KeyError::TooShort(31).to_string();
        assert!(!msg.contains("0707"));
    }
}

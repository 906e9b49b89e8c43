//! Secret material that can never be printed.
//!
//! Neither type here implements `Debug` or `Display` (a compile-time test at
//! the bottom proves it), so a secret cannot reach a log line through `{:?}`
//! on a config struct. Bytes are zeroed on drop.

use rand::RngCore;
use zeroize::Zeroizing;

/// The operator's master secret (`PALISADE_SECRET`). Every other key is
/// derived from it; it is read from the environment and never written to disk.
pub struct MasterSecret {
    bytes: Zeroizing<Vec<u8>>,
}

/// Minimum master-secret length in bytes. 32 bytes of a random string carry
/// well over 128 bits; shorter values are refused outright.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("PALISADE_SECRET must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
    TooShort(usize),
}

impl MasterSecret {
    /// The secret string's UTF-8 bytes are the key material, as the z4j agent
    /// protocol derives project keys from the master *string* (not a decoded
    /// form); keeping that rule lets operators migrate existing agents.
    pub fn from_string(value: String) -> Result<MasterSecret, SecretError> {
        let value = Zeroizing::new(value);
        let bytes = value.trim().as_bytes().to_vec();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(MasterSecret { bytes: Zeroizing::new(bytes) })
    }

    /// A fresh random secret for `dev` runs without `PALISADE_SECRET`. It
    /// lives only in memory, so everything keyed by it dies with the process.
    pub fn ephemeral() -> MasterSecret {
        let mut raw = [0u8; 48];
        rand::rng().fill_bytes(&mut raw);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        MasterSecret { bytes: Zeroizing::new(encoded.into_bytes()) }
    }

    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Clone for MasterSecret {
    fn clone(&self) -> Self {
        MasterSecret { bytes: Zeroizing::new(self.bytes.to_vec()) }
    }
}

/// Fails to compile if `$t` implements `$tr`: with the trait implemented,
/// the two blanket impls below both apply and the `_` cannot be inferred.
#[macro_export]
macro_rules! assert_not_impl {
    ($t:ty, $tr:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + $tr> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::item;
        };
    };
}

assert_not_impl!(MasterSecret, std::fmt::Debug);
assert_not_impl!(MasterSecret, std::fmt::Display);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let err = MasterSecret::from_string("short-secret".into()).err();
        assert_eq!(err, Some(SecretError::TooShort(12)));
        assert!(!format!("{}", SecretError::TooShort(12)).contains("short-secret"));
    }

    #[test]
    fn ephemeral_secrets_differ_and_are_long_enough() {
        let a = MasterSecret::ephemeral();
        let b = MasterSecret::ephemeral();
        assert!(a.len() >= MIN_SECRET_BYTES);
        assert_ne!(a.expose(), b.expose());
    }
}

//! Bearer-style secrets: minted with 256 bits from the OS CSPRNG, handed to
//! the user exactly once, and stored only as an HMAC under a purpose key.
//! A database dump therefore never contains a usable token, and the keyed
//! hash means the dump cannot even be used to test guesses offline.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::security::keys::DerivedKey;

/// 32 random bytes, base64url without padding (43 characters).
pub fn mint() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The stored form of a token: HMAC-SHA256 under the purpose key.
pub fn hash(key: &DerivedKey, token: &str) -> Vec<u8> {
    key.mac(token.as_bytes()).to_vec()
}

/// Tokens we mint are 43 characters; anything far outside that is rejected
/// before hashing so an attacker cannot make us MAC megabytes.
pub fn plausible(token: &str) -> bool {
    (16..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::keys::Purpose;
    use crate::security::secret::MasterSecret;

    #[test]
    fn minted_tokens_are_256_bit_and_unique() {
        let a = mint();
        let b = mint();
        assert_eq!(a.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn hash_depends_on_purpose() {
        let m = MasterSecret::from_string("x".repeat(40)).unwrap();
        let t = mint();
        let s = hash(&DerivedKey::derive(&m, Purpose::SessionToken), &t);
        let r = hash(&DerivedKey::derive(&m, Purpose::PasswordReset), &t);
        assert_ne!(s, r);
        assert_eq!(s.len(), 32);
    }

    #[test]
    fn plausibility_bounds() {
        assert!(plausible(&mint()));
        assert!(!plausible("short"));
        assert!(!plausible(&"a".repeat(300)));
        assert!(!plausible("has space in it, sixteen+"));
    }
}

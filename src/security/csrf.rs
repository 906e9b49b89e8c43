//! CSRF double-submit check.
//!
//! The header must equal the CSRF cookie (the classic double submit), and
//! its HMAC must equal the hash stored on the session row, which binds the
//! token to that session: a token planted by a sibling subdomain or left over
//! from another session fails. Both comparisons are constant time.

use subtle::ConstantTimeEq;

use crate::security::keys::DerivedKey;

#[derive(Debug, PartialEq, Eq)]
pub enum CsrfFailure {
    MissingHeader,
    MissingCookie,
    Mismatch,
    NotBound,
}

pub fn check(
    key: &DerivedKey,
    header: Option<&str>,
    cookie: Option<&str>,
    session_csrf_hash: &[u8],
) -> Result<(), CsrfFailure> {
    let header = header.filter(|h| !h.is_empty()).ok_or(CsrfFailure::MissingHeader)?;
    let cookie = cookie.filter(|c| !c.is_empty()).ok_or(CsrfFailure::MissingCookie)?;
    let same: bool = header.as_bytes().ct_eq(cookie.as_bytes()).into();
    if !same {
        return Err(CsrfFailure::Mismatch);
    }
    if !key.verify(header.as_bytes(), session_csrf_hash) {
        return Err(CsrfFailure::NotBound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::keys::Purpose;
    use crate::security::secret::MasterSecret;
    use crate::security::tokens;

    fn key() -> DerivedKey {
        DerivedKey::derive(&MasterSecret::from_string("k".repeat(32)).unwrap(), Purpose::CsrfToken)
    }

    #[test]
    fn outcomes() {
        let k = key();
        let t = tokens::mint();
        let bound = k.mac(t.as_bytes());
        assert_eq!(check(&k, Some(&t), Some(&t), &bound), Ok(()));
        assert_eq!(check(&k, None, Some(&t), &bound), Err(CsrfFailure::MissingHeader));
        assert_eq!(check(&k, Some(""), Some(&t), &bound), Err(CsrfFailure::MissingHeader));
        assert_eq!(check(&k, Some(&t), None, &bound), Err(CsrfFailure::MissingCookie));
        let other = tokens::mint();
        assert_eq!(check(&k, Some(&other), Some(&t), &bound), Err(CsrfFailure::Mismatch));
        // Attacker sets both cookie and header to a value of their own: the
        // double submit passes but the session binding does not.
        assert_eq!(check(&k, Some(&other), Some(&other), &bound), Err(CsrfFailure::NotBound));
    }
}

//! Email canonicalisation: one spelling per mailbox, so lockout counters,
//! uniqueness and lookups cannot be sidestepped with `Admin@Example.COM`.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("email address is not valid")]
    Invalid,
}

/// Trim, lower-case, and IDNA-encode the domain. Rejects anything that is
/// not plausibly `local@domain` (RFC 5321 length limits, no whitespace or
/// control characters, one `@`).
pub fn normalize(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > 254 {
        return Err(EmailError::Invalid);
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError::Invalid);
    }
    let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::Invalid)?;
    if local.is_empty() || local.len() > 64 || local.contains('@') || domain.is_empty() {
        return Err(EmailError::Invalid);
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(EmailError::Invalid);
    }
    let ascii_domain = match url::Host::parse(domain) {
        Ok(url::Host::Domain(d)) => d,
        _ => return Err(EmailError::Invalid),
    };
    Ok(format!("{}@{}", local.to_lowercase(), ascii_domain.to_lowercase()))
}

/// The local part of an already-normalised address.
pub fn local_part(normalized: &str) -> &str {
    normalized.rsplit_once('@').map(|(l, _)| l).unwrap_or(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(normalize("  Admin@Example.COM ").unwrap(), "admin@example.com");
        assert_eq!(normalize("ops@bücher.de").unwrap(), "ops@xn--bcher-kva.de");
        assert_eq!(local_part("ops@example.com"), "ops");
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@@b.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com.",
            "a\u{0}@b.com",
            "a@exa mple.com",
        ] {
            assert_eq!(normalize(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        assert!(normalize(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}

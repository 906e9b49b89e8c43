//! Signed webhooks, compatible with z4j's receivers:
//!
//! ```text
//! X-Z4J-Timestamp: <unix seconds>
//! X-Z4J-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! X-Palisade-Delivery: <uuid, the same on every retry of one message>
//! ```
//!
//! A receiver recomputes the HMAC over the bytes exactly as received (the
//! body is not re-serialised), compares in constant time, refuses a
//! timestamp more than [`TOLERANCE_SECS`] from its clock (replay window),
//! and drops a delivery id it has already processed (retries reuse it).
//! docs/notifications.md has a receiver in Python.

use subtle::ConstantTimeEq;

use crate::security::keys::hmac_sha256;

pub const TIMESTAMP_HEADER: &str = "X-Z4J-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Z4J-Signature";
pub const DELIVERY_HEADER: &str = "X-Palisade-Delivery";
/// What receivers should accept as clock difference plus transit time.
pub const TOLERANCE_SECS: i64 = 300;

/// The `X-Z4J-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
    format!("sha256={}", hex::encode(mac))
}

/// The receiver's check: signature matches and the timestamp is fresh.
pub fn verify(secret: &str, timestamp_header: &str, signature_header: &str, body: &[u8], now: i64) -> bool {
    let Ok(ts) = timestamp_header.trim().parse::<i64>() else { return false };
    if (now - ts).abs() > TOLERANCE_SECS {
        return false;
    }
    let expected = sign(secret, ts, body);
    expected.as_bytes().ct_eq(signature_header.trim().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// z4j's vector `notification_webhook_signature`
    /// (shared/reference/z4j-audit-vectors.json).
    #[test]
    fn matches_the_z4j_vector() {
        let body = r#"{"trigger": "task.failed", "task_id": "abc123", "task_name": "app.tasks.send_email", "engine": "celery", "priority": "high", "state": "failed", "queue": "default", "exception": "ValueError: boom", "traceback": null, "project_id": "44444444-4444-4444-8444-444444444444", "project_slug": "demo", "timestamp": "2026-01-02T03:04:05.123456+00:00"}"#;
        let sig = sign("z4j-TEST-VECTOR-webhook-hmac-secret", 1767323045, body.as_bytes());
        assert_eq!(sig, "sha256=6ea051cee36f977c375287bb2175597016013cb4a4ac1d5be6c2fd48ddbde633");
        assert!(verify("z4j-TEST-VECTOR-webhook-hmac-secret", "1767323045", &sig, body.as_bytes(), 1767323045 + 10));
    }

    #[test]
    fn verify_refuses_tampering_and_replays() {
        let sig = sign("secret-secret-secret-secret", 1000, b"{}");
        assert!(verify("secret-secret-secret-secret", "1000", &sig, b"{}", 1000));
        assert!(!verify("secret-secret-secret-secret", "1000", &sig, b"{ }", 1000));
        assert!(!verify("other-secret-other-secret", "1000", &sig, b"{}", 1000));
        assert!(!verify("secret-secret-secret-secret", "1001", &sig, b"{}", 1000));
        assert!(!verify("secret-secret-secret-secret", "1000", &sig, b"{}", 1000 + TOLERANCE_SECS + 1));
        assert!(!verify("secret-secret-secret-secret", "x", &sig, b"{}", 1000));
    }
}

//! Building signed frames, and the timestamp and nonce values they carry.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, Timelike, Utc};
use rand::RngCore;

use super::{Binding, FrameError, FrameKey, FrameKind, ProtocolError};
use crate::security::canonical_json::{write_i64, write_str, write_value, Value, MAX_DEPTH};

/// Builds a signed wire frame. `ts` is signed verbatim (use [`format_ts`]);
/// `payload` must be an object or null. The wire form lists members in the
/// Python agent's order with the payload in canonical form, which parses to
/// the same values and therefore the same MAC.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    key: &FrameKey,
    binding: &Binding,
    kind: FrameKind,
    id: &str,
    ts: &str,
    nonce: &str,
    seq: u64,
    payload: &Value,
) -> Result<Vec<u8>, FrameError> {
    if !matches!(payload, Value::Null | Value::Object(_)) {
        return Err(ProtocolError::PayloadType.into());
    }
    let seq_int = i64::try_from(seq).map_err(|_| ProtocolError::SeqRange(seq))?;

    let mut canonical = Vec::with_capacity(512);
    canonical.extend_from_slice(b"{\"agent_id\":");
    write_str(&mut canonical, &binding.agent_id);
    canonical.extend_from_slice(b",\"id\":");
    write_str(&mut canonical, id);
    canonical.extend_from_slice(b",\"nonce\":");
    write_str(&mut canonical, nonce);
    canonical.extend_from_slice(b",\"payload\":");
    let payload_start = canonical.len();
    write_value(payload, &mut canonical, MAX_DEPTH - 1).map_err(ProtocolError::Canonical)?;
    let payload_end = canonical.len();
    canonical.extend_from_slice(b",\"project_id\":");
    write_str(&mut canonical, &binding.project_id);
    canonical.extend_from_slice(b",\"seq\":");
    write_i64(&mut canonical, seq_int);
    canonical.extend_from_slice(b",\"session_id\":");
    write_str(&mut canonical, &binding.session_id);
    canonical.extend_from_slice(b",\"ts\":");
    write_str(&mut canonical, ts);
    canonical.extend_from_slice(b",\"type\":");
    write_str(&mut canonical, kind.as_str());
    canonical.extend_from_slice(b",\"v\":2}");
    let tag = key.tag_hex(&canonical);

    let payload_bytes = canonical.get(payload_start..payload_end).unwrap_or_default();
    let mut wire = Vec::with_capacity(canonical.len());
    wire.extend_from_slice(b"{\"v\":2,\"id\":");
    write_str(&mut wire, id);
    wire.extend_from_slice(b",\"ts\":");
    write_str(&mut wire, ts);
    wire.extend_from_slice(b",\"nonce\":");
    write_str(&mut wire, nonce);
    wire.extend_from_slice(b",\"seq\":");
    write_i64(&mut wire, seq_int);
    wire.extend_from_slice(b",\"hmac\":\"");
    wire.extend_from_slice(&tag);
    wire.extend_from_slice(b"\",\"type\":");
    write_str(&mut wire, kind.as_str());
    wire.extend_from_slice(b",\"payload\":");
    wire.extend_from_slice(payload_bytes);
    wire.push(b'}');
    Ok(wire)
}

/// The pydantic timestamp form the reference signer emits:
/// `2026-05-11T10:00:00.123456Z`, without the fraction when the microseconds
/// are zero. Sub-microsecond precision is truncated, as Python has none.
pub fn format_ts(t: DateTime<Utc>) -> String {
    let micros = (t.nanosecond() / 1_000).min(999_999);
    let base =
        format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second());
    if micros == 0 {
        base + "Z"
    } else {
        format!("{base}.{micros:06}Z")
    }
}

/// A fresh frame nonce: 16 CSPRNG bytes as unpadded urlsafe base64 (22 chars).
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    // ThreadRng is a CSPRNG (ChaCha12) reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

//! The z4j v2 signed frame envelope (spec §2): signing, and verification in
//! exactly the order of the reference `FrameVerifier.parse_and_verify`
//! (§2.5), so every frame gets the same error class it would get in Python.
//!
//! The MAC is `hex(HMAC-SHA256(project_key, canonical(wire − hmac +
//! binding)))`. It is computed over the canonical re-serialisation of the
//! parsed frame, never over the received bytes, and the binding strings
//! (agent, project, session) always come from our own session state: wire
//! members of those names are ignored.
//!
//! Replay protection (seq, nonce, ts freshness) is stateful and lives in
//! [`crate::security::replay`]; [`verify`] only checks that the envelope
//! fields it needs are present and well-typed.

#[path = "frame_handshake.rs"]
mod handshake;
#[path = "frame_keys.rs"]
mod keys;
#[path = "frame_sign.rs"]
mod signing;

pub use handshake::{hello_ack_bytes, parse_hello, parse_hello_ack, Hello, HelloAck, BRAIN_VERSION};
pub use keys::{agent_token_hash, derive_project_key, hmac_secret_b64, purge_confirm_token, FrameKey, KeyError};
pub use signing::{format_ts, new_nonce, sign};

use std::fmt;

use subtle::ConstantTimeEq;

use crate::security::canonical_json::{
    self, write_str, write_value, CanonicalError, Object, ParseError, Value, MAX_DEPTH,
};
use crate::security::replay::ReplayError;

/// The integer frame version (`"v": 2`).
pub const PROTOCOL_VERSION: i64 = 2;

/// The session binding mixed into every MAC: the exact strings sent in
/// `hello_ack` (WebSocket) or the identity headers and nonce (long-poll).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub agent_id: String,
    pub project_id: String,
    pub session_id: String,
}

/// The signed frame types. `hello`/`hello_ack` are unsigned and handled by
/// [`parse_hello`]/[`parse_hello_ack`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    EventBatch,
    EventBatchAck,
    Heartbeat,
    Command,
    CommandAck,
    CommandResult,
    RegistryDelta,
    Error,
    AgentStatus,
}

impl FrameKind {
    pub const ALL: [FrameKind; 9] = [
        FrameKind::EventBatch,
        FrameKind::EventBatchAck,
        FrameKind::Heartbeat,
        FrameKind::Command,
        FrameKind::CommandAck,
        FrameKind::CommandResult,
        FrameKind::RegistryDelta,
        FrameKind::Error,
        FrameKind::AgentStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrameKind::EventBatch => "event_batch",
            FrameKind::EventBatchAck => "event_batch_ack",
            FrameKind::Heartbeat => "heartbeat",
            FrameKind::Command => "command",
            FrameKind::CommandAck => "command_ack",
            FrameKind::CommandResult => "command_result",
            FrameKind::RegistryDelta => "registry_delta",
            FrameKind::Error => "error",
            FrameKind::AgentStatus => "agent_status",
        }
    }

    pub fn from_wire(s: &str) -> Option<FrameKind> {
        FrameKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Types an agent legitimately sends. The MAC does not cover direction
    /// (§2.4), so a brain-only type arriving from an agent is a reflected or
    /// forged frame and should be ignored or refused by the caller.
    pub fn sent_by_agent(self) -> bool {
        !matches!(self, FrameKind::Command | FrameKind::EventBatchAck)
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unsigned handshake types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsignedKind {
    Hello,
    HelloAck,
}

impl fmt::Display for UnsignedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnsignedKind::Hello => "hello",
            UnsignedKind::HelloAck => "hello_ack",
        })
    }
}

/// Why a frame was refused. Messages never contain key material; strings
/// copied from the frame are truncated and stripped of control characters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Bad or missing MAC, or a replay/freshness failure: close 4403.
    #[error("signature error: {0}")]
    Signature(#[from] SignatureError),
    /// Malformed frame (the reference ends up closing 1011 for these after the
    /// handshake, 4400 during it).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// Version skew: frame `v` other than 2, or a hello whose
    /// `protocol_version` is not "2" (close 4426 in the handshake).
    #[error("protocol version error: {0}")]
    Version(#[from] VersionError),
    /// A well-formed `hello`/`hello_ack` reached [`verify`]. They are never
    /// signed; the reference logs and ignores them after the handshake.
    #[error("unsigned {0} frame outside the handshake")]
    Unsigned(UnsignedKind),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("{0} frame missing hmac signature")]
    Missing(FrameKind),
    #[error("invalid hmac signature length")]
    Length,
    #[error("hmac signature mismatch")]
    Mismatch,
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame is not valid JSON: {0}")]
    Json(#[from] ParseError),
    #[error("frame is not a JSON object")]
    NotObject,
    #[error("frame version must be an integer")]
    VersionType,
    #[error("frame missing version")]
    MissingVersion,
    #[error("frame type must be a string")]
    TypeNotString,
    #[error("unknown frame type '{0}'; refusing to process")]
    UnknownType(String),
    #[error("frame payload must be an object or null")]
    PayloadType,
    #[error("frame id must be a string")]
    IdType,
    #[error("command_result status must be 'success' or 'failed'")]
    CommandResultStatus,
    #[error("invalid telemetry_loss: {0}")]
    TelemetryLoss(&'static str),
    #[error("frame cannot be canonicalised: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("invalid {frame} frame: {reason}")]
    Handshake { frame: UnsignedKind, reason: &'static str },
    #[error("seq {0} is outside the signable range")]
    SeqRange(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("unsupported frame version {0}, expected 2")]
    Frame(String),
    #[error("unsupported protocol_version '{0}', expected '2'")]
    Handshake(String),
}

/// A frame whose MAC verified. Replay checks still have to run
/// ([`crate::security::replay::ReplayGuard`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedFrame {
    pub kind: FrameKind,
    pub id: String,
    /// Exactly as on the wire (the MAC covers this text, not a parsed time).
    pub ts: String,
    pub nonce: String,
    /// A JSON integer from 1 to `i64::MAX`. Python's `isinstance(seq, int)`
    /// would also take `true` as 1 and unbounded integers; no z4j signer
    /// emits either, so they are refused here as an invalid seq.
    pub seq: u64,
    /// `Value::Object`, or `Value::Null` when the frame had a null or no payload.
    pub payload: Value,
}

impl VerifiedFrame {
    pub fn payload_object(&self) -> Option<&Object> {
        self.payload.as_object()
    }
}

/// Copies attacker-controlled text into an error message: at most 64 chars,
/// control characters replaced, so logs stay one line and bounded.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// §2.5 step 2: `Ok(true)` for `v == 2`, `Ok(false)` when absent or null.
pub(crate) fn check_version(obj: &Object) -> Result<bool, FrameError> {
    check_version_value(obj.get("v"))
}

fn check_version_value(v: Option<&Value>) -> Result<bool, FrameError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Int(PROTOCOL_VERSION)) => Ok(true),
        Some(Value::Int(i)) => Err(VersionError::Frame(i.to_string()).into()),
        Some(Value::BigInt(b)) => Err(VersionError::Frame(sanitize(b.as_str())).into()),
        Some(_) => Err(ProtocolError::VersionType.into()),
    }
}

/// Parses and verifies one signed frame (§2.5, steps 1–8).
///
/// One deliberate ordering difference from Python: NaN/Infinity literals,
/// numbers overflowing to infinity and unpaired surrogate escapes are
/// rejected by the parser (step 1, `Protocol`) rather than when the MAC input
/// is serialised (step 7, also a non-signature error in Python). Such a frame
/// can never verify in either implementation.
pub fn verify(key: &FrameKey, binding: &Binding, bytes: &[u8]) -> Result<VerifiedFrame, FrameError> {
    let Value::Object(obj) = canonical_json::parse(bytes).map_err(ProtocolError::Json)? else {
        return Err(ProtocolError::NotObject.into());
    };
    // One pass over the (sorted) members instead of a lookup per field.
    let (mut v, mut type_value, mut payload, mut hmac, mut seq_value) = (None, None, None, None, None);
    for (name, value) in obj.iter() {
        match name {
            "v" => v = Some(value),
            "type" => type_value = Some(value),
            "payload" => payload = Some(value),
            "hmac" => hmac = Some(value),
            "seq" => seq_value = Some(value),
            _ => {}
        }
    }
    let has_version = check_version_value(v)?;
    let Some(Value::String(type_name)) = type_value else {
        return Err(ProtocolError::TypeNotString.into());
    };
    let kind = match FrameKind::from_wire(type_name) {
        Some(kind) => kind,
        None if type_name == "hello" => {
            handshake::validate_hello(&obj)?;
            return Err(FrameError::Unsigned(UnsignedKind::Hello));
        }
        None if type_name == "hello_ack" => {
            handshake::validate_hello_ack(&obj)?;
            return Err(FrameError::Unsigned(UnsignedKind::HelloAck));
        }
        None => return Err(ProtocolError::UnknownType(sanitize(type_name)).into()),
    };
    if !has_version {
        return Err(ProtocolError::MissingVersion.into());
    }
    if !matches!(payload, None | Some(Value::Null | Value::Object(_))) {
        return Err(ProtocolError::PayloadType.into());
    }

    let received = match hmac {
        Some(Value::String(s)) if !s.is_empty() => s.as_bytes(),
        _ => return Err(SignatureError::Missing(kind).into()),
    };
    // Python compares lengths in code points; a 64-byte string with non-ASCII
    // characters is a length error there too.
    if received.len() != 64 || !received.is_ascii() {
        return Err(SignatureError::Length.into());
    }
    let mut canonical = Vec::with_capacity(bytes.len() + 160);
    write_signing_bytes(&obj, binding, &mut canonical).map_err(ProtocolError::Canonical)?;
    let expected = key.tag_hex(&canonical);
    // Exact string comparison: uppercase hex is a mismatch, as in Python.
    if !bool::from(expected.as_slice().ct_eq(received)) {
        return Err(SignatureError::Mismatch.into());
    }

    check_semantics(kind, payload)?;

    // The replay guard's own type checks (§3.1 steps 1–3) run here because
    // `VerifiedFrame` has typed fields; they stay signature-class errors.
    let seq = match seq_value {
        Some(Value::Int(i)) if *i >= 1 => i.unsigned_abs(),
        _ => return Err(SignatureError::Replay(ReplayError::InvalidSeq).into()),
    };
    let (mut nonce, mut ts, mut id, mut payload) = (None, None, None, Value::Null);
    for (name, value) in obj.into_entries() {
        match name.as_str() {
            "nonce" => nonce = Some(value),
            "ts" => ts = Some(value),
            "id" => id = Some(value),
            "payload" => payload = value,
            _ => {}
        }
    }
    let nonce = match nonce {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(SignatureError::Replay(ReplayError::MissingNonce).into()),
    };
    let Some(Value::String(ts)) = ts else {
        return Err(SignatureError::Replay(ReplayError::MissingTs).into());
    };
    let Some(Value::String(id)) = id else {
        return Err(ProtocolError::IdType.into());
    };
    Ok(VerifiedFrame { kind, id, ts, nonce, seq, payload })
}

/// Canonical bytes of `obj` without `hmac` and with the binding members set
/// from `binding`, merged into key order without building a new object.
fn write_signing_bytes(obj: &Object, binding: &Binding, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let bound: [(&str, &str); 3] =
        [("agent_id", &binding.agent_id), ("project_id", &binding.project_id), ("session_id", &binding.session_id)];
    let mut pending = bound.iter().peekable();
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
    };
    out.push(b'{');
    for (key, value) in obj.iter() {
        if matches!(key, "hmac" | "agent_id" | "project_id" | "session_id") {
            continue;
        }
        while let Some((bkey, bval)) = pending.next_if(|(bkey, _)| *bkey < key) {
            member(out, bkey);
            write_str(out, bval);
        }
        member(out, key);
        write_value(value, out, MAX_DEPTH - 1)?;
    }
    for (bkey, bval) in pending {
        member(out, bkey);
        write_str(out, bval);
    }
    out.push(b'}');
    Ok(())
}

/// §2.5 step 8: the only payload fields Python validates after the MAC.
fn check_semantics(kind: FrameKind, payload: Option<&Value>) -> Result<(), ProtocolError> {
    let payload = payload.and_then(Value::as_object);
    match kind {
        FrameKind::CommandResult => match payload.and_then(|p| p.get("status")).and_then(Value::as_str) {
            Some("success" | "failed") => Ok(()),
            _ => Err(ProtocolError::CommandResultStatus),
        },
        FrameKind::Heartbeat | FrameKind::AgentStatus => match payload.and_then(|p| p.get("telemetry_loss")) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(t)) => check_telemetry_loss(t),
            Some(_) => Err(ProtocolError::TelemetryLoss("must be an object or null")),
        },
        _ => Ok(()),
    }
}

/// Types of the telemetry_loss fields (§4.3). Absent fields are allowed (the
/// reference model has defaults); unknown fields are ignored.
fn check_telemetry_loss(t: &Object) -> Result<(), ProtocolError> {
    const MAX_COUNTER: i64 = (1 << 53) - 1;
    for (name, value) in t.iter() {
        let ok = match name {
            "buffer_id" | "runtime_id" => {
                matches!(value, Value::String(s) if (1..=64).contains(&s.chars().count()))
            }
            "capacity_evicted_frames"
            | "content_rejected_frames"
            | "event_records"
            | "command_results"
            | "other_frames"
            | "unclassified_frames" => {
                matches!(value, Value::Int(n) if (0..=MAX_COUNTER).contains(n))
            }
            "adapter_events" => matches!(value, Value::Object(m)
                if m.len() <= 32 && m.iter().all(|(_, v)| matches!(v, Value::Int(_)))),
            _ => true,
        };
        if !ok {
            return Err(ProtocolError::TelemetryLoss(match name {
                "buffer_id" | "runtime_id" => "ids must be strings of 1..64 chars",
                "adapter_events" => "adapter_events must map at most 32 engines to integers",
                _ => "counters must be integers in 0..2^53-1",
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "frame_edge_tests.rs"]
mod edge_tests;
#[cfg(test)]
#[path = "frame_handshake_tests.rs"]
mod handshake_tests;
#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;

//! The unsigned handshake frames: the agent's `hello` (§1.7) and our
//! `hello_ack` (§1.8). Field checks mirror the reference's strict pydantic
//! models: no type coercion (a bool is not an int, `5.0` is not an int),
//! lengths counted in code points, unknown fields ignored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{check_version, format_ts, sanitize, Binding, FrameError, ProtocolError, UnsignedKind, VersionError};
use crate::security::canonical_json::{self, write_i64, write_str, Object, Value};

/// Sent in `hello_ack`; the agent warns when major.minor differs from its own.
pub const BRAIN_VERSION: &str = "1.13.0";

/// The only `protocol_version` string either side accepts.
pub const HANDSHAKE_PROTOCOL_VERSION: &str = "2";

/// Limits and default of `hello_ack` fields the agent validates.
const HEARTBEAT_RANGE: (i64, i64) = (1, 3600);
const DEFAULT_HEARTBEAT: u32 = 10;
const FRAME_SIZE_RANGE: (i64, i64) = (1024, 67_108_864);
const DEFAULT_FRAME_SIZE: u32 = 1_048_576;

/// A validated agent `hello`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub id: String,
    pub agent_version: String,
    pub framework: String,
    pub engines: Vec<String>,
    pub schedulers: Vec<String>,
    /// Adapter name → capability tokens.
    pub capabilities: BTreeMap<String, Vec<String>>,
    pub host: Object,
    pub worker_id: Option<String>,
    pub worker_role: Option<String>,
    pub worker_pid: Option<i64>,
    /// Raw text; only used for display.
    pub worker_started_at: Option<String>,
    pub runtime_features: Vec<String>,
}

impl Hello {
    pub fn host_name(&self) -> Option<&str> {
        self.host.get("name").and_then(Value::as_str)
    }

    pub fn has_capability(&self, engine: &str, capability: &str) -> bool {
        self.capabilities.get(engine).is_some_and(|caps| caps.iter().any(|c| c == capability))
    }

    /// "Boundary A" (§1.7, §5.4): only such engines may receive retries.
    pub fn retries_by_reference(&self, engine: &str) -> bool {
        self.has_capability(engine, "retry_by_reference_v1")
    }
}

/// A validated `hello_ack`, as an agent (or a test client) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HelloAck {
    pub id: String,
    pub ts: Option<String>,
    pub brain_version: String,
    pub binding: Binding,
    pub heartbeat_interval_seconds: u32,
    pub max_frame_size_bytes: u32,
}

fn bad(frame: UnsignedKind, reason: &'static str) -> FrameError {
    ProtocolError::Handshake { frame, reason }.into()
}

/// Python's `len()` counts code points, not bytes.
fn char_len_within(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

/// Envelope checks shared by both handshake frames; returns the payload.
fn envelope(obj: &Object, frame: UnsignedKind) -> Result<(&Object, String), FrameError> {
    check_version(obj)?;
    if matches!(obj.get("v"), Some(Value::Null)) {
        return Err(bad(frame, "v must be the integer 2"));
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) if char_len_within(s, 1, 64) => s.clone(),
        _ => return Err(bad(frame, "id must be a string of 1..64 chars")),
    };
    if !matches!(obj.get("ts"), None | Some(Value::Null | Value::String(_))) {
        return Err(bad(frame, "ts must be a string or null"));
    }
    let Some(Value::Object(payload)) = obj.get("payload") else {
        return Err(bad(frame, "payload must be an object"));
    };
    // Checked before the other fields so an agent speaking another protocol
    // gets the version error (close 4426, long backoff) rather than a generic
    // malformed-hello close, whatever its payload looks like.
    match payload.get("protocol_version") {
        Some(Value::String(v)) if v == HANDSHAKE_PROTOCOL_VERSION => Ok((payload, id)),
        Some(Value::String(v)) if char_len_within(v, 0, 40) => Err(VersionError::Handshake(sanitize(v)).into()),
        _ => Err(bad(frame, "payload.protocol_version must be a string of at most 40 chars")),
    }
}

fn req_str(o: &Object, key: &str, max: usize, reason: &'static str) -> Result<String, &'static str> {
    match o.get(key) {
        Some(Value::String(s)) if char_len_within(s, 0, max) => Ok(s.clone()),
        _ => Err(reason),
    }
}

fn opt_str(o: &Object, key: &str, max: usize, reason: &'static str) -> Result<Option<String>, &'static str> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if char_len_within(s, 0, max) => Ok(Some(s.clone())),
        _ => Err(reason),
    }
}

fn str_list(value: Option<&Value>, max_items: usize, reason: &'static str) -> Result<Vec<String>, &'static str> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= max_items => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or(reason)).collect()
        }
        _ => Err(reason),
    }
}

fn hello_payload(p: &Object, id: String) -> Result<Hello, &'static str> {
    let capabilities = match p.get("capabilities") {
        None => BTreeMap::new(),
        Some(Value::Object(map)) if map.len() <= 64 => map
            .iter()
            .map(|(engine, caps)| {
                let caps = str_list(Some(caps), 256, "payload.capabilities values must be lists of strings")?;
                Ok((engine.to_owned(), caps))
            })
            .collect::<Result<_, &'static str>>()?,
        Some(_) => return Err("payload.capabilities must map at most 64 adapters to lists"),
    };
    let host = match p.get("host") {
        None => Object::new(),
        Some(Value::Object(h)) => h.clone(),
        Some(_) => return Err("payload.host must be an object"),
    };
    let worker_pid = match p.get("worker_pid") {
        None | Some(Value::Null) => None,
        Some(Value::Int(pid)) => Some(*pid),
        Some(_) => return Err("payload.worker_pid must be an integer or null"),
    };
    Ok(Hello {
        id,
        agent_version: req_str(p, "agent_version", 40, "payload.agent_version must be a string of at most 40 chars")?,
        framework: match p.get("framework") {
            None => String::new(),
            Some(_) => req_str(p, "framework", 40, "payload.framework must be a string of at most 40 chars")?,
        },
        engines: str_list(p.get("engines"), 64, "payload.engines must be a list of at most 64 strings")?,
        schedulers: str_list(p.get("schedulers"), 64, "payload.schedulers must be a list of at most 64 strings")?,
        capabilities,
        host,
        worker_id: opt_str(p, "worker_id", 128, "payload.worker_id must be a string of at most 128 chars or null")?,
        worker_role: opt_str(p, "worker_role", 32, "payload.worker_role must be a string of at most 32 chars or null")?,
        worker_pid,
        worker_started_at: opt_str(
            p,
            "worker_started_at",
            64,
            "payload.worker_started_at must be a timestamp string or null",
        )?,
        runtime_features: str_list(
            p.get("runtime_features"),
            64,
            "payload.runtime_features must be a list of at most 64 strings",
        )?,
    })
}

/// Validates a `hello` already known to have `type == "hello"`.
pub(super) fn validate_hello(obj: &Object) -> Result<Hello, FrameError> {
    let (payload, id) = envelope(obj, UnsignedKind::Hello)?;
    hello_payload(payload, id).map_err(|reason| bad(UnsignedKind::Hello, reason))
}

fn parse_unsigned(bytes: &[u8], frame: UnsignedKind) -> Result<Object, FrameError> {
    let Value::Object(obj) = canonical_json::parse(bytes).map_err(ProtocolError::Json)? else {
        return Err(ProtocolError::NotObject.into());
    };
    check_version(&obj)?;
    let expected = frame.to_string();
    match obj.get("type") {
        Some(Value::String(t)) if *t == expected => Ok(obj),
        Some(Value::String(_)) => Err(bad(frame, "unexpected frame type during the handshake")),
        _ => Err(ProtocolError::TypeNotString.into()),
    }
}

/// Parses the agent's first message. A `protocol_version` other than "2"
/// yields `FrameError::Version(VersionError::Handshake(_))` (close 4426);
/// every other failure is `Protocol` or `Version(Frame)` (close 4400).
pub fn parse_hello(bytes: &[u8]) -> Result<Hello, FrameError> {
    let obj = parse_unsigned(bytes, UnsignedKind::Hello)?;
    validate_hello(&obj)
}

fn bounded_int(
    p: &Object,
    key: &str,
    range: (i64, i64),
    default: u32,
    reason: &'static str,
) -> Result<u32, &'static str> {
    match p.get(key) {
        None => Ok(default),
        Some(Value::Int(n)) if (range.0..=range.1).contains(n) => u32::try_from(*n).map_err(|_| reason),
        Some(_) => Err(reason),
    }
}

fn hello_ack_payload(p: &Object, obj: &Object, id: String) -> Result<HelloAck, &'static str> {
    const ID_REASON: &str = "payload agent_id, project_id and session_id must be strings of at most 64 chars";
    Ok(HelloAck {
        id,
        ts: obj.get("ts").and_then(Value::as_str).map(str::to_owned),
        brain_version: req_str(p, "brain_version", 40, "payload.brain_version must be a string of at most 40 chars")?,
        binding: Binding {
            agent_id: req_str(p, "agent_id", 64, ID_REASON)?,
            project_id: req_str(p, "project_id", 64, ID_REASON)?,
            session_id: req_str(p, "session_id", 64, ID_REASON)?,
        },
        heartbeat_interval_seconds: bounded_int(
            p,
            "heartbeat_interval_seconds",
            HEARTBEAT_RANGE,
            DEFAULT_HEARTBEAT,
            "payload.heartbeat_interval_seconds must be an integer in 1..3600",
        )?,
        max_frame_size_bytes: bounded_int(
            p,
            "max_frame_size_bytes",
            FRAME_SIZE_RANGE,
            DEFAULT_FRAME_SIZE,
            "payload.max_frame_size_bytes must be an integer in 1024..67108864",
        )?,
    })
}

pub(super) fn validate_hello_ack(obj: &Object) -> Result<HelloAck, FrameError> {
    let (payload, id) = envelope(obj, UnsignedKind::HelloAck)?;
    hello_ack_payload(payload, obj, id).map_err(|reason| bad(UnsignedKind::HelloAck, reason))
}

/// Parses a `hello_ack` the way the agent does (for test clients and load
/// generators that play the agent).
pub fn parse_hello_ack(bytes: &[u8]) -> Result<HelloAck, FrameError> {
    let obj = parse_unsigned(bytes, UnsignedKind::HelloAck)?;
    validate_hello_ack(&obj)
}

/// Our `hello_ack`, byte-identical to the reference brain's for the same
/// inputs. Out-of-range values are clamped into what the agent accepts
/// (heartbeat 1..3600 s, frame size 1024..64 MiB), because an ack the agent
/// rejects only causes a reconnect loop.
pub fn hello_ack_bytes(binding: &Binding, heartbeat_interval: u32, max_frame_size: u32, ts: DateTime<Utc>) -> Vec<u8> {
    let heartbeat = i64::from(heartbeat_interval).clamp(HEARTBEAT_RANGE.0, HEARTBEAT_RANGE.1);
    let frame_size = i64::from(max_frame_size).clamp(FRAME_SIZE_RANGE.0, FRAME_SIZE_RANGE.1);
    let id: String = "hack_".chars().chain(binding.session_id.chars().filter(|c| *c != '-').take(12)).collect();
    let mut out = Vec::with_capacity(400);
    out.extend_from_slice(b"{\"v\":2,\"id\":");
    write_str(&mut out, &id);
    out.extend_from_slice(b",\"ts\":");
    write_str(&mut out, &format_ts(ts));
    out.extend_from_slice(b",\"type\":\"hello_ack\",\"payload\":{\"protocol_version\":\"2\",\"brain_version\":");
    write_str(&mut out, BRAIN_VERSION);
    out.extend_from_slice(b",\"agent_id\":");
    write_str(&mut out, &binding.agent_id);
    out.extend_from_slice(b",\"project_id\":");
    write_str(&mut out, &binding.project_id);
    out.extend_from_slice(b",\"session_id\":");
    write_str(&mut out, &binding.session_id);
    out.extend_from_slice(b",\"heartbeat_interval_seconds\":");
    write_i64(&mut out, heartbeat);
    out.extend_from_slice(b",\"max_frame_size_bytes\":");
    write_i64(&mut out, frame_size);
    out.extend_from_slice(b"}}");
    out
}

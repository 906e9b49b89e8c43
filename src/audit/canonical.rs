//! The byte-exact canonical form of an audit row and of a checkpoint, and
//! their MACs. docs/audit-format.md is the normative description; the
//! vectors in tests/vectors/audit-vectors.json pin it (and were computed
//! by an independent Python implementation, scripts/audit_vectors.py).
//!
//! Encoding: a domain tag, a NUL, then every field in a fixed order as
//! `0x00` for NULL or `0x01 ‖ u32 big-endian length ‖ UTF-8 text`. Length
//! prefixes make the encoding injective: no choice of field values can
//! produce the bytes of a different row.

use std::net::IpAddr;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::security::canonical_json::{self, CanonicalError};
use crate::security::keys::DerivedKey;

pub const ROW_TAG: &[u8] = b"palisade.audit.row.v1";
pub const CHECKPOINT_TAG: &[u8] = b"palisade.audit.checkpoint.v1";
/// The genesis row chains from 32 zero bytes.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// One row exactly as stored (and as MACed).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub project_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    /// Canonical JSON text of the details object.
    pub details: String,
    pub key_id: String,
    pub prev_hmac: [u8; 32],
    pub row_hmac: [u8; 32],
}

/// Timestamps are stored with microsecond precision (PostgreSQL's), so the
/// writer truncates before MACing and the stored value round-trips exactly.
pub fn normalize_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    let mut buf = [0u8; 27];
    write_time(t, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Canonical JSON text for `details` (sorted keys, no whitespace, the same
/// number and string rules as the agent wire protocol).
pub fn canonical_details(details: &Value) -> Result<String, CanonicalError> {
    let value = canonical_json::Value::from_serde(details).map_err(|_| CanonicalError::NonFinite)?;
    let bytes = canonical_json::to_canonical_vec(&value)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    fn start<'o>(out: &'o mut Vec<u8>, tag: &[u8]) -> Encoder<'o> {
        out.clear();
        out.extend_from_slice(tag);
        out.push(0);
        Encoder(out)
    }

    fn field(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                // Fields are bounded far below 4 GiB (a row is at most a few
                // KiB), so the length always fits.
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                self.0.extend_from_slice(&len.to_be_bytes());
                self.0.extend_from_slice(s);
            }
        }
    }

    fn text(&mut self, value: Option<&str>) {
        self.field(value.map(str::as_bytes));
    }
}

/// Decimal text of an integer, without allocating.
fn decimal(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut i = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, written by hand: chrono's formatter
/// parses its format string on every call, which dominated verification.
fn write_time(t: &DateTime<Utc>, buf: &mut [u8; 27]) {
    use chrono::{Datelike, Timelike};
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for k in (0..width).rev() {
            buf[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, u32::try_from(t.year()).unwrap_or(0), 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    put(20, t.nanosecond() / 1_000 % 1_000_000, 6);
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (26, b'Z')] {
        buf[at] = c;
    }
}

/// A row's fields borrowed from wherever they live (an owned row, or a
/// database row being verified without copying).
pub struct RowView<'a> {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_kind: &'a str,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub project_id: Option<Uuid>,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<&'a str>,
    pub details: &'a str,
    pub key_id: &'a str,
    pub prev_hmac: [u8; 32],
    pub row_hmac: [u8; 32],
}

impl RowView<'_> {
    /// Write the exact bytes the row HMAC covers into `out` (cleared first).
    pub fn write_message(&self, out: &mut Vec<u8>) {
        let mut e = Encoder::start(out, ROW_TAG);
        let mut num = [0u8; 24];
        e.field(Some(decimal(self.seq, &mut num)));
        let mut time = [0u8; 27];
        write_time(&self.occurred_at, &mut time);
        e.field(Some(&time));
        e.text(Some(self.actor_kind));
        e.text(self.actor_id);
        e.text(Some(self.action));
        let mut uuid = [0u8; 36];
        e.field(self.project_id.map(|p| &*p.hyphenated().encode_lower(&mut uuid)).map(str::as_bytes));
        e.text(self.target_type);
        e.text(self.target_id);
        e.text(Some(self.outcome));
        let mut ip = [0u8; 48];
        e.field(self.client_ip.map(|addr| {
            use std::io::Write;
            let mut cur = std::io::Cursor::new(&mut ip[..]);
            let _ = write!(cur, "{addr}");
            let n = cur.position() as usize;
            &ip[..n]
        }));
        e.text(self.request_id);
        e.text(Some(self.details));
        e.text(Some(self.key_id));
        let mut hex = [0u8; 64];
        let _ = hex::encode_to_slice(self.prev_hmac, &mut hex);
        e.field(Some(&hex));
    }

    pub fn compute_hmac(&self, key: &DerivedKey, scratch: &mut Vec<u8>) -> [u8; 32] {
        self.write_message(scratch);
        key.mac(scratch)
    }
}

impl AuditRow {
    pub fn view(&self) -> RowView<'_> {
        RowView {
            seq: self.seq,
            occurred_at: self.occurred_at,
            actor_kind: &self.actor_kind,
            actor_id: self.actor_id.as_deref(),
            action: &self.action,
            project_id: self.project_id,
            target_type: self.target_type.as_deref(),
            target_id: self.target_id.as_deref(),
            outcome: &self.outcome,
            client_ip: self.client_ip,
            request_id: self.request_id.as_deref(),
            details: &self.details,
            key_id: &self.key_id,
            prev_hmac: self.prev_hmac,
            row_hmac: self.row_hmac,
        }
    }

    /// The exact bytes the row HMAC covers.
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.view().write_message(&mut out);
        out
    }

    pub fn compute_hmac(&self, key: &DerivedKey) -> [u8; 32] {
        key.mac(&self.message())
    }
}

/// A signed statement "the chain had `rows` rows ending at `seq` with head
/// HMAC `head`", written outside the database after commits.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub v: u32,
    pub seq: i64,
    #[serde(with = "hex_32")]
    pub head: [u8; 32],
    pub rows: i64,
    /// Lowest retained seq (1 until the log is pruned) and the HMAC that
    /// row chains from, so a pruned log stays verifiable.
    pub first_seq: i64,
    #[serde(with = "hex_32")]
    pub anchor: [u8; 32],
    pub at: String,
    pub key_id: String,
    #[serde(with = "hex_32")]
    pub mac: [u8; 32],
}

impl Checkpoint {
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut e = Encoder::start(&mut out, CHECKPOINT_TAG);
        e.text(Some(&self.seq.to_string()));
        e.text(Some(&hex::encode(self.head)));
        e.text(Some(&self.rows.to_string()));
        e.text(Some(&self.first_seq.to_string()));
        e.text(Some(&hex::encode(self.anchor)));
        e.text(Some(&self.at));
        e.text(Some(&self.key_id));
        out
    }
}

mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::keys::Purpose;
    use crate::security::secret::MasterSecret;

    const VECTORS: &str = include_str!("../../tests/vectors/audit-vectors.json");

    fn h32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    fn opt(v: &serde_json::Value) -> Option<String> {
        v.as_str().map(str::to_string)
    }

    #[test]
    fn rows_and_checkpoint_match_the_independent_python_vectors() {
        let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let master = MasterSecret::from_string(v["master_secret"].as_str().unwrap().to_string()).unwrap();
        let row_key = DerivedKey::derive(&master, Purpose::AuditChain);
        let cp_key = DerivedKey::derive(&master, Purpose::AuditCheckpoint);
        assert_eq!(hex::encode(row_key.expose()), v["row_key_hex"]);
        assert_eq!(row_key.key_id(), v["row_key_id"]);
        assert_eq!(cp_key.key_id(), v["checkpoint_key_id"]);
        let mut prev = GENESIS;
        for r in v["rows"].as_array().unwrap() {
            // Our canonical JSON writer must reproduce the details text.
            let details = r["details"].as_str().unwrap();
            let parsed = crate::security::canonical_json::parse(details.as_bytes()).unwrap();
            assert_eq!(crate::security::canonical_json::to_canonical_vec(&parsed).unwrap(), details.as_bytes());
            let row = AuditRow {
                seq: r["seq"].as_i64().unwrap(),
                occurred_at: chrono::DateTime::parse_from_rfc3339(r["occurred_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc),
                actor_kind: r["actor_kind"].as_str().unwrap().into(),
                actor_id: opt(&r["actor_id"]),
                action: r["action"].as_str().unwrap().into(),
                project_id: r["project_id"].as_str().map(|p| Uuid::parse_str(p).unwrap()),
                target_type: opt(&r["target_type"]),
                target_id: opt(&r["target_id"]),
                outcome: r["outcome"].as_str().unwrap().into(),
                client_ip: r["client_ip"].as_str().map(|ip| ip.parse().unwrap()),
                request_id: opt(&r["request_id"]),
                details: details.into(),
                key_id: r["key_id"].as_str().unwrap().into(),
                prev_hmac: prev,
                row_hmac: h32(r["row_hmac"].as_str().unwrap()),
            };
            assert_eq!(hex::encode(row.message()), r["message_hex"], "row {}", row.seq);
            assert_eq!(row.compute_hmac(&row_key), row.row_hmac, "row {}", row.seq);
            prev = row.row_hmac;
        }
        let c = &v["checkpoint"];
        let cp = Checkpoint {
            v: 1,
            seq: c["seq"].as_i64().unwrap(),
            head: h32(c["head"].as_str().unwrap()),
            rows: c["rows"].as_i64().unwrap(),
            first_seq: c["first_seq"].as_i64().unwrap(),
            anchor: h32(c["anchor"].as_str().unwrap()),
            at: c["at"].as_str().unwrap().into(),
            key_id: c["key_id"].as_str().unwrap().into(),
            mac: h32(c["mac"].as_str().unwrap()),
        };
        assert_eq!(cp.head, prev);
        assert_eq!(hex::encode(cp.message()), c["message_hex"]);
        assert_eq!(cp_key.mac(&cp.message()), cp.mac);
    }

    #[test]
    fn encoding_is_injective_across_field_boundaries() {
        // Moving a character from one field to the next must change the
        // message: length prefixes prevent "ab"+"c" == "a"+"bc".
        let base = AuditRow {
            seq: 1,
            occurred_at: normalize_time(Utc::now()),
            actor_kind: "user".into(),
            actor_id: Some("ab".into()),
            action: "c".into(),
            project_id: None,
            target_type: None,
            target_id: Some(String::new()),
            outcome: "success".into(),
            client_ip: None,
            request_id: None,
            details: "{}".into(),
            key_id: "k".into(),
            prev_hmac: GENESIS,
            row_hmac: GENESIS,
        };
        let mut moved = base.clone();
        moved.actor_id = Some("a".into());
        moved.action = "bc".into();
        assert_ne!(base.message(), moved.message());
        let mut null_vs_empty = base.clone();
        null_vs_empty.target_id = None;
        assert_ne!(base.message(), null_vs_empty.message());
    }

    #[test]
    fn hand_written_formatters_match_the_library() {
        let mut b = [0u8; 24];
        for n in [0i64, 7, 10, 99, 1_000_000, i64::MAX, -5, i64::MIN] {
            assert_eq!(decimal(n, &mut b), n.to_string().as_bytes());
        }
        for s in ["2026-12-04T10:00:00.000001Z", "0999-01-09T03:04:05.120000Z", "2026-12-31T23:59:59.999999Z"] {
            let t = chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            assert_eq!(format_time(&t), t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        }
    }

    #[test]
    fn time_keeps_microseconds_only() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:00:00.123456789Z").unwrap().with_timezone(&Utc);
        assert_eq!(format_time(&normalize_time(t)), "2026-12-04T10:00:00.123456Z");
    }
}

//! Tests of the hello / hello_ack handling (`frame_handshake.rs`).

use super::*;
use crate::security::frame::{verify, FrameKey};
use chrono::{TimeZone, Utc};

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("../../tests/vectors/z4j-wire-vectors.json")).unwrap()
}

fn vector_binding() -> Binding {
    Binding {
        agent_id: "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into(),
        project_id: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".into(),
        session_id: "11111111-2222-4333-8444-555555555555".into(),
    }
}

fn hello_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let v = vectors();
    let mut hello: serde_json::Value =
        serde_json::from_str(v["handshake"]["hello_agent_to_brain"].as_str().unwrap()).unwrap();
    edit(&mut hello);
    serde_json::to_vec(&hello).unwrap()
}

fn reason(err: FrameError) -> &'static str {
    match err {
        FrameError::Protocol(ProtocolError::Handshake { reason, .. }) => reason,
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[test]
fn vector_hello_parses() {
    let hello = parse_hello(&hello_with(|_| {})).unwrap();
    assert_eq!(hello.id, "hello_5c0ffee0d15ea5e5");
    assert_eq!(hello.agent_version, "1.13.0");
    assert_eq!(hello.framework, "bare");
    assert_eq!(hello.engines, ["dramatiq"]);
    assert!(hello.schedulers.is_empty());
    assert!(hello.retries_by_reference("dramatiq"));
    assert!(!hello.retries_by_reference("rq"));
    assert!(hello.has_capability("dramatiq", "purge_queue"));
    assert_eq!(hello.host_name(), Some("vector-host"));
    assert_eq!(hello.worker_id.as_deref(), Some("bare-4242-1778493600000"));
    assert_eq!(hello.worker_role, None);
    assert_eq!(hello.worker_pid, Some(4242));
    assert_eq!(hello.runtime_features, ["retry_by_reference", "external_schedule_protocol_v1"]);
}

#[test]
fn captured_hello_and_hello_ack_parse() {
    let v = vectors();
    let live = v["captured_live_session"].as_array().unwrap();
    let hello = serde_json::to_vec(&live[0]["wire_frame_json"]).unwrap();
    assert_eq!(parse_hello(&hello).unwrap().worker_id.as_deref(), Some("bare-14720-1796413740531"));
    let ack = parse_hello_ack(&serde_json::to_vec(&live[1]["wire_frame_json"]).unwrap()).unwrap();
    assert_eq!(ack.heartbeat_interval_seconds, 5);
    assert_eq!(ack.binding.session_id, "2f5b4f3a-cce9-4e45-97e1-7dcfd953f394");
    assert_eq!(ack.id, "hack_2f5b4f3acce9");
}

#[test]
fn hello_ack_matches_the_reference_bytes() {
    let v = vectors();
    let ts = Utc.with_ymd_and_hms(2026, 5, 11, 10, 0, 0).unwrap() + chrono::Duration::microseconds(123_456);
    let bytes = hello_ack_bytes(&vector_binding(), 10, 1_048_576, ts);
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), v["handshake"]["hello_ack_brain_to_agent"].as_str().unwrap());
    let ack = parse_hello_ack(&bytes).unwrap();
    assert_eq!(ack.binding, vector_binding());
    assert_eq!(ack.brain_version, BRAIN_VERSION);
    assert_eq!(ack.ts.as_deref(), Some("2026-05-11T10:00:00.123456Z"));
    // Clamped into the agent's accepted ranges.
    let ack = parse_hello_ack(&hello_ack_bytes(&vector_binding(), 0, 1, ts)).unwrap();
    assert_eq!((ack.heartbeat_interval_seconds, ack.max_frame_size_bytes), (1, 1024));
    let ack = parse_hello_ack(&hello_ack_bytes(&vector_binding(), 99_999, u32::MAX, ts)).unwrap();
    assert_eq!((ack.heartbeat_interval_seconds, ack.max_frame_size_bytes), (3600, 67_108_864));
}

#[test]
fn hello_ack_agent_side_rules() {
    let minimal = br#"{"v":2,"id":"hack_x","type":"hello_ack","payload":{"protocol_version":"2","brain_version":"1.13.0","agent_id":"a","project_id":"p","session_id":"s"}}"#;
    let ack = parse_hello_ack(minimal).unwrap();
    assert_eq!((ack.heartbeat_interval_seconds, ack.max_frame_size_bytes, ack.ts), (10, 1_048_576, None));
    let float_interval = br#"{"id":"h","type":"hello_ack","payload":{"protocol_version":"2","brain_version":"1","agent_id":"a","project_id":"p","session_id":"s","heartbeat_interval_seconds":5.0}}"#;
    assert!(reason(parse_hello_ack(float_interval).unwrap_err()).contains("heartbeat"));
    let string_v = br#"{"v":"2","id":"h","type":"hello_ack","payload":{"protocol_version":"2"}}"#;
    assert_eq!(parse_hello_ack(string_v).unwrap_err(), FrameError::Protocol(ProtocolError::VersionType));
    let wrong_version = br#"{"id":"h","type":"hello_ack","payload":{"protocol_version":"3"}}"#;
    assert_eq!(parse_hello_ack(wrong_version).unwrap_err(), FrameError::Version(VersionError::Handshake("3".into())));
}

#[test]
fn hello_version_errors_are_distinguishable() {
    let err = parse_hello(&hello_with(|h| h["payload"]["protocol_version"] = "3".into())).unwrap_err();
    assert_eq!(err, FrameError::Version(VersionError::Handshake("3".into())));
    let err = parse_hello(&hello_with(|h| h["v"] = 3.into())).unwrap_err();
    assert_eq!(err, FrameError::Version(VersionError::Frame("3".into())));
    let err = parse_hello(&hello_with(|h| h["v"] = "2".into())).unwrap_err();
    assert_eq!(err, FrameError::Protocol(ProtocolError::VersionType));
    // v absent is fine, v null is not (strict int).
    assert!(parse_hello(&hello_with(|h| {
        h.as_object_mut().unwrap().remove("v");
    }))
    .is_ok());
    assert!(reason(parse_hello(&hello_with(|h| h["v"] = serde_json::Value::Null)).unwrap_err()).contains("v must"));
    let err = parse_hello(&hello_with(|h| h["payload"]["protocol_version"] = 2.into())).unwrap_err();
    assert!(reason(err).contains("protocol_version"));
}

#[test]
fn malformed_hellos_are_protocol_errors() {
    type Edit = fn(&mut serde_json::Value);
    let cases: &[(Edit, &str)] = &[
        (|h| h["type"] = "heartbeat".into(), "unexpected frame type"),
        (|h| h["id"] = "".into(), "id must"),
        (|h| h["id"] = "x".repeat(65).into(), "id must"),
        (|h| h["ts"] = 5.into(), "ts must"),
        (|h| h["payload"] = serde_json::Value::Null, "payload must"),
        (|h| h["payload"]["engines"] = "dramatiq".into(), "engines"),
        (|h| h["payload"]["engines"] = serde_json::json!([1]), "engines"),
        (|h| h["payload"]["engines"] = serde_json::json!(vec!["e"; 65]), "engines"),
        (|h| h["payload"]["capabilities"] = serde_json::json!({"rq": "x"}), "capabilities"),
        (|h| h["payload"]["worker_id"] = "w".repeat(129).into(), "worker_id"),
        (|h| h["payload"]["worker_role"] = "r".repeat(33).into(), "worker_role"),
        (|h| h["payload"]["worker_pid"] = true.into(), "worker_pid"),
        (|h| h["payload"]["agent_version"] = serde_json::Value::Null, "agent_version"),
        (|h| h["payload"]["host"] = serde_json::json!([]), "host"),
    ];
    for (edit, want) in cases {
        let err = parse_hello(&hello_with(edit)).unwrap_err();
        assert!(reason(err.clone()).contains(want), "{want}: {err}");
    }
    assert!(parse_hello(&hello_with(|h| h["payload"]["worker_id"] = "w".repeat(128).into())).is_ok());
    assert!(parse_hello(&hello_with(|h| h["payload"]["worker_id"] = serde_json::Value::Null)).is_ok());
    assert!(matches!(parse_hello(b"[]"), Err(FrameError::Protocol(ProtocolError::NotObject))));
    assert!(matches!(parse_hello(b"{"), Err(FrameError::Protocol(ProtocolError::Json(_)))));
}

#[test]
fn handshake_frames_through_verify_are_unsigned() {
    let key = FrameKey::new(&[1u8; 32]).unwrap();
    let b = vector_binding();
    assert_eq!(verify(&key, &b, &hello_with(|_| {})).unwrap_err(), FrameError::Unsigned(UnsignedKind::Hello));
    let ack = hello_ack_bytes(&b, 10, 1_048_576, Utc::now());
    assert_eq!(verify(&key, &b, &ack).unwrap_err(), FrameError::Unsigned(UnsignedKind::HelloAck));
    let bad_hello = hello_with(|h| h["payload"]["engines"] = 7.into());
    assert!(matches!(verify(&key, &b, &bad_hello), Err(FrameError::Protocol(ProtocolError::Handshake { .. }))));
}

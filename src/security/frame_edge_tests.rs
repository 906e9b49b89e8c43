//! Edge cases of frame verification and signing beyond the vectors.

use super::tests::{binding, edit, key, signed_command_wire, SESSION};
use super::*;
use crate::security::replay::{Direction, ReplayGuard};
use chrono::{TimeZone, Utc};
use serde_json::Value as J;

#[test]
fn hmac_field_edge_cases() {
    let wire = signed_command_wire();
    let good: J = serde_json::from_str(&wire).unwrap();
    let mac = good["hmac"].as_str().unwrap().to_owned();
    let b = binding(SESSION);
    let err = |bytes: Vec<u8>| verify(&key(), &b, &bytes).unwrap_err();
    let sig = |e: SignatureError| FrameError::Signature(e);
    assert_eq!(err(edit(&wire, "hmac", None)), sig(SignatureError::Missing(FrameKind::Command)));
    assert_eq!(err(edit(&wire, "hmac", Some(J::Null))), sig(SignatureError::Missing(FrameKind::Command)));
    assert_eq!(err(edit(&wire, "hmac", Some(J::from(7)))), sig(SignatureError::Missing(FrameKind::Command)));
    assert_eq!(err(edit(&wire, "hmac", Some(mac[..63].into()))), sig(SignatureError::Length));
    assert_eq!(err(edit(&wire, "hmac", Some(format!("{mac}0").into()))), sig(SignatureError::Length));
    assert_eq!(err(edit(&wire, "hmac", Some(mac.to_uppercase().into()))), sig(SignatureError::Mismatch));
    assert_eq!(err(edit(&wire, "hmac", Some(format!("é{}", &mac[2..]).into()))), sig(SignatureError::Length));
    let mut flipped = mac.clone().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        err(edit(&wire, "hmac", Some(String::from_utf8(flipped).unwrap().into()))),
        sig(SignatureError::Mismatch)
    );
    // Wrong agent or project binding, same key: mismatch.
    let mut other = binding(SESSION);
    other.agent_id = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d4".into();
    assert_eq!(verify(&key(), &other, wire.as_bytes()).unwrap_err(), sig(SignatureError::Mismatch));
    let other_key = FrameKey::new(&[9u8; 32]).unwrap();
    assert_eq!(verify(&other_key, &b, wire.as_bytes()).unwrap_err(), sig(SignatureError::Mismatch));
}

#[test]
fn binding_members_on_the_wire_are_ignored_and_extras_are_signed() {
    let wire = signed_command_wire();
    let b = binding(SESSION);
    // Wire copies of the binding names neither help nor hurt.
    let spoofed = edit(&wire, "session_id", Some("99999999-2222-4333-8444-555555555555".into()));
    assert!(verify(&key(), &b, &spoofed).is_ok());
    let spoofed = edit(&wire, "agent_id", Some(J::from(5)));
    assert!(verify(&key(), &b, &spoofed).is_ok());
    // An extra member is covered by the MAC.
    let extra = edit(&wire, "zz_extra", Some(true.into()));
    assert_eq!(verify(&key(), &b, &extra).unwrap_err(), FrameError::Signature(SignatureError::Mismatch));
    let mut payload = Object::new();
    payload.insert("acked_id", "x".into());
    let signed =
        sign(&key(), &b, FrameKind::EventBatchAck, "eba_x", "2026-05-11T10:00:00Z", "n", 1, &payload.into()).unwrap();
    let mut with_extra: J = serde_json::from_slice(&signed).unwrap();
    with_extra["zz_extra"] = true.into();
    assert!(verify(&key(), &b, &serde_json::to_vec(&with_extra).unwrap()).is_err());
}

#[test]
fn pre_mac_checks_follow_the_reference_order() {
    let wire = signed_command_wire();
    let b = binding(SESSION);
    let err = |bytes: &[u8]| verify(&key(), &b, bytes).unwrap_err();
    let proto = |e: ProtocolError| FrameError::Protocol(e);
    assert!(matches!(err(b"{not json"), FrameError::Protocol(ProtocolError::Json(_))));
    assert!(matches!(err(b"{} trailing"), FrameError::Protocol(ProtocolError::Json(_))));
    assert_eq!(err(b"[1,2]"), proto(ProtocolError::NotObject));
    assert_eq!(err(&edit(&wire, "v", Some(3.into()))), FrameError::Version(VersionError::Frame("3".into())));
    assert_eq!(
        err(&edit(&wire, "v", Some(J::from(u64::MAX)))),
        FrameError::Version(VersionError::Frame(u64::MAX.to_string()))
    );
    for bad_v in [J::from("2"), J::from(2.0), J::from(true), serde_json::json!([2])] {
        assert_eq!(err(&edit(&wire, "v", Some(bad_v))), proto(ProtocolError::VersionType));
    }
    // Version is checked before type.
    let both = edit(&String::from_utf8(edit(&wire, "v", Some(3.into()))).unwrap(), "type", Some("ping".into()));
    assert!(matches!(err(&both), FrameError::Version(_)));
    assert_eq!(err(&edit(&wire, "type", None)), proto(ProtocolError::TypeNotString));
    assert_eq!(err(&edit(&wire, "type", Some(1.into()))), proto(ProtocolError::TypeNotString));
    assert_eq!(err(&edit(&wire, "type", Some("ping\n".into()))), proto(ProtocolError::UnknownType("ping?".into())));
    assert_eq!(err(&edit(&wire, "v", None)), proto(ProtocolError::MissingVersion));
    assert_eq!(err(&edit(&wire, "v", Some(J::Null))), proto(ProtocolError::MissingVersion));
    assert_eq!(err(&edit(&wire, "payload", Some(serde_json::json!([])))), proto(ProtocolError::PayloadType));
    assert_eq!(err(&edit(&wire, "payload", Some("x".into()))), proto(ProtocolError::PayloadType));
    // Payload checks precede the MAC, so a bad payload with no MAC is a protocol error.
    let no_mac = edit(&String::from_utf8(edit(&wire, "hmac", None)).unwrap(), "payload", Some(1.into()));
    assert_eq!(err(&no_mac), proto(ProtocolError::PayloadType));
    // Non-finite numbers and lone surrogates never reach the MAC.
    let nan = wire.replacen("\"timeout_seconds\":60", "\"timeout_seconds\":NaN", 1);
    assert!(matches!(err(nan.as_bytes()), FrameError::Protocol(ProtocolError::Json(_))));
    let inf = wire.replacen("\"timeout_seconds\":60", "\"timeout_seconds\":1e400", 1);
    assert!(matches!(err(inf.as_bytes()), FrameError::Protocol(ProtocolError::Json(_))));
    let lone = wire.replacen("\"task_name\":\"add\"", "\"task_name\":\"\\ud800\"", 1);
    assert!(matches!(err(lone.as_bytes()), FrameError::Protocol(ProtocolError::Json(_))));
}

fn signed(kind: FrameKind, seq: u64, nonce: &str, payload: J) -> Vec<u8> {
    let payload = canonical_json::Value::from_serde(&payload).unwrap();
    sign(&key(), &binding(SESSION), kind, "id-1", "2026-05-11T10:00:00.183456Z", nonce, seq, &payload).unwrap()
}

#[test]
fn semantic_checks_after_the_mac() {
    let b = binding(SESSION);
    let check = |bytes: Vec<u8>| verify(&key(), &b, &bytes);
    for status in ["success", "failed"] {
        assert!(check(signed(FrameKind::CommandResult, 1, "n", serde_json::json!({"status": status}))).is_ok());
    }
    for payload in
        [serde_json::json!({"status": "timeout"}), serde_json::json!({"status": 1}), serde_json::json!({}), J::Null]
    {
        assert_eq!(
            check(signed(FrameKind::CommandResult, 1, "n", payload)).unwrap_err(),
            FrameError::Protocol(ProtocolError::CommandResultStatus)
        );
    }
    let good_tl =
        serde_json::json!({"buffer_id": "b", "runtime_id": "r:1", "event_records": 0, "adapter_events": {"rq": 3}});
    for kind in [FrameKind::Heartbeat, FrameKind::AgentStatus] {
        assert!(check(signed(kind, 1, "n", serde_json::json!({"telemetry_loss": good_tl}))).is_ok());
        assert!(check(signed(kind, 1, "n", serde_json::json!({"telemetry_loss": null}))).is_ok());
        assert!(check(signed(kind, 1, "n", J::Null)).is_ok());
        for bad in [
            serde_json::json!("x"),
            serde_json::json!({"buffer_id": ""}),
            serde_json::json!({"runtime_id": "r".repeat(65)}),
            serde_json::json!({"event_records": -1}),
            serde_json::json!({"other_frames": 9007199254740992u64}),
            serde_json::json!({"command_results": 1.0}),
            serde_json::json!({"adapter_events": {"rq": "3"}}),
            serde_json::json!({"adapter_events": []}),
        ] {
            let result = check(signed(kind, 1, "n", serde_json::json!({"telemetry_loss": bad})));
            assert!(matches!(result, Err(FrameError::Protocol(ProtocolError::TelemetryLoss(_)))), "{bad}");
        }
    }
    let many: serde_json::Map<String, J> = (0..33).map(|i| (format!("e{i}"), J::from(0))).collect();
    let result =
        check(signed(FrameKind::Heartbeat, 1, "n", serde_json::json!({"telemetry_loss": {"adapter_events": many}})));
    assert!(matches!(result, Err(FrameError::Protocol(ProtocolError::TelemetryLoss(_)))));
}

#[test]
fn envelope_fields_are_checked_after_the_mac() {
    let b = binding(SESSION);
    let replay = |e: crate::security::replay::ReplayError| FrameError::Signature(SignatureError::Replay(e));
    use crate::security::replay::ReplayError as R;
    // Sign hand-made envelopes by computing the MAC the way a peer would.
    let sign_obj = |obj: J| {
        let Value::Object(o) = Value::from_serde(&obj).unwrap() else { panic!() };
        let mut canonical = Vec::new();
        write_signing_bytes(&o, &b, &mut canonical).unwrap();
        let mut obj = obj;
        obj["hmac"] = String::from_utf8(key().tag_hex(&canonical).to_vec()).unwrap().into();
        serde_json::to_vec(&obj).unwrap()
    };
    let base = serde_json::json!({"v": 2, "id": "hb_1", "ts": "2026-05-11T10:00:00Z", "nonce": "n", "seq": 1, "type": "heartbeat", "payload": {}});
    assert!(verify(&key(), &b, &sign_obj(base.clone())).is_ok());
    let with = |k: &str, v: J| {
        let mut o = base.clone();
        if v == J::String("<absent>".into()) {
            o.as_object_mut().unwrap().remove(k);
        } else {
            o[k] = v;
        }
        verify(&key(), &b, &sign_obj(o))
    };
    let absent = || J::String("<absent>".into());
    for bad_seq in [J::from(0), J::from(-1), J::from(true), J::from(1.0), J::from("1"), J::Null, absent()] {
        assert_eq!(with("seq", bad_seq.clone()).unwrap_err(), replay(R::InvalidSeq), "{bad_seq}");
    }
    for bad_nonce in [J::from(""), J::from(1), J::Null, absent()] {
        assert_eq!(with("nonce", bad_nonce).unwrap_err(), replay(R::MissingNonce));
    }
    for bad_ts in [J::from(1), J::Null, absent()] {
        assert_eq!(with("ts", bad_ts).unwrap_err(), replay(R::MissingTs));
    }
    for bad_id in [J::from(1), J::Null, absent()] {
        assert_eq!(with("id", bad_id).unwrap_err(), FrameError::Protocol(ProtocolError::IdType));
    }
    let no_payload = with("payload", absent()).unwrap();
    assert_eq!(no_payload.payload, Value::Null);
    let big_seq = with("seq", J::from(u64::MAX));
    assert_eq!(big_seq.unwrap_err(), replay(R::InvalidSeq));
}

#[test]
fn sign_rejects_unsignable_input() {
    let b = binding(SESSION);
    let k = key();
    assert_eq!(
        sign(&k, &b, FrameKind::Heartbeat, "i", "t", "n", 1, &Value::Int(1)).unwrap_err(),
        FrameError::Protocol(ProtocolError::PayloadType)
    );
    assert_eq!(
        sign(&k, &b, FrameKind::Heartbeat, "i", "t", "n", u64::MAX, &Value::Null).unwrap_err(),
        FrameError::Protocol(ProtocolError::SeqRange(u64::MAX))
    );
    let mut nan = Object::new();
    nan.insert("f", Value::Float(f64::NAN));
    assert!(matches!(
        sign(&k, &b, FrameKind::Heartbeat, "i", "t", "n", 1, &nan.into()),
        Err(FrameError::Protocol(ProtocolError::Canonical(_)))
    ));
}

#[test]
fn format_ts_and_nonce() {
    let t = Utc.with_ymd_and_hms(2026, 5, 11, 10, 0, 0).unwrap();
    assert_eq!(format_ts(t), "2026-05-11T10:00:00Z");
    assert_eq!(format_ts(t + chrono::Duration::microseconds(123_456)), "2026-05-11T10:00:00.123456Z");
    assert_eq!(format_ts(t + chrono::Duration::microseconds(50)), "2026-05-11T10:00:00.000050Z");
    assert_eq!(format_ts(t + chrono::Duration::nanoseconds(999)), "2026-05-11T10:00:00Z");
    assert_eq!(format_ts(t + chrono::Duration::nanoseconds(1_999)), "2026-05-11T10:00:00.000001Z");
    let a = new_nonce();
    assert_eq!(a.len(), 22);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_ne!(a, new_nonce());
    // Our own timestamps pass our own freshness check.
    let now = Utc::now();
    let mut guard = ReplayGuard::new(Direction::BrainToAgent);
    let frame = signed(FrameKind::Heartbeat, 1, &new_nonce(), serde_json::json!({}));
    let frame = verify(&key(), &binding(SESSION), &frame).unwrap();
    assert!(guard.check(1, &frame.nonce, &format_ts(now), now, 0).is_ok());
}

#[test]
fn frame_kind_names_round_trip() {
    for kind in FrameKind::ALL {
        assert_eq!(FrameKind::from_wire(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(FrameKind::from_wire("hello"), None);
    assert!(!FrameKind::Command.sent_by_agent());
    assert!(!FrameKind::EventBatchAck.sent_by_agent());
    assert!(FrameKind::CommandResult.sent_by_agent());
}

#[test]
fn mutated_frames_only_ever_fail_cleanly() {
    let wire = signed_command_wire().into_bytes();
    let b = binding(SESSION);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut accepted = 0;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut input = wire.clone();
        let pos = (state as usize) % input.len();
        input[pos] = (state >> 32) as u8;
        // Whitespace-only or equivalent edits may still verify; nothing panics.
        if verify(&key(), &b, &input).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted < 2_000, "{accepted}");
}

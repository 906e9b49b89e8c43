//! Tests of `frame.rs` against the binding vectors (spec §7). Edge cases are
//! in `frame_edge_tests.rs`; both are split out only to keep files short.

use super::*;
use crate::security::replay::{Direction, ReplayGuard};
use chrono::{DateTime, Utc};
use serde_json::Value as J;

pub(super) fn vectors() -> J {
    serde_json::from_str(include_str!("../../tests/vectors/z4j-wire-vectors.json")).unwrap()
}

pub(super) fn key() -> FrameKey {
    FrameKey::new(&hex::decode("82c5df27cbb438907572f8f7c7120e7aea30ff7bc25fec4ed68b1045a24f72ed").unwrap()).unwrap()
}

pub(super) fn binding(session: &str) -> Binding {
    Binding {
        agent_id: "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3".into(),
        project_id: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".into(),
        session_id: session.into(),
    }
}

pub(super) const SESSION: &str = "11111111-2222-4333-8444-555555555555";

pub(super) fn clock(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// A vector's wire frame with one top-level member replaced (or removed).
pub(super) fn edit(wire: &str, member: &str, value: Option<J>) -> Vec<u8> {
    let mut frame: J = serde_json::from_str(wire).unwrap();
    let obj = frame.as_object_mut().unwrap();
    match value {
        Some(v) => obj.insert(member.into(), v),
        None => obj.remove(member),
    };
    serde_json::to_vec(&frame).unwrap()
}

pub(super) fn signed_command_wire() -> String {
    vectors()["signed_vectors"][4]["wire_frame_utf8"].as_str().unwrap().to_owned()
}

#[test]
fn signed_vectors_reproduce_byte_for_byte() {
    let v = vectors();
    let entries = v["signed_vectors"].as_array().unwrap();
    assert_eq!(entries.len(), 9);
    for entry in entries {
        let name = entry["name"].as_str().unwrap();
        let inputs = &entry["inputs"];
        let k = FrameKey::new(&hex::decode(inputs["secret_hex"].as_str().unwrap()).unwrap()).unwrap();
        let b = Binding {
            agent_id: inputs["agent_id"].as_str().unwrap().into(),
            project_id: inputs["project_id"].as_str().unwrap().into(),
            session_id: inputs["session_id"].as_str().unwrap().into(),
        };
        let wire = entry["wire_frame_utf8"].as_str().unwrap();
        let want_hmac = entry["hmac_sha256_hex"].as_str().unwrap();

        // Canonical bytes of (wire − hmac + binding), through our parser.
        let Value::Object(obj) = canonical_json::parse(wire.as_bytes()).unwrap() else { panic!() };
        let mut canonical = Vec::new();
        write_signing_bytes(&obj, &b, &mut canonical).unwrap();
        assert_eq!(hex::encode(&canonical), entry["canonical_bytes_hex"].as_str().unwrap(), "{name}");
        assert_eq!(canonical.len() as u64, entry["canonical_bytes_len"].as_u64().unwrap(), "{name}");
        assert_eq!(std::str::from_utf8(&k.tag_hex(&canonical)).unwrap(), want_hmac, "{name}");

        // The vector's own wire frame verifies.
        let frame = verify(&k, &b, wire.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.kind.as_str(), inputs["type"].as_str().unwrap());
        assert_eq!(frame.id, inputs["id"].as_str().unwrap());
        assert_eq!(frame.ts, inputs["ts"].as_str().unwrap());
        assert_eq!(frame.nonce, inputs["nonce"].as_str().unwrap());
        assert_eq!(frame.seq, inputs["seq"].as_u64().unwrap());

        // Signing the same inputs gives the same MAC, and our frame verifies.
        let signed = sign(&k, &b, frame.kind, &frame.id, &frame.ts, &frame.nonce, frame.seq, &frame.payload).unwrap();
        let ours: J = serde_json::from_slice(&signed).unwrap();
        assert_eq!(ours["hmac"], want_hmac, "{name}");
        assert_eq!(verify(&k, &b, &signed).unwrap(), frame, "{name}");
        // Frames without floats come out byte-identical to the reference
        // wire form apart from payload member order (ours is sorted).
        let reference: J = serde_json::from_str(wire).unwrap();
        assert_eq!(ours, reference, "{name}");
    }
}

#[test]
fn canonicalisation_stress_vector_details() {
    let v = vectors();
    let entry = &v["signed_vectors"][8];
    let canonical = entry["canonical_bytes_utf8"].as_str().unwrap();
    assert!(canonical.contains(r#""big":18446744073709551617"#));
    assert!(canonical.contains(r#""runtime":1e-05"#));
    assert!(canonical.contains(r#""whole_float":3.0"#));
    assert!(canonical.contains(r#"{"Zeta":true,"alpha":null"#));
    let frame = verify(&key(), &binding(SESSION), entry["wire_frame_utf8"].as_str().unwrap().as_bytes()).unwrap();
    let data = &frame.payload_object().unwrap().get("events").unwrap().as_array().unwrap()[0];
    let data = data.as_object().unwrap().get("data").unwrap().as_object().unwrap();
    assert_eq!(data.get("runtime"), Some(&Value::Float(1e-5)));
    assert!(matches!(data.get("big"), Some(Value::BigInt(b)) if b.as_str() == "18446744073709551617"));
}

#[test]
fn verification_sequences_pass_the_mac_and_the_replay_guard() {
    let v = vectors();
    let ver = &v["verification"];
    let now = clock(ver["verifier_clock"].as_str().unwrap());
    let signed = v["signed_vectors"].as_array().unwrap();
    for (list, direction) in [
        ("agent_to_brain_sequence_real_verifier", Direction::AgentToBrain),
        ("brain_to_agent_sequence_real_verifier", Direction::BrainToAgent),
    ] {
        let mut guard = ReplayGuard::new(direction);
        for expected in ver[list].as_array().unwrap() {
            assert_eq!(expected["accepted"], true);
            let dir = if direction == Direction::AgentToBrain { "agent->brain" } else { "brain->agent" };
            let entry = signed
                .iter()
                .find(|e| {
                    e["inputs"]["id"] == expected["id"] && e["frame_type"] == expected["type"] && e["direction"] == dir
                })
                .unwrap();
            let wire = entry["wire_frame_utf8"].as_str().unwrap().as_bytes();
            let frame = guard.verify(&key(), &binding(SESSION), wire, now, 0).unwrap();
            assert_eq!(frame.kind.as_str(), expected["type"].as_str().unwrap());
        }
    }
}

#[test]
fn captured_live_session_frames_verify() {
    let v = vectors();
    let mut signed = 0;
    for entry in v["captured_live_session"].as_array().unwrap() {
        let wire = serde_json::to_vec(&entry["wire_frame_json"]).unwrap();
        if entry["signed"] == false {
            assert!(matches!(verify(&key(), &binding(SESSION), &wire), Err(FrameError::Unsigned(_))));
            continue;
        }
        let b = Binding {
            agent_id: entry["agent_id"].as_str().unwrap().into(),
            project_id: entry["project_id"].as_str().unwrap().into(),
            session_id: entry["session_id"].as_str().unwrap().into(),
        };
        let name = entry["name"].as_str().unwrap();
        let frame = verify(&key(), &b, &wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Value::Object(obj) = canonical_json::parse(&wire).unwrap() else { panic!() };
        let mut canonical = Vec::new();
        write_signing_bytes(&obj, &b, &mut canonical).unwrap();
        assert_eq!(std::str::from_utf8(&canonical).unwrap(), entry["canonical_bytes_utf8"].as_str().unwrap(), "{name}");
        assert_eq!(
            frame.kind.sent_by_agent(),
            entry["direction"] == "agent->brain" || frame.kind == FrameKind::Heartbeat,
            "{name}"
        );
        // Stale now: a live guard refuses them for skew.
        let mut guard = ReplayGuard::new(Direction::AgentToBrain);
        assert!(guard.verify(&key(), &b, &wire, Utc::now(), 0).is_err());
        signed += 1;
    }
    assert_eq!(signed, 14);
}

#[test]
fn negative_vectors_get_the_reference_error_class() {
    let v = vectors();
    let signed = v["signed_vectors"].as_array().unwrap();
    let by_name =
        |n: &str| signed.iter().find(|e| e["name"] == n).unwrap()["wire_frame_utf8"].as_str().unwrap().to_owned();
    for entry in v["negative_vectors"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let now = clock(entry["verifier_clock_utc"].as_str().unwrap());
        let b = binding(entry["verifier_session_id"].as_str().unwrap());
        let mut guard = ReplayGuard::new(Direction::BrainToAgent);
        match entry["verifier_primed_with"].as_str() {
            None => {}
            Some("command seq 2") => {
                guard.verify(&key(), &b, by_name("brain_command_retry_task_seq2").as_bytes(), now, 0).unwrap();
            }
            Some("error seq 3") => {
                guard.verify(&key(), &b, by_name("brain_error_fatal_seq3").as_bytes(), now, 0).unwrap();
            }
            Some(other) => panic!("unknown priming {other}"),
        }
        let result = guard.verify(&key(), &b, entry["wire_frame_utf8"].as_str().unwrap().as_bytes(), now, 1);
        if entry["accepted"] == true {
            assert!(result.is_ok(), "{name}: {result:?}");
            continue;
        }
        let err = result.unwrap_err();
        let class = match &err {
            FrameError::Signature(_) => "SignatureError",
            FrameError::Protocol(_) => "ProtocolError",
            FrameError::Version(_) => "ProtocolVersionError",
            FrameError::Unsigned(_) => "Unsigned",
        };
        assert_eq!(class, entry["error_class"].as_str().unwrap(), "{name}: {err}");
        // Our inner messages are worded like the reference's.
        assert!(err.to_string().ends_with(entry["error"].as_str().unwrap()), "{name}: {err}");
    }
}

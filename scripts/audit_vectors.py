#!/usr/bin/env python3
"""Independent implementation of Palisade's audit row and checkpoint MACs
(docs/audit-format.md), used to generate tests/vectors/audit-vectors.json.

It shares no code with the Rust implementation: if both agree on these
vectors, the format is pinned by two readings of the document.
Usage: python3 scripts/audit_vectors.py > tests/vectors/audit-vectors.json
"""
import hashlib
import hmac
import json
import struct

MASTER = b"audit-vector-master-secret-0123456789-abcdefghij"
KDF_PREFIX = b"palisade/kdf/v1\x00"


def derive(label):
    return hmac.new(MASTER, KDF_PREFIX + label.encode(), hashlib.sha256).digest()


def key_id(key):
    return hmac.new(key, b"palisade/key-id", hashlib.sha256).hexdigest()[:16]


def field(value):
    if value is None:
        return b"\x00"
    data = value.encode("utf-8")
    return b"\x01" + struct.pack(">I", len(data)) + data


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


ROW_FIELDS = ["seq", "occurred_at", "actor_kind", "actor_id", "action", "project_id", "target_type",
              "target_id", "outcome", "client_ip", "request_id", "details", "key_id", "prev_hmac"]


def row_message(row):
    out = b"palisade.audit.row.v1\x00"
    for name in ROW_FIELDS:
        out += field(row[name])
    return out


def checkpoint_message(cp):
    out = b"palisade.audit.checkpoint.v1\x00"
    for name in ["seq", "head", "rows", "first_seq", "anchor", "at", "key_id"]:
        out += field(cp[name])
    return out


def main():
    row_key = derive("audit-chain/v1")
    cp_key = derive("audit-checkpoint/v1")
    rid = key_id(row_key)
    events = [
        dict(occurred_at="2026-12-04T10:00:00.000000Z", actor_kind="system", actor_id=None, action="setup.attempt",
             project_id=None, target_type=None, target_id=None, outcome="denied", client_ip="203.0.113.9",
             request_id="req_0000000000000001", details={"reason": "invalid_token"}),
        dict(occurred_at="2026-12-04T10:00:01.250000Z", actor_kind="user",
             actor_id="0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3", action="auth.login", project_id=None,
             target_type=None, target_id=None, outcome="success", client_ip="2001:db8::7",
             request_id="req_0000000000000002",
             details={"session_id": "11111111-2222-4333-8444-555555555555", "z": [1, 2.5, None, True],
                      "a": {"nested": "ünïcødé ✓ \u2028 \"quoted\"", "n": 18446744073709551617}}),
        dict(occurred_at="2026-12-04T10:00:02.000001Z", actor_kind="api_key", actor_id="pal_AbCd",
             action="project.updated", project_id="6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b", target_type="project",
             target_id="demo", outcome="success", client_ip=None, request_id=None,
             details={"fields": ["name"], "empty": {}, "ratio": 1e-05, "big": 1e+16, "ctrl": "a\u0001b"}),
    ]
    prev = bytes(32)
    rows = []
    for i, ev in enumerate(events, start=1):
        row = dict(ev)
        row["seq"] = str(i)
        row["details"] = canonical_json(ev["details"])
        row["key_id"] = rid
        row["prev_hmac"] = prev.hex()
        msg = row_message(row)
        mac = hmac.new(row_key, msg, hashlib.sha256).digest()
        rows.append({
            "seq": i, "occurred_at": row["occurred_at"], "actor_kind": row["actor_kind"],
            "actor_id": row["actor_id"], "action": row["action"], "project_id": row["project_id"],
            "target_type": row["target_type"], "target_id": row["target_id"], "outcome": row["outcome"],
            "client_ip": row["client_ip"], "request_id": row["request_id"], "details": row["details"],
            "key_id": rid, "prev_hmac": prev.hex(), "message_hex": msg.hex(), "row_hmac": mac.hex(),
        })
        prev = mac
    cp = {"seq": "3", "head": prev.hex(), "rows": "3", "first_seq": "1", "anchor": bytes(32).hex(),
          "at": "2026-12-04T10:00:03.000000Z", "key_id": key_id(cp_key)}
    cp_msg = checkpoint_message(cp)
    print(json.dumps({
        "about": "Palisade audit-format v1 vectors, computed by scripts/audit_vectors.py (independent of the Rust code).",
        "master_secret": MASTER.decode(),
        "row_key_hex": row_key.hex(),
        "row_key_id": rid,
        "checkpoint_key_hex": cp_key.hex(),
        "checkpoint_key_id": key_id(cp_key),
        "genesis_prev_hmac": bytes(32).hex(),
        "rows": rows,
        "checkpoint": {"seq": 3, "head": cp["head"], "rows": 3, "first_seq": 1, "anchor": cp["anchor"],
                       "at": cp["at"], "key_id": cp["key_id"], "message_hex": cp_msg.hex(),
                       "mac": hmac.new(cp_key, cp_msg, hashlib.sha256).hexdigest()},
    }, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

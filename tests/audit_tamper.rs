//! Tamper suite: a database administrator edits the audit table directly
//! (triggers disabled, superuser); verification must name the first bad
//! row and the right reason for each kind of tampering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::*;
use palisade::audit::checkpoint::{CheckpointSink, FileSink};
use palisade::audit::keys::AuditKeys;
use palisade::audit::scan::verify_segmented;
use palisade::audit::verify::{verify_table, Reason, Report};
use palisade::security::secret::MasterSecret;
use palisade::store::Db;
use serde_json::json;

struct Fixture {
    db: TestDb,
    _dir: tempdir::Dir,
    checkpoints: PathBuf,
    rows: i64,
}

/// A server that wrote a chain of audited actions, then stopped cleanly
/// (its last checkpoint covers every row). A pristine copy is kept in
/// `audit_pristine` so each case starts from the same chain.
async fn fixture(actions: usize) -> Fixture {
    // Default (1 s) checkpoint interval: the actions below finish well
    // within it, so checkpoints exist only near the start and at shutdown,
    // and a tail cut lands where no checkpoint signed the state.
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    for i in 0..actions {
        let r = admin.patch("/api/v1/auth/me", json!({ "display_name": format!("name {i}") })).await;
        assert_eq!(r.status, 200);
    }
    let checkpoints = srv.data_dir.path().join("audit-checkpoints.log");
    let TestServer { running, db, data_dir, .. } = srv;
    running.unwrap().shutdown().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE audit_pristine AS SELECT * FROM audit_log").await.unwrap();
    let rows: i64 = c.query_one("SELECT count(*) FROM audit_log", &[]).await.unwrap().get(0);
    Fixture { db, _dir: data_dir, checkpoints, rows }
}

fn keys(extra_previous: &[&str]) -> AuditKeys {
    let prev: Vec<MasterSecret> =
        extra_previous.iter().map(|s| MasterSecret::from_string(s.to_string()).unwrap()).collect();
    AuditKeys::new(&MasterSecret::from_string(SECRET.into()).unwrap(), &prev)
}

impl Fixture {
    async fn reset(&self) -> tokio_postgres::Client {
        let c = self.db.client().await;
        // Acting as a DBA with raw access: triggers and privileges off.
        c.batch_execute("SET session_replication_role = replica; DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_pristine")
            .await
            .unwrap();
        c
    }

    /// Verifies as one walk, then cut into 2–5 parallel segments (so the
    /// seams land on, before and after the tampered rows): every split must
    /// give the same answer, down to the row count and the detail text.
    async fn verify(&self, keys: &AuditKeys) -> Report {
        let db = Db::connect(&self.db.url, 2).unwrap();
        let cps = FileSink::new(self.checkpoints.clone()).load(keys).unwrap();
        let whole = verify_segmented(&db, keys, &cps, Some(1), |_| {}).await.unwrap();
        for n in 2..=5 {
            let split = verify_segmented(&db, keys, &cps, Some(n), |_| {}).await.unwrap();
            assert_eq!(
                (split.intact, split.rows_checked, split.finding.as_ref().map(|f| (f.seq, f.reason, f.detail.clone()))),
                (whole.intact, whole.rows_checked, whole.finding.as_ref().map(|f| (f.seq, f.reason, f.detail.clone()))),
                "{n} segments disagree with one walk"
            );
        }
        let auto = verify_table(&db, keys, &cps, |_| {}).await.unwrap();
        assert_eq!(auto.finding.map(|f| (f.seq, f.reason)), whole.finding.as_ref().map(|f| (f.seq, f.reason)));
        whole
    }

    async fn expect(&self, what: &str, seq: i64, reason: Reason) {
        let report = self.verify(&keys(&[])).await;
        let f = report.finding.unwrap_or_else(|| panic!("{what}: tampering not detected"));
        assert_eq!((f.seq, f.reason), (seq, reason), "{what}: {}", f.detail);
        assert!(!report.intact);
    }
}

#[tokio::test]
async fn intact_chain_verifies() {
    let fx = fixture(20).await;
    let report = fx.verify(&keys(&[])).await;
    assert!(report.intact, "{:?}", report.finding);
    assert_eq!(report.rows_checked as i64, fx.rows);
    assert_eq!(fx.rows, 21, "setup.completed plus one row per PATCH");
    assert_eq!(report.newest_checkpoint_seq, Some(fx.rows));
}

#[tokio::test]
async fn every_column_of_a_middle_row_is_covered() {
    let fx = fixture(12).await;
    let mid = fx.rows / 2;
    let edits = [
        ("occurred_at", "occurred_at = occurred_at + interval '1 second'"),
        ("actor_kind", "actor_kind = 'system'"),
        ("actor_id", "actor_id = '00000000-0000-4000-8000-000000000000'"),
        ("action", "action = 'auth.logout'"),
        ("project_id", "project_id = gen_random_uuid()"),
        ("target_type", "target_type = 'session'"),
        ("target_id", "target_id = 'someone-else'"),
        ("outcome", "outcome = 'failure'"),
        ("client_ip", "client_ip = '198.51.100.77'"),
        ("request_id", "request_id = 'req_forged'"),
        ("details", "details = '{\"fields\":[\"nothing\"]}'"),
        ("prev_hmac", "prev_hmac = sha256('x'::bytea)"),
        ("row_hmac", "row_hmac = sha256('y'::bytea)"),
    ];
    for (column, set) in edits {
        let c = fx.reset().await;
        c.batch_execute(&format!("UPDATE audit_log SET {set} WHERE seq = {mid}")).await.unwrap();
        fx.expect(column, mid, Reason::HmacMismatch).await;
    }
    let c = fx.reset().await;
    c.batch_execute(&format!("UPDATE audit_log SET key_id = 'feedfacefeedface' WHERE seq = {mid}")).await.unwrap();
    fx.expect("key_id", mid, Reason::UnknownKey).await;
    let c = fx.reset().await;
    c.batch_execute(&format!("UPDATE audit_log SET seq = 100000 WHERE seq = {mid}")).await.unwrap();
    fx.expect("seq", mid, Reason::Gap).await;
}

#[tokio::test]
async fn deletions_in_the_middle_and_at_the_tail() {
    let fx = fixture(15).await;
    let (mid, last) = (fx.rows / 2, fx.rows);

    let c = fx.reset().await;
    c.batch_execute(&format!("DELETE FROM audit_log WHERE seq = {mid}")).await.unwrap();
    fx.expect("middle row deleted", mid, Reason::Gap).await;

    // Deleting a middle row and renumbering the rest hides the gap, not the
    // broken link.
    let c = fx.reset().await;
    c.batch_execute(&format!(
        "DELETE FROM audit_log WHERE seq = {mid}; UPDATE audit_log SET seq = seq - 1 WHERE seq > {mid}"
    ))
    .await
    .unwrap();
    fx.expect("middle row deleted and renumbered", mid, Reason::HmacMismatch).await;

    let c = fx.reset().await;
    c.batch_execute(&format!("DELETE FROM audit_log WHERE seq = {last}")).await.unwrap();
    fx.expect("last row deleted", last, Reason::Truncated).await;

    let c = fx.reset().await;
    c.batch_execute(&format!("DELETE FROM audit_log WHERE seq > {}", last - 10)).await.unwrap();
    fx.expect("last 10 rows deleted", last - 9, Reason::Truncated).await;

    let c = fx.reset().await;
    c.batch_execute("TRUNCATE audit_log").await.unwrap();
    fx.expect("table truncated", 1, Reason::Truncated).await;

    let c = fx.reset().await;
    c.batch_execute("DELETE FROM audit_log WHERE seq <= 3").await.unwrap();
    fx.expect("oldest rows deleted without a signed prune", 1, Reason::Gap).await;
}

/// Large tables are verified in parallel segments; the seams between them
/// must hide nothing. Every row in turn is deleted and then edited, so with
/// the 2–5 way splits `verify` compares, each seam has a tampered row on
/// it, just before it and just after it.
#[tokio::test]
async fn seams_between_parallel_segments_hide_nothing() {
    let fx = fixture(20).await;
    let last = fx.rows;
    for seq in 1..=last {
        let c = fx.reset().await;
        c.batch_execute(&format!("DELETE FROM audit_log WHERE seq = {seq}")).await.unwrap();
        let reason = if seq == last { Reason::Truncated } else { Reason::Gap };
        fx.expect(&format!("row {seq} deleted"), seq, reason).await;

        let c = fx.reset().await;
        c.batch_execute(&format!("UPDATE audit_log SET details = '{{\"forged\":{seq}}}' WHERE seq = {seq}"))
            .await
            .unwrap();
        fx.expect(&format!("row {seq} edited"), seq, Reason::HmacMismatch).await;
    }
    // A whole segment's worth of rows gone (under every split, some segment
    // sees none of its own rows, or starts without the row it chains from).
    for (lo, hi) in [(6, 10), (8, 14), (2, 19)] {
        let c = fx.reset().await;
        c.batch_execute(&format!("DELETE FROM audit_log WHERE seq BETWEEN {lo} AND {hi}")).await.unwrap();
        fx.expect(&format!("rows {lo}..={hi} deleted"), lo, Reason::Gap).await;
    }
    let c = fx.reset().await;
    drop(c);
    let report = fx.verify(&keys(&[])).await;
    assert!(report.intact && report.rows_checked as i64 == last, "{:?}", report.finding);
}

#[tokio::test]
async fn forged_swapped_and_foreign_key_rows() {
    let fx = fixture(10).await;
    let last = fx.rows;

    // A forged row appended after the head, with a made-up HMAC.
    let c = fx.reset().await;
    c.batch_execute(&format!(
        "INSERT INTO audit_log SELECT seq + 1, occurred_at, actor_kind, actor_id, 'user.deleted', project_id, target_type,
            target_id, outcome, client_ip, request_id, details, key_id, row_hmac, sha256(row_hmac)
         FROM audit_pristine WHERE seq = {last}"
    ))
    .await
    .unwrap();
    fx.expect("forged row", last + 1, Reason::HmacMismatch).await;

    // Two rows swap contents (seq stays in place). Unique HMAC columns make
    // a DBA go through a temporary value, as a real one would.
    let (a, b) = (fx.rows / 2, fx.rows / 2 + 1);
    let c = fx.reset().await;
    let copy = |to: i64, from: i64| {
        format!(
            "UPDATE audit_log t SET occurred_at = p.occurred_at, actor_kind = p.actor_kind, actor_id = p.actor_id,
                action = p.action, project_id = p.project_id, target_type = p.target_type, target_id = p.target_id,
                outcome = p.outcome, client_ip = p.client_ip, request_id = p.request_id, details = p.details,
                key_id = p.key_id, prev_hmac = p.prev_hmac, row_hmac = p.row_hmac
             FROM audit_pristine p WHERE t.seq = {to} AND p.seq = {from};"
        )
    };
    c.batch_execute(&format!(
        "UPDATE audit_log SET prev_hmac = sha256('t1'), row_hmac = sha256('t2') WHERE seq = {a}; {} {}",
        copy(b, a),
        copy(a, b)
    ))
    .await
    .unwrap();
    fx.expect("two rows swapped", a, Reason::HmacMismatch).await;
}

#[tokio::test]
async fn a_table_restored_to_an_older_copy_is_rolled_back() {
    // Snapshot after the first actions, then more actions, then restore.
    let srv = TestServer::start_with(&[("PALISADE_AUDIT_CHECKPOINT_MS", "10")]).await;
    let mut admin = srv.admin().await;
    for i in 0..5 {
        admin.patch("/api/v1/auth/me", json!({ "display_name": format!("a{i}") })).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await; // checkpoint the snapshot state
    let c = srv.db.client().await;
    c.batch_execute("CREATE TABLE audit_snapshot AS SELECT * FROM audit_log").await.unwrap();
    let snap: i64 = c.query_one("SELECT max(seq) FROM audit_snapshot", &[]).await.unwrap().get(0);
    for i in 0..5 {
        admin.patch("/api/v1/auth/me", json!({ "display_name": format!("b{i}") })).await;
    }
    let checkpoints = srv.data_dir.path().join("audit-checkpoints.log");
    let TestServer { running, db, data_dir: _dir, .. } = srv;
    running.unwrap().shutdown().await;
    let fx = Fixture { db, _dir, checkpoints, rows: 0 };
    let c = fx.db.client().await;
    c.batch_execute("SET session_replication_role = replica; DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_snapshot")
        .await
        .unwrap();
    fx.expect("restored older copy", snap + 1, Reason::RolledBack).await;

    // Restored, and then the application kept writing on top: the row a
    // checkpoint signed now has different contents.
    let keys = keys(&[]);
    common::chain::extend_chain(&Db::connect(&fx.db.url, 2).unwrap(), &keys, 7, "after.restore").await;
    let report = fx.verify(&keys).await;
    let f = report.finding.unwrap();
    assert_eq!(f.reason, Reason::RolledBack, "{}", f.detail);
    assert!(f.seq > snap && f.seq <= snap + 7, "{}", f.seq);
}

#[tokio::test]
async fn rows_signed_with_an_unknown_key_are_named() {
    let fx = fixture(8).await;
    let mid = fx.rows / 2;
    // Re-sign row `mid` with a key derived from another master secret.
    let other =
        AuditKeys::new(&MasterSecret::from_string("some-other-master-secret-0123456789-abcdef".into()).unwrap(), &[]);
    let db = Db::connect(&fx.db.url, 2).unwrap();
    let conn = db.conn().await.unwrap();
    let mut row = palisade::store::audit::row_at(&conn, mid).await.unwrap().unwrap();
    let (kid, key) = other.rows.signing();
    row.key_id = kid.to_string();
    row.row_hmac = row.compute_hmac(key);
    let c = fx.reset().await;
    c.execute(
        "UPDATE audit_log SET key_id = $2, row_hmac = $3 WHERE seq = $1",
        &[&mid, &row.key_id, &row.row_hmac.as_slice()],
    )
    .await
    .unwrap();
    fx.expect("row signed with an unknown key", mid, Reason::UnknownKey).await;
}

#[tokio::test]
async fn the_checkpoint_file_itself_cannot_be_edited() {
    let fx = fixture(3).await;
    let text = std::fs::read_to_string(&fx.checkpoints).unwrap();
    let first_line = text.lines().next().unwrap().to_string();
    let edited = first_line.replacen("\"rows\":", "\"rows\":1", 1);
    std::fs::write(&fx.checkpoints, text.replacen(&first_line, &edited, 1)).unwrap();
    let err = FileSink::new(fx.checkpoints.clone()).load(&keys(&[])).unwrap_err();
    assert!(err.to_string().contains("bad MAC"), "{err}");
}

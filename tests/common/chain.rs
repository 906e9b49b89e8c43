//! Audit rows written straight into the table, as a DBA with the key (or a
//! bulk load) would: signed and chained on from the table's head.

use palisade::audit::canonical::{normalize_time, AuditRow, GENESIS};
use palisade::audit::keys::AuditKeys;
use palisade::store::{audit as store, Db};

/// Append `n` system rows named `action` after the head, signed with
/// `keys`' signing key, 10,000 per INSERT; returns the new head's seq.
pub async fn extend_chain(db: &Db, keys: &AuditKeys, n: usize, action: &str) -> i64 {
    let conn = db.conn().await.unwrap();
    let (mut seq, mut prev) = store::head(&conn).await.unwrap().unwrap_or((0, GENESIS));
    let (kid, key) = keys.rows.signing();
    let at = normalize_time(chrono::Utc::now());
    let mut rows = Vec::with_capacity(n.min(10_000));
    for i in 0..n {
        seq += 1;
        let mut row = AuditRow {
            seq,
            occurred_at: at,
            actor_kind: "system".into(),
            actor_id: None,
            action: action.into(),
            project_id: None,
            target_type: None,
            target_id: None,
            outcome: "success".into(),
            client_ip: None,
            request_id: None,
            details: "{}".into(),
            key_id: kid.to_string(),
            prev_hmac: prev,
            row_hmac: [0; 32],
        };
        row.row_hmac = row.compute_hmac(key);
        prev = row.row_hmac;
        rows.push(row);
        if rows.len() == 10_000 || i + 1 == n {
            store::insert_batch(&conn, &rows).await.unwrap();
            rows.clear();
        }
    }
    seq
}

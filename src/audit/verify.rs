//! Verifying the chain: every row's HMAC, the links, the sequence, and
//! the table against the signed checkpoints. Used by `palisade audit
//! verify`, `GET /api/v1/audit/verify` and (from the newest checkpoint
//! forward) by the writer at start-up.

use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::canonical::{Checkpoint, RowView, GENESIS};
use super::keys::AuditKeys;
use crate::store::{audit as store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A row's stored HMAC does not match its contents (a field was edited,
    /// a row forged or swapped).
    HmacMismatch,
    /// A row does not chain from the row before it (a row was deleted or
    /// re-inserted).
    BrokenLink,
    /// The sequence skips (rows deleted), or the log starts somewhere no
    /// signed checkpoint says it may.
    Gap,
    /// The table ends before the newest signed checkpoint (tail deleted).
    Truncated,
    /// A row names a key id no configured key has.
    UnknownKey,
    /// The table is (or grew from) an older state than a checkpoint saw.
    RolledBack,
    /// The checkpoint sink itself was edited or forged.
    BadCheckpoint,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HmacMismatch => "hmac_mismatch",
            Reason::BrokenLink => "broken_link",
            Reason::Gap => "gap",
            Reason::Truncated => "truncated",
            Reason::UnknownKey => "unknown_key",
            Reason::RolledBack => "rolled_back",
            Reason::BadCheckpoint => "bad_checkpoint",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The first bad row (for `truncated`, the first missing one).
    pub seq: i64,
    pub reason: Reason,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub intact: bool,
    pub rows_checked: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub checkpoints: usize,
    pub newest_checkpoint_seq: Option<i64>,
    pub finding: Option<Finding>,
    pub elapsed_ms: u64,
}

/// Walks rows in seq order, checking each against the one before.
pub struct Walker<'k> {
    keys: &'k AuditKeys,
    next_seq: i64,
    prev: [u8; 32],
    scratch: Vec<u8>,
    pub rows: u64,
    pub last: Option<(i64, [u8; 32])>,
}

fn finding(seq: i64, reason: Reason, detail: impl Into<String>) -> Finding {
    Finding { seq, reason, detail: detail.into() }
}

impl<'k> Walker<'k> {
    /// Start expecting row `seq` to chain from `prev`.
    pub fn new(keys: &'k AuditKeys, seq: i64, prev: [u8; 32]) -> Walker<'k> {
        Walker { keys, next_seq: seq, prev, scratch: Vec::with_capacity(512), rows: 0, last: None }
    }

    pub fn push(&mut self, row: &RowView<'_>) -> Result<(), Finding> {
        if row.seq != self.next_seq {
            return Err(finding(
                self.next_seq,
                Reason::Gap,
                format!("expected row {} but found {}", self.next_seq, row.seq),
            ));
        }
        let Some(key) = self.keys.rows.by_id(row.key_id) else {
            return Err(finding(row.seq, Reason::UnknownKey, format!("no configured key has id {}", row.key_id)));
        };
        if !bool::from(row.compute_hmac(key, &mut self.scratch).ct_eq(&row.row_hmac)) {
            return Err(finding(row.seq, Reason::HmacMismatch, "stored HMAC does not match the row's contents"));
        }
        if !bool::from(row.prev_hmac.ct_eq(&self.prev)) {
            return Err(finding(row.seq, Reason::BrokenLink, "row does not chain from the previous row"));
        }
        self.prev = row.row_hmac;
        self.next_seq += 1;
        self.rows += 1;
        self.last = Some((row.seq, row.row_hmac));
        Ok(())
    }
}

/// Where the retained log must start: seq 1 from genesis, or a prune
/// boundary and its anchor recorded in a signed checkpoint.
fn start_for(first_row_seq: i64, checkpoints: &[Checkpoint]) -> Option<(i64, [u8; 32])> {
    if first_row_seq == 1 {
        return Some((1, GENESIS));
    }
    checkpoints.iter().rev().find(|c| c.first_seq == first_row_seq).map(|c| (c.first_seq, c.anchor))
}

/// Compare the walked table with the checkpoints.
fn against_checkpoints(
    last: Option<(i64, [u8; 32])>,
    checkpoints: &[Checkpoint],
    at_seq: &[(i64, [u8; 32])],
) -> Option<Finding> {
    let newest = checkpoints.last()?;
    let (last_seq, last_head) = last.unwrap_or((0, GENESIS));
    if newest.seq > last_seq {
        // Is the table exactly the state an older checkpoint saw? Then it
        // was restored from an old copy; otherwise rows were cut off.
        let restored = checkpoints.iter().any(|c| c.seq == last_seq && bool::from(c.head.ct_eq(&last_head)));
        let reason = if restored && last_seq > 0 { Reason::RolledBack } else { Reason::Truncated };
        return Some(finding(
            last_seq + 1,
            reason,
            format!("table ends at row {last_seq} but a signed checkpoint ({}) saw row {}", newest.at, newest.seq),
        ));
    }
    // The table reaches every checkpoint; each must see the same row there.
    for c in checkpoints {
        if c.seq == 0 {
            continue;
        }
        if let Some((_, head)) = at_seq.iter().find(|(s, _)| *s == c.seq) {
            if !bool::from(head.ct_eq(&c.head)) {
                return Some(finding(
                    c.seq,
                    Reason::RolledBack,
                    format!("row {} differs from the one checkpoint {} signed", c.seq, c.at),
                ));
            }
        }
    }
    None
}

/// Verify the whole retained table. `progress` is called every 64k rows.
///
/// The walk runs on its own thread with a single-threaded runtime and its
/// own connection: tokio-postgres hands every row from its connection task
/// to the reader, and with both on one thread that costs no cross-thread
/// wake-up per row (it more than doubled throughput).
pub async fn verify_table(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    progress: impl FnMut(u64) + Send + 'static,
) -> Result<Report, StoreError> {
    let (config, keys, checkpoints) = (db.config().clone(), keys.clone(), checkpoints.to_vec());
    let joined = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        rt.block_on(async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(conn);
            let report = walk_table(&client, &keys, &checkpoints, progress).await;
            drop(client);
            let _ = driver.await;
            report
        })
    })
    .await;
    joined.map_err(|e| StoreError::Unavailable(e.to_string()))?
}

async fn walk_table(
    client: &tokio_postgres::Client,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    mut progress: impl FnMut(u64),
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let r = client.query_one("SELECT min(seq), max(seq) FROM audit_log", &[]).await?;
    let bounds = r.get::<_, Option<i64>>(0).zip(r.get::<_, Option<i64>>(1));
    let mut report = Report {
        intact: true,
        rows_checked: 0,
        first_seq: bounds.map(|b| b.0),
        last_seq: bounds.map(|b| b.1),
        checkpoints: checkpoints.len(),
        newest_checkpoint_seq: checkpoints.last().map(|c| c.seq),
        finding: None,
        elapsed_ms: 0,
    };
    // Checkpoint seqs we must look at while walking (deduplicated).
    let mut wanted: Vec<i64> = checkpoints.iter().map(|c| c.seq).filter(|s| *s > 0).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut seen_at: Vec<(i64, [u8; 32])> = Vec::new();
    let mut last = None;
    if let Some((first, _)) = bounds {
        let Some((start_seq, anchor)) = start_for(first, checkpoints) else {
            report.intact = false;
            report.finding = Some(finding(
                1,
                Reason::Gap,
                format!("log starts at row {first}, and no signed checkpoint records a prune to there"),
            ));
            report.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        };
        let mut walker = Walker::new(keys, start_seq, anchor);
        let stream = store::stream_rows_from(client, first).await?;
        let mut stream = std::pin::pin!(stream);
        let mut wanted_iter = wanted.iter().peekable();
        while let Some(row) = stream.next().await {
            let row = row?;
            let view = store::view(&row);
            if let Err(f) = walker.push(&view) {
                report.intact = false;
                report.rows_checked = walker.rows;
                report.finding = Some(f);
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
            while wanted_iter.peek().is_some_and(|s| **s < view.seq) {
                wanted_iter.next();
            }
            if wanted_iter.peek() == Some(&&view.seq) {
                seen_at.push((view.seq, view.row_hmac));
            }
            if walker.rows.is_multiple_of(65_536) {
                progress(walker.rows);
            }
        }
        report.rows_checked = walker.rows;
        last = walker.last;
    }
    progress(report.rows_checked);
    if let Some(f) = against_checkpoints(last, checkpoints, &seen_at) {
        report.intact = false;
        report.finding = Some(f);
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Start-up check: the row the newest checkpoint names must still be there
/// unchanged, and everything after it must chain from it. Cheap: it reads
/// only rows written since the last checkpoint.
pub async fn verify_since_checkpoint(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
) -> Result<Result<u64, Finding>, StoreError> {
    let Some(newest) = checkpoints.last().filter(|c| c.seq > 0) else {
        // No checkpoint yet (new sink, or empty log): check everything.
        let report = verify_table(db, keys, checkpoints, |_| {}).await?;
        return Ok(report.finding.map_or(Ok(report.rows_checked), Err));
    };
    let conn = db.conn().await?;
    let Some(at) = store::row_at(&conn, newest.seq).await? else {
        let last = store::head(&conn).await?;
        return Ok(Err(against_checkpoints(last, checkpoints, &[])
            .unwrap_or_else(|| finding(newest.seq, Reason::Truncated, "the row of the newest checkpoint is gone"))));
    };
    if !bool::from(at.row_hmac.ct_eq(&newest.head)) {
        return Ok(Err(finding(
            newest.seq,
            Reason::RolledBack,
            "row differs from the one the newest checkpoint signed",
        )));
    }
    let mut walker = Walker::new(keys, newest.seq, at.prev_hmac);
    let stream = store::stream_from(&conn, newest.seq).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(row) = stream.next().await {
        if let Err(f) = walker.push(&row?.view()) {
            return Ok(Err(f));
        }
    }
    Ok(Ok(walker.rows))
}

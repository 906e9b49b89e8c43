//! Verifying the chain: every row's HMAC, the links, the sequence, and
//! the table against the signed checkpoints. Used by `palisade audit
//! verify`, `GET /api/v1/audit/verify` and (from the newest checkpoint
//! forward) by the writer at start-up.

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

impl Report {
    /// The answer when the checkpoint sink cannot be read or fails its MAC:
    /// that is evidence of tampering, so a finding rather than an error.
    pub fn bad_checkpoints(detail: String) -> Report {
        Report {
            intact: false,
            rows_checked: 0,
            first_seq: None,
            last_seq: None,
            checkpoints: 0,
            newest_checkpoint_seq: None,
            finding: Some(finding(0, Reason::BadCheckpoint, detail)),
            elapsed_ms: 0,
        }
    }
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

pub(super) fn finding(seq: i64, reason: Reason, detail: impl Into<String>) -> Finding {
    Finding { seq, reason, detail: detail.into() }
}

impl<'k> Walker<'k> {
    /// Start expecting row `seq` to chain from `prev`.
    pub fn new(keys: &'k AuditKeys, seq: i64, prev: [u8; 32]) -> Walker<'k> {
        Walker { keys, next_seq: seq, prev, scratch: Vec::with_capacity(512), rows: 0, last: None }
    }

    /// The seq this walker expects next.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
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
pub(super) fn start_for(first_row_seq: i64, checkpoints: &[Checkpoint]) -> Option<(i64, [u8; 32])> {
    if first_row_seq == 1 {
        return Some((1, GENESIS));
    }
    checkpoints.iter().rev().find(|c| c.first_seq == first_row_seq).map(|c| (c.first_seq, c.anchor))
}

/// Compare the walked table with the checkpoints.
pub(super) fn against_checkpoints(
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
/// Large tables are walked in parallel segments (see `scan`); the answer is
/// the one a single in-order walk gives.
pub async fn verify_table(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    progress: impl FnMut(u64) + Send + 'static,
) -> Result<Report, StoreError> {
    super::scan::verify_segmented(db, keys, checkpoints, None, progress).await
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("a verification of the audit log is already running")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The whole verification with the checkpoints loaded from `sink`: an
/// edited or unreadable sink is itself a finding (`bad_checkpoint`), not
/// an error, because it is evidence of tampering. `gate` admits one run at
/// a time (`Busy` otherwise): each holds a connection per segment outside
/// the pools for as long as it walks, so overlapping runs (an impatient
/// caller, the scheduled watch) must not stack up.
pub async fn verify_with_sink(
    db: &crate::store::Db,
    keys: &std::sync::Arc<AuditKeys>,
    sink: std::sync::Arc<dyn super::checkpoint::CheckpointSink>,
    gate: &tokio::sync::Semaphore,
) -> Result<Report, VerifyError> {
    let Ok(_running) = gate.try_acquire() else {
        return Err(VerifyError::Busy);
    };
    let k = keys.clone();
    let loaded = tokio::task::spawn_blocking(move || sink.load(&k))
        .await
        .map_err(|e| StoreError::Unavailable(format!("checkpoint load: {e}")))?;
    match loaded {
        Ok(checkpoints) => Ok(verify_table(db, keys, &checkpoints, |_| {}).await?),
        Err(e) => Ok(Report::bad_checkpoints(e.to_string())),
    }
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

//! The whole-table scan behind `verify_table`: the seq range is cut into
//! segments walked at once, each on its own thread and connection, and the
//! segment results are joined in order so the answer is exactly the one a
//! single in-order walk gives (same first bad row, same reason, same row
//! count).
//!
//! Why segments: one walker is bound by its own thread receiving and
//! decoding rows (PostgreSQL sits mostly idle), so a second core nearly
//! doubles the rate. Why one snapshot: every segment imports the snapshot
//! the coordinator exported, so all of them see the same table even while
//! the writer appends, and a segment's first row is the very row the
//! segment before it ended on.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use super::canonical::Checkpoint;
use super::keys::AuditKeys;
use super::verify::{against_checkpoints, finding, start_for, Finding, Reason, Report, Walker};
use crate::store::{audit as store, StoreError};

/// Segments shorter than this are not worth a thread and a connection.
const MIN_SEGMENT_ROWS: i64 = 131_072;
const MAX_SEGMENTS: usize = 4;
const PROGRESS_EVERY: u64 = 65_536;

type Progress = Arc<Mutex<dyn FnMut(u64) + Send>>;

/// The segment count `verify_table` uses for a table spanning `span` seqs:
/// one per core (at most four), none shorter than `MIN_SEGMENT_ROWS`.
pub fn segments_for(span: i64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_SEGMENTS);
    usize::try_from(span / MIN_SEGMENT_ROWS).unwrap_or(1).clamp(1, cores)
}

/// What one segment saw.
struct Segment {
    lo: i64,
    /// `row_hmac` of row `lo - 1`, the row this segment chains from (None
    /// for the first segment, which starts from genesis or a prune anchor,
    /// and when that row is missing).
    anchor: Option<[u8; 32]>,
    /// The first row at or after `lo`, if any.
    first_seen: Option<i64>,
    rows: u64,
    /// The seq the walker expected next when the segment ended.
    next_seq: i64,
    last: Option<(i64, [u8; 32])>,
    finding: Option<Finding>,
    seen_at: Vec<(i64, [u8; 32])>,
}

/// Verify the table in `segments` parallel ranges (clamped to the span;
/// None picks `segments_for` the table).
pub async fn verify_segmented(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    segments: Option<usize>,
    progress: impl FnMut(u64) + Send + 'static,
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let (coord, driver) = db.dedicated().await?;
    let scanned = scan(db, keys, checkpoints, segments, progress, &coord).await;
    drop(coord);
    let _ = driver.await;
    let Scanned { bounds, rows, finding } = scanned?;
    Ok(Report {
        intact: finding.is_none(),
        rows_checked: rows,
        first_seq: bounds.map(|b| b.0),
        last_seq: bounds.map(|b| b.1),
        checkpoints: checkpoints.len(),
        newest_checkpoint_seq: checkpoints.last().map(|c| c.seq),
        finding,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

struct Scanned {
    bounds: Option<(i64, i64)>,
    rows: u64,
    finding: Option<Finding>,
}

/// Export a snapshot on `coord`, walk the segments in it, and return the
/// first finding in table order (or the checkpoints' verdict).
async fn scan(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    segments: Option<usize>,
    progress: impl FnMut(u64) + Send + 'static,
    coord: &tokio_postgres::Client,
) -> Result<Scanned, StoreError> {
    coord.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let r = coord.query_one("SELECT pg_export_snapshot(), min(seq), max(seq) FROM audit_log", &[]).await?;
    let snapshot: String = r.get(0);
    let bounds = r.get::<_, Option<i64>>(1).zip(r.get::<_, Option<i64>>(2));
    let Some((first, max)) = bounds else {
        return Ok(Scanned { bounds, rows: 0, finding: against_checkpoints(None, checkpoints, &[]) });
    };
    let Some((start_seq, anchor)) = start_for(first, checkpoints) else {
        let msg = format!("log starts at row {first}, and no signed checkpoint records a prune to there");
        return Ok(Scanned { bounds, rows: 0, finding: Some(finding(1, Reason::Gap, msg)) });
    };
    let progress: Progress = Arc::new(Mutex::new(progress));
    let segs =
        walk_segments(db, keys, checkpoints, &snapshot, (start_seq, anchor, max), segments, coord, &progress).await?;
    let Joined { rows, finding } = join(&segs);
    if finding.is_some() {
        return Ok(Scanned { bounds, rows, finding });
    }
    if let Ok(mut p) = progress.lock() {
        p(rows);
    }
    let last = segs.last().and_then(|s| s.last);
    let seen_at: Vec<_> = segs.iter().flat_map(|s| s.seen_at.iter().copied()).collect();
    Ok(Scanned { bounds, rows, finding: against_checkpoints(last, checkpoints, &seen_at) })
}

/// Start one thread per segment, hold the exporting transaction open until
/// each has imported the snapshot, then collect the segments in order.
#[allow(clippy::too_many_arguments)]
async fn walk_segments(
    db: &crate::store::Db,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    snapshot: &str,
    (start_seq, anchor, max): (i64, [u8; 32], i64),
    segments: Option<usize>,
    coord: &tokio_postgres::Client,
    progress: &Progress,
) -> Result<Vec<Segment>, StoreError> {
    let span = max - start_seq + 1;
    let segments = segments.unwrap_or_else(|| segments_for(span));
    let n = i64::try_from(segments.max(1)).unwrap_or(1).min(span.max(1));
    let size = (span + n - 1) / n;
    // Rounding the size up can leave fewer segments than asked (6 rows in
    // 4 segments of 2 make 3); an empty trailing one would end nowhere.
    let n = (span + size - 1) / size;
    let mut wanted: Vec<i64> = checkpoints.iter().map(|c| c.seq).filter(|s| *s > 0).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut handles = Vec::new();
    let mut imported = Vec::new();
    for k in 0..n {
        let lo = start_seq + k * size;
        let hi = (lo + size - 1).min(max);
        let (tx, rx) = oneshot::channel();
        imported.push(rx);
        let job = Job {
            db: db.clone(),
            keys: keys.clone(),
            snapshot: snapshot.to_string(),
            lo,
            hi,
            genesis: (k == 0).then_some(anchor),
            wanted: wanted.iter().copied().filter(|s| (lo..=hi).contains(s)).collect(),
            done: done.clone(),
            progress: progress.clone(),
        };
        handles.push(tokio::task::spawn_blocking(move || job.run(tx)));
    }
    // A walker that failed before importing drops its sender; its error
    // comes back through its handle below.
    for rx in imported {
        let _ = rx.await;
    }
    coord.batch_execute("COMMIT").await?;
    let mut segs = Vec::with_capacity(handles.len());
    for h in handles {
        segs.push(h.await.map_err(|e| StoreError::Unavailable(e.to_string()))??);
    }
    Ok(segs)
}

struct Job {
    db: crate::store::Db,
    keys: AuditKeys,
    snapshot: String,
    lo: i64,
    hi: i64,
    /// The first segment's starting link (genesis or a prune anchor).
    genesis: Option<[u8; 32]>,
    wanted: Vec<i64>,
    done: Arc<std::sync::atomic::AtomicU64>,
    progress: Progress,
}

impl Job {
    /// A single-threaded runtime with the connection on the same thread:
    /// tokio-postgres hands every row from its connection task to the
    /// reader, and on one thread that costs no cross-thread wake-up per row.
    fn run(self, imported: oneshot::Sender<()>) -> Result<Segment, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        rt.block_on(async move {
            let (client, driver) = self.db.dedicated().await?;
            let snapshot = self.snapshot.replace('\'', "");
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
                ))
                .await?;
            let _ = imported.send(());
            let seg = self.walk(&client).await;
            drop(client);
            let _ = driver.await;
            seg
        })
    }

    async fn walk(&self, client: &tokio_postgres::Client) -> Result<Segment, StoreError> {
        use std::sync::atomic::Ordering;
        let from = if self.genesis.is_some() { self.lo } else { self.lo - 1 };
        let stream = store::stream_range(client, from, self.hi).await?;
        let mut stream = std::pin::pin!(stream);
        let mut seg = Segment {
            lo: self.lo,
            anchor: self.genesis,
            first_seen: None,
            rows: 0,
            next_seq: self.lo,
            last: None,
            finding: None,
            seen_at: Vec::new(),
        };
        let mut walker = self.genesis.map(|g| Walker::new(&self.keys, self.lo, g));
        let mut wanted = self.wanted.iter().peekable();
        while let Some(row) = stream.next().await {
            let row = row?;
            let view = store::view(&row);
            if view.seq < self.lo {
                seg.anchor = Some(view.row_hmac);
                walker = Some(Walker::new(&self.keys, self.lo, view.row_hmac));
                continue;
            }
            seg.first_seen.get_or_insert(view.seq);
            // Without the row before it this segment cannot be walked; the
            // join reports the gap from the segment before.
            let Some(w) = walker.as_mut() else { break };
            if let Err(f) = w.push(&view) {
                seg.finding = Some(f);
                break;
            }
            while wanted.peek().is_some_and(|s| **s < view.seq) {
                wanted.next();
            }
            if wanted.peek() == Some(&&view.seq) {
                seg.seen_at.push((view.seq, view.row_hmac));
            }
            if w.rows.is_multiple_of(PROGRESS_EVERY) {
                let total = self.done.fetch_add(PROGRESS_EVERY, Ordering::Relaxed) + PROGRESS_EVERY;
                if let Ok(mut p) = self.progress.lock() {
                    p(total);
                }
            }
        }
        if let Some(w) = walker {
            (seg.rows, seg.next_seq, seg.last) = (w.rows, w.next_seq(), w.last);
        }
        Ok(seg)
    }
}

struct Joined {
    rows: u64,
    finding: Option<Finding>,
}

/// Read the segments in order as one walk would have: the first finding
/// wins, whether inside a segment or at the seam between two.
fn join(segs: &[Segment]) -> Joined {
    let mut rows = 0;
    for (k, seg) in segs.iter().enumerate() {
        if k > 0 {
            let before = &segs[k - 1];
            if before.next_seq != seg.lo {
                // The max row exists, so some later segment saw a row.
                let found = segs[k..].iter().find_map(|s| s.first_seen).unwrap_or(seg.lo);
                let detail = format!("expected row {} but found {found}", before.next_seq);
                return Joined { rows, finding: Some(finding(before.next_seq, Reason::Gap, detail)) };
            }
            let linked = match (before.last, seg.anchor) {
                (Some((_, end)), Some(anchor)) => bool::from(end.ct_eq(&anchor)),
                _ => false,
            };
            if !linked {
                // One snapshot makes this unreachable short of a bug; say so
                // rather than pass a chain nobody checked.
                let detail = "segments of the scan disagree on the row between them";
                return Joined { rows, finding: Some(finding(seg.lo, Reason::BrokenLink, detail)) };
            }
        }
        rows += seg.rows;
        if let Some(f) = &seg.finding {
            return Joined { rows, finding: Some(f.clone()) };
        }
    }
    Joined { rows, finding: None }
}

//! The audit writer: the only code that inserts audit rows.
//!
//! It owns the chain head. Appends arrive as messages and are answered
//! only after their transaction commits. Concurrent appends are batched
//! (group commit): an `Append` queues the event and, if none is queued,
//! casts `Flush` to itself; every `Append` already in the mailbox is queued
//! before that `Flush` runs, so one transaction carries them all, in
//! arrival order. Each batch takes a transaction-scoped advisory lock and
//! re-reads the head, so several replicas on one database extend one linear
//! chain. After commits (at most once per interval) it appends a signed
//! checkpoint to a sink outside the database.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use crate::audit::canonical::{self, AuditRow, Checkpoint, GENESIS};
use crate::audit::checkpoint::{self as cps, CheckpointSink};
use crate::audit::keys::AuditKeys;
use crate::audit::verify;
use crate::audit::AuditEvent;
use crate::clock::SharedClock;
use crate::store::{audit as store, Db, StoreError};

/// Larger batches amortise the commit further but delay the first caller.
const MAX_BATCH: usize = 1_000;
/// Details bigger than this are replaced by a marker rather than refused:
/// the event still gets its row.
const MAX_DETAILS_BYTES: usize = 32 * 1024;

#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit append failed: {0}")]
    Store(String),
    #[error("audit event rejected: {0}")]
    Invalid(&'static str),
    #[error("audit prune refused: {0}")]
    Prune(String),
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> AuditError {
        AuditError::Store(e.to_string())
    }
}

type Reply<T> = RpcReplyPort<Result<T, AuditError>>;

pub enum AuditMsg {
    /// Answers the row's seq once it is committed.
    Append {
        event: AuditEvent,
        reply: Reply<i64>,
    },
    Flush,
    Checkpoint,
    /// Retention: delete rows below `below`, after recording the new start
    /// of the log in a signed checkpoint. Answers rows deleted.
    Prune {
        below: i64,
        reply: Reply<u64>,
    },
    /// See `LimiterMsg::InjectPanic`.
    InjectPanic,
}

pub struct AuditWriter;

pub struct AuditWriterArgs {
    pub db: Db,
    pub keys: Arc<AuditKeys>,
    pub sink: Arc<dyn CheckpointSink>,
    pub clock: SharedClock,
    pub checkpoint_interval: Duration,
    pub allow_broken_chain: bool,
}

pub struct WriterState {
    args: AuditWriterArgs,
    pending: VecDeque<(AuditEvent, Option<Reply<i64>>)>,
    flush_queued: bool,
    timer_armed: bool,
    last_checkpoint: Option<Instant>,
    dirty: bool,
    head: (i64, [u8; 32]),
    floor: (i64, [u8; 32]),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "audit chain verification failed at row {seq} ({reason}): {detail}. Refusing to write audit rows. \
     Investigate with `palisade audit verify`; to start anyway set PALISADE_AUDIT_ALLOW_BROKEN_CHAIN=1"
)]
pub struct BrokenChain {
    pub seq: i64,
    pub reason: &'static str,
    pub detail: String,
}

fn row_for(
    event: &AuditEvent,
    seq: i64,
    prev: [u8; 32],
    now: chrono::DateTime<chrono::Utc>,
    keys: &AuditKeys,
) -> Result<AuditRow, AuditError> {
    if event.action.is_empty() || event.action.len() > 100 {
        return Err(AuditError::Invalid("action must be 1..100 characters"));
    }
    let mut details = canonical::canonical_details(&event.details)
        .map_err(|_| AuditError::Invalid("details are not serialisable"))?;
    if details.len() > MAX_DETAILS_BYTES {
        details = canonical::canonical_details(&json!({ "_truncated": true, "bytes": details.len() }))
            .map_err(|_| AuditError::Invalid("details are not serialisable"))?;
    }
    let (key_id, key) = keys.rows.signing();
    let mut row = AuditRow {
        seq,
        occurred_at: canonical::normalize_time(now),
        actor_kind: event.actor_kind.as_str().to_string(),
        actor_id: event.actor_id.clone(),
        action: event.action.clone(),
        project_id: event.project_id,
        target_type: event.target_type.clone(),
        target_id: event.target_id.clone(),
        outcome: event.outcome.as_str().to_string(),
        client_ip: event.client_ip,
        request_id: event.request_id.clone(),
        details,
        key_id: key_id.to_string(),
        prev_hmac: prev,
        row_hmac: [0u8; 32],
    };
    row.row_hmac = row.compute_hmac(key);
    Ok(row)
}

impl WriterState {
    /// Commit one batch; returns each event's outcome in order.
    async fn commit(
        &mut self,
        batch: &[(AuditEvent, Option<Reply<i64>>)],
    ) -> Result<Vec<Result<i64, AuditError>>, AuditError> {
        let conn = self.args.db.conn().await?;
        let (now, keys) = (self.args.clock.now(), &self.args.keys);
        let ((seq, prev), results) = store::append(conn, |head| {
            let (mut seq, mut prev) = head.unwrap_or((0, GENESIS));
            let mut rows = Vec::with_capacity(batch.len());
            let mut results = Vec::with_capacity(batch.len());
            for (event, _) in batch {
                match row_for(event, seq + 1, prev, now, keys) {
                    Ok(row) => {
                        seq = row.seq;
                        prev = row.row_hmac;
                        results.push(Ok(row.seq));
                        rows.push(row);
                    }
                    Err(e) => results.push(Err(e)),
                }
            }
            (rows, ((seq, prev), results))
        })
        .await?;
        let wrote = results.iter().any(Result::is_ok);
        if wrote {
            self.head = (seq, prev);
            if self.floor.0 == 0 {
                self.floor = (1, GENESIS);
            }
            self.dirty = true;
        }
        Ok(results)
    }

    async fn flush(&mut self, me: &ActorRef<AuditMsg>) {
        if self.pending.is_empty() {
            return;
        }
        let n = self.pending.len().min(MAX_BATCH);
        let batch: Vec<_> = self.pending.drain(..n).collect();
        match self.commit(&batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = n, "audit batch failed; callers are told their actions did not happen");
                for (_, reply) in batch {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        if !self.pending.is_empty() && !self.flush_queued {
            self.flush_queued = me.cast(AuditMsg::Flush).is_ok();
        }
        self.maybe_checkpoint(me).await;
    }

    async fn maybe_checkpoint(&mut self, me: &ActorRef<AuditMsg>) {
        if !self.dirty {
            return;
        }
        let interval = self.args.checkpoint_interval;
        match self.last_checkpoint.map(|t| t.elapsed()) {
            Some(elapsed) if elapsed < interval => {
                if !self.timer_armed {
                    self.timer_armed = true;
                    me.send_after(interval - elapsed, || AuditMsg::Checkpoint);
                }
            }
            _ => self.write_checkpoint().await,
        }
    }

    async fn write_checkpoint(&mut self) {
        let (seq, head) = self.head;
        let rows = if seq == 0 { 0 } else { seq - self.floor.0 + 1 };
        let unsigned = Checkpoint {
            v: 1,
            seq,
            head,
            rows,
            first_seq: self.floor.0.max(1),
            anchor: self.floor.1,
            at: canonical::format_time(&self.args.clock.now()),
            key_id: String::new(),
            mac: [0u8; 32],
        };
        let cp = cps::sign(&self.args.keys, unsigned);
        let sink = self.args.sink.clone();
        match tokio::task::spawn_blocking(move || sink.append(&cp)).await {
            Ok(Ok(())) => {
                self.dirty = false;
                self.last_checkpoint = Some(Instant::now());
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not write an audit checkpoint; tail truncation after row {seq} is not yet detectable")
            }
            Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
        }
    }

    async fn prune(&mut self, below: i64) -> Result<u64, AuditError> {
        let mut conn = self.args.db.conn().await?;
        let tx = conn.transaction().await.map_err(StoreError::from)?;
        store::lock_chain(&tx).await?;
        let head = store::head(&tx).await?.ok_or_else(|| AuditError::Prune("the log is empty".into()))?;
        let first = store::first(&tx).await?.map(|f| f.0).unwrap_or(1);
        if below <= first {
            return Ok(0);
        }
        if below > head.0 {
            return Err(AuditError::Prune(format!("row {below} does not exist; the newest is {}", head.0)));
        }
        let anchor = store::row_at(&tx, below).await?.ok_or_else(|| AuditError::Prune("missing row".into()))?.prev_hmac;
        // Sign the new start before deleting: if we crash in between, the
        // old rows are still there and the log verifies from genesis.
        self.head = head;
        self.floor = (below, anchor);
        self.write_checkpoint().await;
        if self.dirty {
            return Err(AuditError::Prune("could not record the prune boundary in a checkpoint".into()));
        }
        let deleted = store::prune_below(&tx, below).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(deleted)
    }
}

async fn startup_check(args: &AuditWriterArgs) -> Result<((i64, [u8; 32]), (i64, [u8; 32]), bool), ActorProcessingErr> {
    let checkpoints = match args.sink.load(&args.keys) {
        Ok(c) => c,
        Err(e) if args.allow_broken_chain => {
            tracing::error!(error = %e, "audit checkpoints are unreadable; starting anyway (PALISADE_AUDIT_ALLOW_BROKEN_CHAIN)");
            Vec::new()
        }
        Err(e) => return Err(Box::new(e)),
    };
    match verify::verify_since_checkpoint(&args.db, &args.keys, &checkpoints).await {
        Ok(Ok(rows)) => {
            tracing::info!(rows, checkpoints = checkpoints.len(), "audit chain verified from the newest checkpoint")
        }
        Ok(Err(f)) => {
            let broken = BrokenChain { seq: f.seq, reason: f.reason.as_str(), detail: f.detail };
            if !args.allow_broken_chain {
                return Err(Box::new(broken));
            }
            tracing::error!(error = %broken, "starting anyway because PALISADE_AUDIT_ALLOW_BROKEN_CHAIN is set");
        }
        Err(e) => return Err(Box::new(e)),
    }
    let conn = args.db.conn().await?;
    let head = store::head(&conn).await?.unwrap_or((0, GENESIS));
    let floor = store::first(&conn).await?.unwrap_or((0, GENESIS));
    let newest = checkpoints.last().map(|c| (c.seq, c.head));
    // A log with rows but no checkpoint of its current head gets one now,
    // so tail truncation from here on is detectable.
    let dirty = head.0 > 0 && newest != Some(head);
    Ok((head, floor, dirty))
}

impl Actor for AuditWriter {
    type Msg = AuditMsg;
    type State = WriterState;
    type Arguments = AuditWriterArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<AuditMsg>,
        args: AuditWriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        let (head, floor, dirty) = startup_check(&args).await?;
        let mut st = WriterState {
            args,
            pending: VecDeque::new(),
            flush_queued: false,
            timer_armed: false,
            last_checkpoint: None,
            dirty,
            head,
            floor,
        };
        if st.dirty {
            st.write_checkpoint().await;
        }
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<AuditMsg>,
        msg: AuditMsg,
        st: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AuditMsg::Append { event, reply } => {
                st.pending.push_back((event, Some(reply)));
                if !st.flush_queued {
                    st.flush_queued = me.cast(AuditMsg::Flush).is_ok();
                }
            }
            AuditMsg::Flush => {
                st.flush_queued = false;
                st.flush(&me).await;
            }
            AuditMsg::Checkpoint => {
                st.timer_armed = false;
                if st.dirty {
                    st.write_checkpoint().await;
                }
            }
            AuditMsg::Prune { below, reply } => {
                let result = st.prune(below).await;
                if let Ok(deleted) = &result {
                    let event =
                        AuditEvent::new("audit.pruned").details(json!({ "below_seq": below, "rows_deleted": deleted }));
                    st.pending.push_back((event, None));
                    st.flush(&me).await;
                }
                let _ = reply.send(result);
            }
            AuditMsg::InjectPanic => panic!("fault injected into the audit writer by a test"),
        }
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<AuditMsg>, st: &mut WriterState) -> Result<(), ActorProcessingErr> {
        for (_, reply) in st.pending.drain(..) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(AuditError::Store("the audit writer is stopping".into())));
            }
        }
        if st.dirty {
            st.write_checkpoint().await;
        }
        Ok(())
    }
}

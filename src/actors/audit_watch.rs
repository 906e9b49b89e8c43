//! Re-verifies the whole audit chain on a timer. Tampering is otherwise
//! found only when someone asks (`palisade audit verify`, the verify
//! endpoint) or at the next start; the watch finds it within one interval
//! and raises `audit.verify_failed` through the notification rules.
//!
//! It alerts once per distinct finding (the same broken row is not
//! re-announced every interval; the error is logged every time), and a run
//! that could not complete (database down) is logged and retried at the
//! next tick rather than reported as tampering.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::audit::verify::{self, Reason};
use crate::notify::triggers;
use crate::state::AppState;

pub enum WatchMsg {
    Tick,
}

pub struct AuditWatch;

pub struct WatchArgs {
    pub st: AppState,
    pub every: Duration,
}

pub struct WatchState {
    args: WatchArgs,
    alerted: Option<(i64, Reason)>,
}

impl WatchState {
    async fn check(&mut self) {
        let st = &self.args.st;
        let report =
            match verify::verify_with_sink(&st.db, &st.audit_keys, st.checkpoint_sink.clone(), &st.verify_gate).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled audit verification did not run; trying again next interval");
                    return;
                }
            };
        let Some(f) = report.finding.filter(|_| !report.intact) else {
            tracing::debug!(rows = report.rows_checked, ms = report.elapsed_ms, "scheduled audit verification: intact");
            self.alerted = None;
            return;
        };
        tracing::error!(seq = f.seq, reason = f.reason.as_str(), detail = %f.detail, "scheduled audit verification found tampering");
        if self.alerted == Some((f.seq, f.reason)) {
            return;
        }
        self.alerted = Some((f.seq, f.reason));
        let (reason, seq) = (f.reason.as_str(), f.seq);
        triggers::after_commit(st, move |c, now| {
            Box::pin(async move { triggers::audit_verify_failed(c, reason, seq, now).await })
        })
        .await;
    }
}

impl Actor for AuditWatch {
    type Msg = WatchMsg;
    type State = WatchState;
    type Arguments = WatchArgs;

    async fn pre_start(&self, me: ActorRef<WatchMsg>, args: WatchArgs) -> Result<WatchState, ActorProcessingErr> {
        // Start-up already verified from the newest checkpoint; the first
        // full pass waits one interval.
        me.send_after(args.every, || WatchMsg::Tick);
        Ok(WatchState { args, alerted: None })
    }

    async fn handle(
        &self,
        me: ActorRef<WatchMsg>,
        msg: WatchMsg,
        st: &mut WatchState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WatchMsg::Tick => {
                st.check().await;
                me.send_after(st.args.every, || WatchMsg::Tick);
            }
        }
        Ok(())
    }
}

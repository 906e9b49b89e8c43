//! What a verified agent frame does, whichever transport carried it (the
//! WebSocket session or the long-poll endpoints): events go to ingest,
//! heartbeat queue depths go to ingest, command acks and results go to the
//! dispatcher. Verification happens before this, in the transport.

use uuid::Uuid;

use super::dispatcher::DispatcherMsg;
use super::ingest::{Done, IngestMsg, Job};
use crate::fleet::{events, projection, AgentIdentity};
use crate::security::frame::{FrameKind, VerifiedFrame};
use crate::state::AppState;

/// Normalise and redact an `event_batch`, wait for room in the ingest
/// budget (back-pressure), and hand it to ingest. `stream` names the
/// connection the frame came on (ingest keeps one connection's batches in
/// one lane, in order). `done` builds the completion from (received,
/// dropped). `false` if ingest is down.
pub async fn submit_events(
    st: &AppState,
    identity: &AgentIdentity,
    stream: u64,
    frame: &VerifiedFrame,
    done: impl FnOnce(usize, usize) -> Done,
) -> bool {
    let norm = events::normalize(&frame.payload, &st.redactor, st.clock.now());
    let received = norm.events.len() + norm.dropped;
    let Some(permit) = st.ingest_budget.admit(norm.events.len()).await else { return false };
    let job = Job {
        identity: identity.clone(),
        stream,
        events: norm.events,
        queues: Vec::new(),
        done: Some(done(received, norm.dropped)),
        permit,
    };
    if st.ingest.cast(IngestMsg::Submit(job)).is_err() {
        tracing::warn!("ingest is down; batch left unacknowledged for the agent to re-send");
        return false;
    }
    true
}

/// Queue depths reported in a heartbeat's `adapter_health`. Never waits:
/// when the ingest budget is full they are skipped (the next heartbeat
/// brings fresh ones).
pub fn heartbeat(st: &AppState, identity: &AgentIdentity, stream: u64, frame: &VerifiedFrame) {
    let Some(health) = frame.payload_object().and_then(|o| o.get("adapter_health")).and_then(|h| h.to_serde().ok())
    else {
        return;
    };
    let queues = projection::queue_depths_from_heartbeat(&health, st.clock.now());
    if queues.is_empty() {
        return;
    }
    if let Ok(permit) = st.ingest_budget.0.clone().try_acquire_owned() {
        let job = Job { identity: identity.clone(), stream, events: Vec::new(), queues, done: None, permit };
        let _ = st.ingest.cast(IngestMsg::Submit(job));
    }
}

/// `command_ack` / `command_result`: to the dispatcher, which only moves a
/// command of this agent's own project.
pub fn command_reply(st: &AppState, identity: &AgentIdentity, frame: &VerifiedFrame) {
    // Command ids are UUIDs; anything else cannot name one of ours.
    let Ok(command_id) = Uuid::parse_str(&frame.id) else { return };
    let msg = if frame.kind == FrameKind::CommandAck {
        DispatcherMsg::Acked { identity: identity.clone(), command_id }
    } else {
        let p = frame.payload_object();
        let field = |k: &str| p.and_then(|o| o.get(k)).and_then(|v| v.to_serde().ok());
        let status = field("status").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        // Results may carry task data (dead-letter excerpts, arguments):
        // scrubbed like events before they are stored.
        let result = field("result").filter(|v| !v.is_null()).map(|v| st.redactor.redact(&v).0);
        let error = field("error").and_then(|v| v.as_str().map(|s| st.redactor.redact_text(s).0));
        DispatcherMsg::Finished { identity: identity.clone(), command_id, status, result, error }
    };
    let _ = st.dispatcher.cast(msg);
}

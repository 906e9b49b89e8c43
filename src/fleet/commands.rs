//! Operator commands: what each REST action asks an agent to do, the
//! payload of the signed `command` frame, and the lifecycle rules.
//!
//! Lifecycle: `pending` → `dispatched` (claimed for one session, atomically,
//! so it is never delivered twice) → `acked` → `succeeded` | `failed`;
//! any open state → `timed_out` when its deadline passes.

use serde_json::{json, Value};
use uuid::Uuid;

/// How long an agent has to answer a dispatched command.
pub const RESULT_TIMEOUT_SECS: i64 = 60;
/// How long a command waits for a capable agent to connect.
pub const PENDING_TTL_SECS: i64 = 15 * 60;
/// Most tasks one bulk retry may name (the agent clamps to the same).
pub const MAX_BULK: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    RetryTask,
    CancelTask,
    BulkRetry,
    PurgeQueue,
    RestartWorker,
}

impl Action {
    pub const ALL: [Action; 5] =
        [Action::RetryTask, Action::CancelTask, Action::BulkRetry, Action::PurgeQueue, Action::RestartWorker];

    /// The REST path segment (`/commands/{segment}`).
    pub fn path(self) -> &'static str {
        match self {
            Action::RetryTask => "retry-task",
            Action::CancelTask => "cancel-task",
            Action::BulkRetry => "bulk-retry",
            Action::PurgeQueue => "purge-queue",
            Action::RestartWorker => "restart-worker",
        }
    }

    /// The agent protocol's action name.
    pub fn wire(self) -> &'static str {
        match self {
            Action::RetryTask => "retry_task",
            Action::CancelTask => "cancel_task",
            Action::BulkRetry => "bulk_retry",
            Action::PurgeQueue => "purge_queue",
            Action::RestartWorker => "restart_worker",
        }
    }

    pub fn from_wire(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.wire() == s)
    }

    /// Retries go only to sessions whose hello advertised
    /// `retry_by_reference_v1` for the engine: such adapters re-enqueue by
    /// reference, never from the brain's (redacted) copy of the arguments.
    pub fn needs_retry_contract(self) -> bool {
        matches!(self, Action::RetryTask | Action::BulkRetry)
    }
}

/// What a command row holds for building its frame.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub id: Uuid,
    pub action: String,
    pub engine: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub parameters: Value,
    pub issued_by: Option<Uuid>,
    pub delivery_claim_token: Uuid,
}

/// The `payload` of the signed `command` frame (protocol §4.5).
pub fn frame_payload(c: &CommandSpec) -> Value {
    json!({
        "action": c.action,
        "target": { "type": c.target_type, "id": c.target_id, "engine": c.engine },
        "parameters": c.parameters,
        "timeout_seconds": RESULT_TIMEOUT_SECS,
        "issued_by": c.issued_by.map(|u| u.to_string()),
        "delivery_claim_token": c.delivery_claim_token.to_string(),
    })
}

pub fn retry_parameters(
    engine: &str,
    task_id: &str,
    task_name: Option<&str>,
    override_args: Option<Value>,
    override_kwargs: Option<Value>,
    eta_seconds: Option<i64>,
    priority: Option<i64>,
) -> Value {
    json!({
        "engine": engine,
        "task_id": task_id,
        "task_name": task_name,
        // The brain's copy of arguments is redacted, so it is never sent
        // back; the agent retries by reference unless overrides are given.
        "args": null,
        "kwargs": null,
        "override_args": override_args,
        "override_kwargs": override_kwargs,
        "original_had_args": true,
        "eta": null,
        "eta_seconds": eta_seconds,
        "priority": priority,
    })
}

pub fn cancel_parameters(engine: &str, task_id: &str) -> Value {
    json!({ "engine": engine, "task_id": task_id })
}

pub fn bulk_retry_parameters(engine: &str, task_ids: &[String]) -> Value {
    json!({ "filter": { "engine": engine, "task_ids": task_ids }, "max": task_ids.len().min(MAX_BULK) })
}

pub fn purge_parameters(queue: &str, confirm_token: Option<&str>, force: bool) -> Value {
    json!({ "queue": queue, "confirm_token": confirm_token, "force": force })
}

pub fn restart_parameters(engine: &str, worker_name: &str) -> Value {
    json!({ "worker_name": worker_name, "engine": engine })
}

/// Map an agent's `command_result` status to ours.
pub fn result_status(status: &str) -> Option<&'static str> {
    match status {
        "success" => Some("succeeded"),
        "failed" => Some("failed"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_payload_matches_the_protocol_shape() {
        let c = CommandSpec {
            id: Uuid::new_v4(),
            action: "retry_task".into(),
            engine: "dramatiq".into(),
            target_type: "task".into(),
            target_id: Some("dramatiq:8d7c".into()),
            parameters: retry_parameters("dramatiq", "8d7c", Some("add"), None, None, None, None),
            issued_by: None,
            delivery_claim_token: Uuid::nil(),
        };
        let p = frame_payload(&c);
        assert_eq!(p["action"], "retry_task");
        assert_eq!(p["target"], json!({ "type": "task", "id": "dramatiq:8d7c", "engine": "dramatiq" }));
        assert_eq!(p["parameters"]["args"], Value::Null);
        assert_eq!(p["timeout_seconds"], 60);
        for a in Action::ALL {
            assert_eq!(Action::from_wire(a.wire()), Some(a));
        }
        assert!(Action::RetryTask.needs_retry_contract() && !Action::PurgeQueue.needs_retry_contract());
    }
}

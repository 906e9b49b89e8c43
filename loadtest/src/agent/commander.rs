//! The operator side of the command round trip: issue a command over REST
//! on a fixed schedule, note when the signed `command` frame reaches the
//! simulated agent, and poll the REST API until the result is visible.
//!
//! `cmd_rtt` = REST issue (scheduled time) → final status visible via REST;
//! `cmd_to_agent` = REST issue → command frame at the agent. Polling every
//! 25 ms bounds the resolution of `cmd_rtt` to that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use super::Shared;
use crate::client::Session;
use crate::flavor::Flavor;
use crate::metrics::Counter;

const POLL: Duration = Duration::from_millis(25);
const GIVE_UP: Duration = Duration::from_secs(30);
const MAX_OUTSTANDING: usize = 32;

pub struct Commander {
    pub admin: Session,
    pub flavor: Flavor,
    pub project: String,
    pub shared: Arc<Shared>,
}

impl Commander {
    /// Issues `rate` commands per second until `stop` turns true.
    pub async fn run(self: Arc<Self>, rate: f64, mut stop: watch::Receiver<bool>) {
        if rate <= 0.0 {
            return;
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        let permits = Arc::new(Semaphore::new(MAX_OUTSTANDING));
        let start = Instant::now();
        let mut k = 0u32;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let intended = start + interval * k;
            k = k.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep_until(intended.into()) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let me = self.clone();
            tasks.spawn(async move {
                me.round_trip(intended).await;
                drop(permit);
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn round_trip(&self, intended: Instant) {
        let m = &self.shared.metrics;
        let Some((agent_id, task_id)) = self.shared.tasks.pick() else {
            m.error("command_no_task_yet");
            return;
        };
        let call = self.flavor.issue_command(&self.project, &agent_id, super::frames::ENGINE, &task_id);
        let Some(reply) = self.admin.timed(&call, m).await else { return };
        if !reply.status.is_success() {
            m.error(&format!("command_issue_{}", reply.status.as_u16()));
            return;
        }
        let Some(id) = reply.json().ok().and_then(|v| command_field(&v, "id")) else {
            m.error("command_issue_no_id");
            return;
        };
        m.incr(Counter::CommandsIssued);
        let deadline = Instant::now() + GIVE_UP;
        let status = loop {
            if Instant::now() >= deadline {
                m.error("command_result_not_visible_30s");
                return;
            }
            tokio::time::sleep(POLL).await;
            let Ok(r) = self.admin.send(&self.flavor.command(&self.project, &id)).await else { continue };
            let status = r.json().ok().and_then(|v| command_field(&v, "status"));
            if let Some(s) = status.filter(|s| self.flavor.command_is_final(s)) {
                break s;
            }
        };
        let visible = Instant::now();
        m.record_since("cmd_rtt", intended, visible);
        if let Some(at_agent) = self.shared.commands.take(&id) {
            m.record_since("cmd_to_agent", intended, at_agent);
        } else {
            m.error("command_final_without_frame_at_agent");
        }
        m.incr(Counter::CommandsCompleted);
        if !matches!(status.as_str(), "completed" | "success" | "succeeded") {
            m.error(&format!("command_status_{status}"));
        }
    }
}

/// z4j answers with the command object itself; Palisade wraps it as
/// `{"command": {...}}`. Read a field from either shape.
fn command_field(v: &Value, field: &str) -> Option<String> {
    v.get("command").unwrap_or(v).get(field).and_then(Value::as_str).map(str::to_owned)
}

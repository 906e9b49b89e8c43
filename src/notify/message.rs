//! What happened, in a form every channel renders from. Stored as the
//! outbox row's payload, so a message can be sent after a restart exactly
//! as it was decided. Task data in it was redacted at ingest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Severity, Trigger};

/// Longest exception text carried (channels cut further).
pub const MAX_DETAIL_CHARS: usize = 2000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notification {
    pub trigger: Trigger,
    pub severity: Severity,
    pub project_id: Uuid,
    pub project_slug: String,
    /// One line, e.g. "Task failed: billing.charge".
    pub title: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    /// Free text (an exception, a lockout's account, a verification finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Occurrences of the same subject muted by the rule's cooldown since
    /// the previous message.
    #[serde(default)]
    pub suppressed: i64,
    /// True for `POST …/channels/{id}/test`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskInfo {
    pub engine: String,
    pub task_id: String,
    pub name: Option<String>,
    pub queue: Option<String>,
    pub retries: i32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: Uuid,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommandInfo {
    pub id: Uuid,
    pub action: String,
    pub status: String,
}

/// Keep at most `n` characters, marking a cut.
pub fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

impl Notification {
    /// The canned message `POST …/channels/{id}/test` sends.
    pub fn test(project_id: Uuid, project_slug: &str, now: DateTime<Utc>) -> Notification {
        Notification {
            trigger: Trigger::TaskFailed,
            severity: Severity::Info,
            project_id,
            project_slug: project_slug.to_string(),
            title: "Palisade test notification".into(),
            occurred_at: now,
            task: None,
            agent: None,
            command: None,
            detail: Some("This channel is configured correctly.".into()),
            suppressed: 0,
            test: true,
        }
    }

    /// `key: value` lines shared by the plain-text renderings; values are
    /// raw (each channel escapes them its own way).
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![("Project", self.project_slug.clone()), ("Severity", self.severity.as_str().to_string())];
        if let Some(t) = &self.task {
            facts.push(("Task", t.name.clone().unwrap_or_else(|| "(unnamed)".into())));
            facts.push(("Task ID", format!("{}:{}", t.engine, t.task_id)));
            if let Some(q) = &t.queue {
                facts.push(("Queue", q.clone()));
            }
            if t.retries > 0 {
                facts.push(("Retries", t.retries.to_string()));
            }
        }
        if let Some(a) = &self.agent {
            facts.push(("Agent", a.name.clone()));
        }
        if let Some(c) = &self.command {
            facts.push(("Command", format!("{} ({})", c.action, c.status)));
        }
        if self.suppressed > 0 {
            facts.push(("Muted since last message", self.suppressed.to_string()));
        }
        facts.push(("At", self.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
        facts
    }

    /// Stable per occurrence subject: PagerDuty's dedup key.
    pub fn subject_key(&self) -> String {
        let subject = match (&self.task, &self.agent, &self.command) {
            (Some(t), _, _) => t.name.clone().unwrap_or_else(|| t.task_id.clone()),
            (_, Some(a), _) => a.id.to_string(),
            (_, _, Some(c)) => c.action.clone(),
            _ => String::new(),
        };
        clip(&format!("{}/{}/{}", self.project_id, self.trigger.name(), subject), 250)
    }
}

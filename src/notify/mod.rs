//! Notifications: channels (where to send), rules (what to send and how
//! often), the outbox rows triggers leave behind, and the rendering and
//! delivery of one message. docs/runtime-semantics.md ("Notifier") covers
//! the delivery loop; SECURITY.md ("Outbound requests") the controls.
//!
//! * `cipher` — channel secrets at rest;
//! * `channel` / `channel_json` — channel configs: typed validation (run on
//!   save *and* before every send), secret/public split, masking, merging;
//! * `rules` — triggers' filters and matching;
//! * `triggers` — turning what happened into outbox rows, inside the
//!   transaction that recorded it;
//! * `message`, `escape`, `render`, `signature` — what a receiver gets;
//! * `deliver` — one outbox row through `outbound`.

pub mod channel;
pub mod channel_json;
pub mod cipher;
pub mod deliver;
pub mod escape;
pub mod message;
pub mod render;
pub mod rules;
pub mod signature;
pub mod triggers;

use serde::{Deserialize, Serialize};

/// What can fire a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Trigger {
    /// A `task.failed` event was newly stored.
    #[serde(rename = "task.failed")]
    TaskFailed,
    /// A `task.failed` event was newly stored for a task that had been
    /// retried before (a `task.retried` event or a `retry_count` ≥ 1): the
    /// queue gave up on it. See docs/notifications.md.
    #[serde(rename = "task.retries_exhausted")]
    TaskRetriesExhausted,
    /// The last connection of an agent closed and it did not come back
    /// within the grace period.
    #[serde(rename = "agent.offline")]
    AgentOffline,
    /// A command ended `failed` or `timed_out`.
    #[serde(rename = "command.failed")]
    CommandFailed,
    /// An audit-chain verification found tampering.
    #[serde(rename = "audit.verify_failed")]
    AuditVerifyFailed,
    /// A member's account was locked after failed logins.
    #[serde(rename = "auth.lockout")]
    AuthLockout,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::TaskFailed,
        Trigger::TaskRetriesExhausted,
        Trigger::AgentOffline,
        Trigger::CommandFailed,
        Trigger::AuditVerifyFailed,
        Trigger::AuthLockout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Trigger::TaskFailed => "task.failed",
            Trigger::TaskRetriesExhausted => "task.retries_exhausted",
            Trigger::AgentOffline => "agent.offline",
            Trigger::CommandFailed => "command.failed",
            Trigger::AuditVerifyFailed => "audit.verify_failed",
            Trigger::AuthLockout => "auth.lockout",
        }
    }

    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Severity when the occurrence itself says nothing more specific.
    pub fn default_severity(self) -> Severity {
        match self {
            Trigger::TaskFailed => Severity::Error,
            Trigger::TaskRetriesExhausted => Severity::Error,
            Trigger::AgentOffline => Severity::Critical,
            Trigger::CommandFailed => Severity::Warning,
            Trigger::AuditVerifyFailed => Severity::Critical,
            Trigger::AuthLockout => Severity::Warning,
        }
    }

    /// Task triggers carry a task name and queue that filters can match.
    pub fn is_task(self) -> bool {
        matches!(self, Trigger::TaskFailed | Trigger::TaskRetriesExhausted)
    }
}

/// PagerDuty's four levels, ordered, used by every channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// A task's own `priority` (z4j: critical, high, normal, low) moves the
    /// trigger's severity: critical tasks page, low-priority ones warn.
    pub fn for_task(trigger: Trigger, priority: Option<&str>) -> Severity {
        let base = trigger.default_severity();
        match priority {
            Some("critical") => Severity::Critical,
            Some("high") => base.max(Severity::Error),
            Some("low") => base.min(Severity::Warning),
            _ => base,
        }
    }
}

//! From "something happened" to outbox rows. Every function here takes the
//! caller's client, so triggers are enqueued in the transaction that
//! recorded the cause (ingest, command results), or in their own right
//! after it committed (lockouts, agents going offline) — never before.
//!
//! Work done per call: one query for the enabled rules of the triggers at
//! hand (none further if there are none), then per distinct (rule, subject)
//! one cooldown claim and, if it fires, one insert per channel. Many
//! occurrences of one subject in one call count as muted, so a storm of
//! identical failures costs one message and one counter update.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::message::{clip, AgentInfo, CommandInfo, Notification, TaskInfo, MAX_DETAIL_CHARS};
use super::rules::{Filters, Subject};
use super::{Severity, Trigger};
use crate::actors::notifier::NotifierMsg;
use crate::state::AppState;
use crate::store::notify_outbox;
use crate::store::notify_rules::{self, ActiveRule, Claim};
use crate::store::StoreError;

type EnqueueFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, StoreError>> + Send + 'a>>;

/// Run a trigger in its own transaction, for causes already committed
/// elsewhere (a lockout counter, a verification). Failure to enqueue is
/// logged, never passed to the request that caused it.
pub async fn after_commit<F>(st: &AppState, enqueue: F)
where
    F: for<'a> FnOnce(&'a deadpool_postgres::Transaction<'a>, DateTime<Utc>) -> EnqueueFuture<'a>,
{
    let run = async {
        let mut conn = st.db.conn().await?;
        let tx = conn.transaction().await?;
        let n = enqueue(&tx, st.clock.now()).await?;
        tx.commit().await?;
        Ok::<u64, StoreError>(n)
    };
    match run.await {
        Ok(n) if n > 0 => {
            let _ = st.notifier.cast(NotifierMsg::Kick);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not enqueue a notification"),
    }
}

/// One thing that happened, before rules are applied.
pub struct Occurrence {
    /// `None`: concerns the whole server (offered to every project's rules).
    pub project_id: Option<Uuid>,
    pub trigger: Trigger,
    /// The cooldown subject: a task name, an agent, a command action.
    pub key: String,
    pub severity: Severity,
    pub task_name: Option<String>,
    pub queue: Option<String>,
    pub notification: Notification,
}

/// Apply the enabled rules to `occurrences` and enqueue what fires.
/// Returns the number of outbox rows written.
pub async fn enqueue(
    c: &impl GenericClient,
    occurrences: &[Occurrence],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if occurrences.is_empty() {
        return Ok(0);
    }
    let mut triggers: Vec<&str> = occurrences.iter().map(|o| o.trigger.name()).collect();
    triggers.sort_unstable();
    triggers.dedup();
    let projects: Option<Vec<Uuid>> = occurrences.iter().map(|o| o.project_id).collect();
    let rules = notify_rules::active(c, projects.as_deref(), &triggers).await?;
    enqueue_with(c, &rules, occurrences, now).await
}

async fn enqueue_with(
    c: &impl GenericClient,
    rules: &[ActiveRule],
    occurrences: &[Occurrence],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // (rule, key) → (first occurrence, how many more), in a fixed order so
    // concurrent transactions lock cooldown rows in the same sequence.
    let mut fired: BTreeMap<(Uuid, String), (usize, i64)> = BTreeMap::new();
    for rule in rules {
        let Some(trigger) = Trigger::parse(&rule.trigger) else { continue };
        let Ok(filters) = serde_json::from_value::<Filters>(rule.filters.clone()) else {
            tracing::warn!(rule = %rule.id, "notification rule has unreadable filters; skipped");
            continue;
        };
        for (i, o) in occurrences.iter().enumerate() {
            if o.trigger != trigger || o.project_id.is_some_and(|p| p != rule.project_id) {
                continue;
            }
            let subject =
                Subject { task_name: o.task_name.as_deref(), queue: o.queue.as_deref(), severity: o.severity };
            if !filters.matches(&subject) {
                continue;
            }
            fired.entry((rule.id, o.key.clone())).and_modify(|(_, more)| *more += 1).or_insert((i, 0));
        }
    }
    // (rule, key, first occurrence, muted alongside), rules resolved.
    let fired: Vec<(&ActiveRule, String, usize, i64)> = fired
        .into_iter()
        .filter_map(|((rule_id, key), (i, more))| rules.iter().find(|r| r.id == rule_id).map(|r| (r, key, i, more)))
        .collect();
    let claims: Vec<Claim<'_>> = fired
        .iter()
        .map(|(rule, key, _, more)| Claim { rule_id: rule.id, key, cooldown_secs: rule.cooldown_secs, extra: *more })
        .collect();
    let decisions = notify_rules::claim_cooldowns(c, &claims, now).await?;
    let mut rows = Vec::new();
    for ((rule, _, i, _), decision) in fired.iter().zip(decisions) {
        let Some(muted) = decision else { continue };
        let mut n = occurrences[*i].notification.clone();
        n.project_id = rule.project_id;
        n.project_slug = rule.project_slug.clone();
        n.suppressed = muted;
        let payload = serde_json::to_value(&n).map_err(|e| StoreError::Db(e.to_string()))?;
        rows.push((rule.project_id, rule.id, rule.trigger.as_str(), payload));
    }
    notify_outbox::enqueue_many(c, &rows, now).await
}

fn base(trigger: Trigger, severity: Severity, project_id: Uuid, title: String, at: DateTime<Utc>) -> Notification {
    Notification {
        trigger,
        severity,
        project_id,
        project_slug: String::new(),
        title,
        occurred_at: at,
        task: None,
        agent: None,
        command: None,
        detail: None,
        suppressed: 0,
        test: false,
    }
}

/// A newly stored `task.failed` event.
pub struct TaskFailure<'a> {
    pub project_id: Uuid,
    pub engine: &'a str,
    pub task_id: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// The event's (redacted) `data`.
    pub data: &'a Value,
}

fn text(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| clip(s, 256))
}

/// Occurrences for freshly stored failure events (call inside the ingest
/// transaction, after the tasks upsert: a retried task's count is read
/// from the row that transaction just updated).
pub async fn task_failures(
    c: &impl GenericClient,
    failures: &[TaskFailure<'_>],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if failures.is_empty() {
        return Ok(0);
    }
    let mut projects: Vec<Uuid> = failures.iter().map(|f| f.project_id).collect();
    projects.sort_unstable();
    projects.dedup();
    let names = [Trigger::TaskFailed.name(), Trigger::TaskRetriesExhausted.name()];
    let rules = notify_rules::active(c, Some(&projects), &names).await?;
    if rules.is_empty() {
        return Ok(0);
    }
    let mut retries: BTreeMap<(Uuid, String, String), i32> = BTreeMap::new();
    if rules.iter().any(|r| r.trigger == Trigger::TaskRetriesExhausted.name()) {
        for p in &projects {
            let ids: Vec<&str> = failures.iter().filter(|f| f.project_id == *p).map(|f| f.task_id).collect();
            let rows = c
                .query(
                    "SELECT engine, task_id, retries FROM tasks WHERE project_id = $1 AND task_id = ANY($2)",
                    &[p, &ids],
                )
                .await?;
            for r in rows {
                retries.insert((*p, r.get(0), r.get(1)), r.get(2));
            }
        }
    }
    let mut occurrences = Vec::new();
    for f in failures {
        let name = text(f.data, "task_name");
        let queue = text(f.data, "queue");
        let retry_count = f.data.get("retry_count").and_then(Value::as_i64).unwrap_or(0);
        let stored = retries.get(&(f.project_id, f.engine.to_string(), f.task_id.to_string())).copied().unwrap_or(0);
        let retried = i32::try_from(retry_count).unwrap_or(i32::MAX).max(stored);
        let detail =
            text(f.data, "exception").or_else(|| text(f.data, "traceback")).map(|d| clip(&d, MAX_DETAIL_CHARS));
        let priority = f.data.get("priority").and_then(Value::as_str);
        let mut triggers = vec![Trigger::TaskFailed];
        if retried > 0 {
            triggers.push(Trigger::TaskRetriesExhausted);
        }
        for trigger in triggers {
            let label = name.clone().unwrap_or_else(|| format!("{}:{}", f.engine, f.task_id));
            let title = match trigger {
                Trigger::TaskRetriesExhausted => format!("Task failed after {retried} retries: {label}"),
                _ => format!("Task failed: {label}"),
            };
            let severity = Severity::for_task(trigger, priority);
            let mut n = base(trigger, severity, f.project_id, title, f.occurred_at);
            n.task = Some(TaskInfo {
                engine: f.engine.to_string(),
                task_id: clip(f.task_id, 256),
                name: name.clone(),
                queue: queue.clone(),
                retries: retried,
            });
            n.detail = detail.clone();
            occurrences.push(Occurrence {
                project_id: Some(f.project_id),
                trigger,
                key: format!("task:{}", name.clone().unwrap_or_else(|| f.task_id.to_string())),
                severity,
                task_name: name.clone(),
                queue: queue.clone(),
                notification: n,
            });
        }
    }
    enqueue_with(c, &rules, &occurrences, now).await
}

/// An agent's last connection closed and it stayed away for the grace
/// period. Revoked agents (closed on purpose) do not count.
pub async fn agent_offline(
    c: &impl GenericClient,
    project_id: Uuid,
    agent_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let row = c
        .query_opt(
            "SELECT name, last_seen_at FROM agents WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL",
            &[&project_id, &agent_id],
        )
        .await?;
    let Some(row) = row else { return Ok(0) };
    let (name, last_seen): (String, Option<DateTime<Utc>>) = (row.get(0), row.get(1));
    let trigger = Trigger::AgentOffline;
    let mut n = base(trigger, trigger.default_severity(), project_id, format!("Agent offline: {name}"), now);
    n.agent = Some(AgentInfo { id: agent_id, name });
    n.detail = last_seen.map(|t| format!("Last seen {}", t.format("%Y-%m-%d %H:%M:%S UTC")));
    let o = Occurrence {
        project_id: Some(project_id),
        trigger,
        key: format!("agent:{agent_id}"),
        severity: trigger.default_severity(),
        task_name: None,
        queue: None,
        notification: n,
    };
    enqueue(c, &[o], now).await
}

/// A command that ended `failed` or `timed_out`.
pub fn command_failed(
    project_id: Uuid,
    command_id: Uuid,
    action: &str,
    status: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Occurrence {
    let trigger = Trigger::CommandFailed;
    let verb = if status == "timed_out" { "timed out" } else { "failed" };
    let mut n = base(trigger, trigger.default_severity(), project_id, format!("Command {verb}: {action}"), now);
    n.command = Some(CommandInfo { id: command_id, action: action.to_string(), status: status.to_string() });
    n.detail = error.map(|e| clip(e, MAX_DETAIL_CHARS));
    Occurrence {
        project_id: Some(project_id),
        trigger,
        key: format!("command:{action}"),
        severity: trigger.default_severity(),
        task_name: None,
        queue: None,
        notification: n,
    }
}

/// An account was locked: offered to the projects the account belongs to
/// (whose admins can see its email anyway). Unknown emails concern nobody.
pub async fn lockout(c: &impl GenericClient, email: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let rows = c
        .query("SELECT m.project_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1", &[&email])
        .await?;
    let trigger = Trigger::AuthLockout;
    let occurrences: Vec<Occurrence> = rows
        .iter()
        .map(|r| {
            let project_id: Uuid = r.get(0);
            let mut n =
                base(trigger, trigger.default_severity(), project_id, "Account locked after failed logins".into(), now);
            n.detail = Some(format!("Account: {}", clip(email, 254)));
            Occurrence {
                project_id: Some(project_id),
                trigger,
                key: format!("account:{email}"),
                severity: trigger.default_severity(),
                task_name: None,
                queue: None,
                notification: n,
            }
        })
        .collect();
    enqueue(c, &occurrences, now).await
}

/// Audit-chain verification found a problem: a server-wide event, offered
/// to every project's rules. Only the finding's kind and row number go
/// out, never row contents.
pub async fn audit_verify_failed(
    c: &impl GenericClient,
    reason: &str,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let trigger = Trigger::AuditVerifyFailed;
    let mut n = base(trigger, trigger.default_severity(), Uuid::nil(), "Audit log verification failed".into(), now);
    n.detail = Some(format!("Finding: {} at row {seq}", clip(reason, 64)));
    let o = Occurrence {
        project_id: None,
        trigger,
        key: "audit".into(),
        severity: trigger.default_severity(),
        task_name: None,
        queue: None,
        notification: n,
    };
    enqueue(c, &[o], now).await
}

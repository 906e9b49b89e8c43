//! `notification_rules`, their channels, and the per-(rule, subject)
//! cooldowns that keep a failure storm to one message.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::StoreError;

#[derive(Clone, Debug, Serialize)]
pub struct RuleRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub trigger: String,
    pub filters: Value,
    pub cooldown_secs: i32,
    pub enabled: bool,
    pub channel_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT r.id, r.project_id, r.name, r.trigger, r.filters, r.cooldown_secs, r.enabled,
        COALESCE(ARRAY(SELECT channel_id FROM notification_rule_channels rc WHERE rc.rule_id = r.id ORDER BY channel_id), '{}'),
        r.created_at, r.updated_at
    FROM notification_rules r";

fn from_row(r: &Row) -> RuleRow {
    RuleRow {
        id: r.get(0),
        project_id: r.get(1),
        name: r.get(2),
        trigger: r.get(3),
        filters: r.get(4),
        cooldown_secs: r.get(5),
        enabled: r.get(6),
        channel_ids: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
    }
}

pub struct RuleWrite<'a> {
    pub name: &'a str,
    pub trigger: &'a str,
    pub filters: &'a Value,
    pub cooldown_secs: i32,
    pub enabled: bool,
}

/// How many of `ids` are channels of this project (to refuse foreign ids).
pub async fn count_channels(c: &impl GenericClient, project_id: Uuid, ids: &[Uuid]) -> Result<i64, StoreError> {
    let row = c
        .query_one(
            "SELECT count(*) FROM notification_channels WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &ids],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn insert(
    c: &impl GenericClient,
    project_id: Uuid,
    w: &RuleWrite<'_>,
    channel_ids: &[Uuid],
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<RuleRow, StoreError> {
    let id = Uuid::new_v4();
    c.execute(
        "INSERT INTO notification_rules (id, project_id, name, trigger, filters, cooldown_secs, enabled, created_by,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        &[&id, &project_id, &w.name, &w.trigger, &w.filters, &w.cooldown_secs, &w.enabled, &created_by, &now],
    )
    .await?;
    set_channels(c, id, channel_ids).await?;
    get(c, project_id, id).await?.ok_or_else(|| StoreError::Db("rule vanished after insert".into()))
}

async fn set_channels(c: &impl GenericClient, rule_id: Uuid, channel_ids: &[Uuid]) -> Result<(), StoreError> {
    c.execute("DELETE FROM notification_rule_channels WHERE rule_id = $1", &[&rule_id]).await?;
    c.execute(
        "INSERT INTO notification_rule_channels (rule_id, channel_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        &[&rule_id, &channel_ids],
    )
    .await?;
    Ok(())
}

pub async fn list(c: &impl GenericClient, project_id: Uuid) -> Result<Vec<RuleRow>, StoreError> {
    let sql = format!("{SELECT} WHERE r.project_id = $1 ORDER BY r.name");
    Ok(c.query(&sql, &[&project_id]).await?.iter().map(from_row).collect())
}

pub async fn get(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Option<RuleRow>, StoreError> {
    let sql = format!("{SELECT} WHERE r.project_id = $1 AND r.id = $2");
    Ok(c.query_opt(&sql, &[&project_id, &id]).await?.as_ref().map(from_row))
}

pub async fn update(
    c: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    w: &RuleWrite<'_>,
    channel_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Option<RuleRow>, StoreError> {
    let n = c
        .execute(
            "UPDATE notification_rules SET name = $3, trigger = $4, filters = $5, cooldown_secs = $6, enabled = $7,
                 updated_at = $8
             WHERE project_id = $1 AND id = $2",
            &[&project_id, &id, &w.name, &w.trigger, &w.filters, &w.cooldown_secs, &w.enabled, &now],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    set_channels(c, id, channel_ids).await?;
    // A changed rule starts with a clean slate of cooldowns.
    c.execute("DELETE FROM notification_cooldowns WHERE rule_id = $1", &[&id]).await?;
    get(c, project_id, id).await
}

pub async fn delete(c: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
    Ok(c.execute("DELETE FROM notification_rules WHERE project_id = $1 AND id = $2", &[&project_id, &id]).await? == 1)
}

/// An enabled rule as trigger evaluation needs it.
pub struct ActiveRule {
    pub id: Uuid,
    pub project_id: Uuid,
    pub project_slug: String,
    pub trigger: String,
    pub filters: Value,
    pub cooldown_secs: i32,
}

/// Enabled rules for these triggers in these projects (`None`: in every
/// project), skipping archived projects and rules with no channel.
pub async fn active(
    c: &impl GenericClient,
    projects: Option<&[Uuid]>,
    triggers: &[&str],
) -> Result<Vec<ActiveRule>, StoreError> {
    let rows = c
        .query(
            "SELECT r.id, r.project_id, p.slug, r.trigger, r.filters, r.cooldown_secs
             FROM notification_rules r JOIN projects p ON p.id = r.project_id
             WHERE r.enabled AND r.trigger = ANY($2) AND p.archived_at IS NULL
               AND ($1::uuid[] IS NULL OR r.project_id = ANY($1))
               AND EXISTS (SELECT 1 FROM notification_rule_channels rc WHERE rc.rule_id = r.id)
             ORDER BY r.id",
            &[&projects, &triggers],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ActiveRule {
            id: r.get(0),
            project_id: r.get(1),
            project_slug: r.get(2),
            trigger: r.get(3),
            filters: r.get(4),
            cooldown_secs: r.get(5),
        })
        .collect())
}

/// Decide whether `(rule, key)` may send now, and record the decision.
/// Returns `Some(muted since the last message)` when it may. `extra` more
/// occurrences arrived together with this one and are counted as muted.
///
/// Three statements under a row lock rather than one clever upsert: two
/// ingest commits racing on a new key must not both see "never fired".
/// Callers take keys in a fixed order (sorted), so concurrent transactions
/// cannot deadlock on them.
pub async fn claim_cooldown(
    c: &impl GenericClient,
    rule_id: Uuid,
    key: &str,
    cooldown_secs: i32,
    extra: i64,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    c.execute(
        "INSERT INTO notification_cooldowns (rule_id, key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&rule_id, &key],
    )
    .await?;
    let row = c
        .query_one(
            "SELECT last_fired_at, suppressed FROM notification_cooldowns WHERE rule_id = $1 AND key = $2 FOR UPDATE",
            &[&rule_id, &key],
        )
        .await?;
    let (last, muted): (Option<DateTime<Utc>>, i64) = (row.get(0), row.get(1));
    let window = chrono::Duration::seconds(i64::from(cooldown_secs));
    let fire = last.is_none_or(|t| t + window <= now);
    if fire {
        c.execute(
            "UPDATE notification_cooldowns SET last_fired_at = $3, suppressed = $4 WHERE rule_id = $1 AND key = $2",
            &[&rule_id, &key, &now, &extra],
        )
        .await?;
        Ok(Some(muted))
    } else {
        c.execute(
            "UPDATE notification_cooldowns SET suppressed = suppressed + 1 + $3 WHERE rule_id = $1 AND key = $2",
            &[&rule_id, &key, &extra],
        )
        .await?;
        Ok(None)
    }
}

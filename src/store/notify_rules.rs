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

/// When a (rule, subject) last sent, and how much it muted since.
type Cooldown = (Option<DateTime<Utc>>, i64);

/// One (rule, subject) to decide: `extra` more occurrences of it arrived
/// together with this one and count as muted.
pub struct Claim<'a> {
    pub rule_id: Uuid,
    pub key: &'a str,
    pub cooldown_secs: i32,
    pub extra: i64,
}

/// Decide, for each claim, whether its (rule, subject) may send now, and
/// record the decisions. Returns, per claim in order, `Some(muted since the
/// last message)` when it may.
///
/// Four statements whatever the number of claims, under row locks taken in
/// one fixed order (callers pass claims sorted by rule and key), so two
/// ingest commits racing on a new subject cannot both see "never fired"
/// and concurrent transactions cannot deadlock on these rows.
pub async fn claim_cooldowns(
    c: &impl GenericClient,
    claims: &[Claim<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Option<i64>>, StoreError> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let rules: Vec<Uuid> = claims.iter().map(|x| x.rule_id).collect();
    let keys: Vec<&str> = claims.iter().map(|x| x.key).collect();
    c.execute(
        "INSERT INTO notification_cooldowns (rule_id, key) SELECT * FROM unnest($1::uuid[], $2::text[])
         ON CONFLICT DO NOTHING",
        &[&rules, &keys],
    )
    .await?;
    let rows = c
        .query(
            "SELECT c.rule_id, c.key, c.last_fired_at, c.suppressed FROM notification_cooldowns c
             JOIN unnest($1::uuid[], $2::text[]) AS u(r, k) ON c.rule_id = u.r AND c.key = u.k
             ORDER BY c.rule_id, c.key FOR UPDATE OF c",
            &[&rules, &keys],
        )
        .await?;
    let state: std::collections::HashMap<(Uuid, String), Cooldown> =
        rows.iter().map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3)))).collect();
    let mut decisions = Vec::with_capacity(claims.len());
    let (mut last, mut muted_now) = (Vec::with_capacity(claims.len()), Vec::with_capacity(claims.len()));
    for x in claims {
        let (fired_at, muted) = state.get(&(x.rule_id, x.key.to_string())).copied().unwrap_or((None, 0));
        let window = chrono::Duration::seconds(i64::from(x.cooldown_secs));
        if fired_at.is_none_or(|t| t + window <= now) {
            decisions.push(Some(muted));
            last.push(Some(now));
            muted_now.push(x.extra);
        } else {
            decisions.push(None);
            last.push(fired_at);
            muted_now.push(muted + 1 + x.extra);
        }
    }
    c.execute(
        "UPDATE notification_cooldowns c SET last_fired_at = u.l, suppressed = u.s
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[]) AS u(r, k, l, s)
         WHERE c.rule_id = u.r AND c.key = u.k",
        &[&rules, &keys, &last, &muted_now],
    )
    .await?;
    Ok(decisions)
}

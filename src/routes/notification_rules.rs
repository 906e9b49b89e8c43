//! Notification rules of a project (which triggers go to which channels,
//! with which filters and cooldown) and the delivery list.

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::{internal, ApiError};
use crate::notify::rules::{Filters, DEFAULT_COOLDOWN_SECS, MAX_COOLDOWN_SECS};
use crate::notify::Trigger;
use crate::store::notify_rules::{self as store, RuleRow, RuleWrite};
use crate::store::{notify_outbox, StoreError};

const MAX_CHANNELS_PER_RULE: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    name: Option<String>,
    trigger: Option<String>,
    channel_ids: Option<Vec<Uuid>>,
    filters: Option<Filters>,
    cooldown_secs: Option<i32>,
    enabled: Option<bool>,
}

/// A rule after validation, ready to store.
struct Valid {
    name: String,
    trigger: Trigger,
    channel_ids: Vec<Uuid>,
    filters: Filters,
    cooldown_secs: i32,
    enabled: bool,
}

async fn validate(c: &impl deadpool_postgres::GenericClient, project_id: Uuid, v: Valid) -> Result<Valid, ApiError> {
    let n = v.name.trim().chars().count();
    if !(1..=100).contains(&n) || v.name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 100 printable characters"));
    }
    if !(0..=MAX_COOLDOWN_SECS).contains(&v.cooldown_secs) {
        return Err(ApiError::validation("cooldown_secs must be between 0 and 86400"));
    }
    v.filters.validate(v.trigger).map_err(ApiError::validation)?;
    let mut ids = v.channel_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() || ids.len() > MAX_CHANNELS_PER_RULE {
        return Err(ApiError::validation("channel_ids must list 1 to 20 channels"));
    }
    // Ids from another project are refused exactly like unknown ones.
    if store::count_channels(c, project_id, &ids).await? != ids.len() as i64 {
        return Err(ApiError::validation("channel_ids must name channels of this project"));
    }
    Ok(Valid { name: v.name.trim().to_string(), channel_ids: ids, ..v })
}

fn parse_trigger(name: &str) -> Result<Trigger, ApiError> {
    Trigger::parse(name).ok_or_else(|| {
        let all: Vec<&str> = Trigger::ALL.iter().map(|t| t.name()).collect();
        ApiError::validation(format!("trigger must be one of {}", all.join(", ")))
    })
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::conflict("rule_name_taken", "a rule with this name already exists"),
        e => e.into(),
    }
}

fn details(r: &RuleRow) -> serde_json::Value {
    json!({ "name": r.name, "trigger": r.trigger, "channel_ids": r.channel_ids, "cooldown_secs": r.cooldown_secs,
            "enabled": r.enabled, "filters": r.filters })
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let conn = req.state.db.conn().await?;
    Ok(reply::ok(&json!({ "rules": store::list(&conn, project_id).await? })))
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let body: RuleBody = req.json()?;
    let (Some(name), Some(trigger), Some(channel_ids)) = (body.name, body.trigger, body.channel_ids) else {
        return Err(ApiError::validation("name, trigger and channel_ids are required"));
    };
    let caller = req.caller()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let v = Valid {
        name,
        trigger: parse_trigger(&trigger)?,
        channel_ids,
        filters: body.filters.unwrap_or_default(),
        cooldown_secs: body.cooldown_secs.unwrap_or(DEFAULT_COOLDOWN_SECS),
        enabled: body.enabled.unwrap_or(true),
    };
    let v = validate(&tx, project_id, v).await?;
    let filters = serde_json::to_value(&v.filters).map_err(internal("rule filters"))?;
    let w = RuleWrite {
        name: &v.name,
        trigger: v.trigger.name(),
        filters: &filters,
        cooldown_secs: v.cooldown_secs,
        enabled: v.enabled,
    };
    let row = store::insert(&tx, project_id, &w, &v.channel_ids, Some(caller.user_id), st.clock.now())
        .await
        .map_err(name_taken)?;
    st.audit(req.audit("notification.rule.created").target("notification_rule", row.id).details(details(&row))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::created(&json!({ "rule": row })))
}

pub async fn update(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let body: RuleBody = req.json()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let row = store::get(&tx, project_id, id).await?.ok_or_else(ApiError::not_found)?;
    let current_filters: Filters = serde_json::from_value(row.filters.clone()).unwrap_or_default();
    let trigger = match &body.trigger {
        Some(t) => parse_trigger(t)?,
        None => parse_trigger(&row.trigger)?,
    };
    let v = Valid {
        name: body.name.unwrap_or(row.name.clone()),
        trigger,
        channel_ids: body.channel_ids.unwrap_or(row.channel_ids.clone()),
        filters: body.filters.unwrap_or(current_filters),
        cooldown_secs: body.cooldown_secs.unwrap_or(row.cooldown_secs),
        enabled: body.enabled.unwrap_or(row.enabled),
    };
    let v = validate(&tx, project_id, v).await?;
    let filters = serde_json::to_value(&v.filters).map_err(internal("rule filters"))?;
    let w = RuleWrite {
        name: &v.name,
        trigger: v.trigger.name(),
        filters: &filters,
        cooldown_secs: v.cooldown_secs,
        enabled: v.enabled,
    };
    let updated = store::update(&tx, project_id, id, &w, &v.channel_ids, st.clock.now())
        .await
        .map_err(name_taken)?
        .ok_or_else(ApiError::not_found)?;
    st.audit(req.audit("notification.rule.updated").target("notification_rule", id).details(details(&updated))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::ok(&json!({ "rule": updated })))
}

pub async fn delete(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let row = store::get(&tx, project_id, id).await?.ok_or_else(ApiError::not_found)?;
    store::delete(&tx, project_id, id).await?;
    st.audit(req.audit("notification.rule.deleted").target("notification_rule", id).details(details(&row))).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::no_content())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// Recent outbox rows (no payloads): what was sent, what is waiting and
/// why the last attempt failed (sanitised text).
pub async fn deliveries(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let q: DeliveryQuery = req.query()?;
    if q.status.as_deref().is_some_and(|s| !["pending", "sending", "sent", "failed"].contains(&s)) {
        return Err(ApiError::validation("status must be pending, sending, sent or failed"));
    }
    let conn = req.state.db.conn().await?;
    let rows =
        notify_outbox::recent(&conn, project_id, q.status.as_deref(), q.limit.unwrap_or(100).clamp(1, 500)).await?;
    Ok(reply::ok(&reply::Listing::of("deliveries", &rows)))
}

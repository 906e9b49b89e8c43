//! Notification channels of a project: list, create, update, delete, test.
//! Secrets are encrypted before they are stored and masked in every
//! answer; audit rows name the channel and its destination host, never a
//! config value.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warp::http::StatusCode;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::limiter::Bucket;
use crate::audit::Outcome;
use crate::error::{internal, ApiError};
use crate::notify::channel::{ChannelConfig, ChannelKind, ConfigError};
use crate::notify::channel_json::{self, MAX_CONFIG_BYTES};
use crate::notify::deliver::full_config;
use crate::notify::message::Notification;
use crate::state::AppState;
use crate::store::notify_channels::{self as store, ChannelRow, ChannelWrite};
use crate::store::StoreError;

/// The one view of a channel every answer uses: secrets masked.
pub fn view(row: &ChannelRow) -> Value {
    let kind = ChannelKind::parse(&row.kind);
    let config = match kind {
        Some(k) => channel_json::masked(k, &row.config, &row.secret_keys),
        None => json!({}),
    };
    json!({
        "id": row.id, "name": row.name, "type": row.kind, "enabled": row.enabled,
        "destination": row.destination, "config": config,
        "created_at": row.created_at, "updated_at": row.updated_at,
    })
}

fn config_error(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Invalid(msg) => ApiError::validation(msg),
        ConfigError::Policy(p) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "destination_rejected", p.public_message())
                .with_details(json!({ "reason": p.code() }))
        }
    }
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let n = name.chars().count();
    if !(1..=100).contains(&n) || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name must be 1 to 100 printable characters"));
    }
    Ok(name.to_string())
}

/// Validate a full config and produce what is stored.
struct Prepared {
    public: Value,
    secrets: Vec<u8>,
    secret_keys: Vec<String>,
    destination: String,
}

fn prepare(
    st: &AppState,
    kind: ChannelKind,
    project: Uuid,
    id: Uuid,
    full: &Map<String, Value>,
) -> Result<Prepared, ApiError> {
    if serde_json::to_vec(full).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_CONFIG_BYTES {
        return Err(ApiError::validation("config is larger than 16 KiB"));
    }
    let config = ChannelConfig::from_json(kind, Value::Object(full.clone())).map_err(config_error)?;
    let target = config.check(&st.deliverer.outbound.policy).map_err(config_error)?;
    let destination = channel_json::destination(&config, &target);
    let (public, secret) = channel_json::split(kind, full);
    let secret_keys: Vec<String> = secret.keys().cloned().collect();
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&secret).map_err(internal("channel secrets"))?);
    let secrets = st.deliverer.cipher.encrypt(project, id, &plain).map_err(internal("channel secrets"))?;
    Ok(Prepared { public: Value::Object(public), secrets, secret_keys, destination })
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::conflict("channel_name_taken", "a channel with this name already exists"),
        e => e.into(),
    }
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let conn = req.state.db.conn().await?;
    let rows = store::list(&conn, project_id).await?;
    Ok(reply::ok(&json!({ "channels": rows.iter().map(view).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewChannel {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    config: Map<String, Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

pub async fn create(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let body: NewChannel = req.json()?;
    let name = valid_name(&body.name)?;
    let kind = ChannelKind::parse(&body.kind)
        .ok_or_else(|| ApiError::validation("type must be webhook, slack, discord, teams, pagerduty or email"))?;
    channel_json::refuse_mask(&body.config).map_err(config_error)?;
    let id = Uuid::new_v4();
    let p = prepare(st, kind, project_id, id, &body.config)?;
    let caller = req.caller()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let w = ChannelWrite {
        name: &name,
        config: &p.public,
        destination: &p.destination,
        secrets: &p.secrets,
        secret_keys: &p.secret_keys,
        enabled: body.enabled.unwrap_or(true),
    };
    let row = store::insert(&tx, id, project_id, kind.as_str(), &w, Some(caller.user_id), st.clock.now())
        .await
        .map_err(name_taken)?;
    st.audit(req.audit("notification.channel.created").target("notification_channel", row.id).details(json!({
        "name": row.name, "type": row.kind, "destination": row.destination, "enabled": row.enabled,
    })))
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::created(&json!({ "channel": view(&row) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelPatch {
    name: Option<String>,
    enabled: Option<bool>,
    config: Option<Map<String, Value>>,
}

pub async fn update(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let body: ChannelPatch = req.json()?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let row = store::get(&tx, project_id, id, true).await?.ok_or_else(ApiError::not_found)?;
    let kind = ChannelKind::parse(&row.kind).ok_or_else(|| internal("channel kind")("unknown kind in the database"))?;
    let current = full_config(&st.deliverer.cipher, &row).map_err(|msg| {
        tracing::error!(channel = %row.id, "{msg}");
        ApiError::conflict(
            "channel_unreadable",
            "this channel's secrets cannot be read with the current keys; delete and re-create it",
        )
    })?;
    let patch = body.config.unwrap_or_default();
    let merged = channel_json::merge(kind, &current, &patch);
    let p = prepare(st, kind, project_id, id, &merged)?;
    let name = match &body.name {
        Some(n) => valid_name(n)?,
        None => row.name.clone(),
    };
    let w = ChannelWrite {
        name: &name,
        config: &p.public,
        destination: &p.destination,
        secrets: &p.secrets,
        secret_keys: &p.secret_keys,
        enabled: body.enabled.unwrap_or(row.enabled),
    };
    let updated = store::update(&tx, project_id, id, &w, st.clock.now())
        .await
        .map_err(name_taken)?
        .ok_or_else(ApiError::not_found)?;
    let fields: Vec<&String> = patch.keys().collect();
    st.audit(req.audit("notification.channel.updated").target("notification_channel", id).details(json!({
        "name": updated.name, "type": updated.kind, "config_fields": fields,
        "destination": updated.destination, "destination_changed": updated.destination != row.destination,
        "enabled": updated.enabled,
    })))
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::ok(&json!({ "channel": view(&updated) })))
}

pub async fn delete(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let row = store::delete(&tx, project_id, id).await?.ok_or_else(ApiError::not_found)?;
    st.audit(
        req.audit("notification.channel.deleted")
            .target("notification_channel", id)
            .details(json!({ "name": row.name, "type": row.kind, "destination": row.destination })),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(reply::no_content())
}

/// Send the canned test message now (not through the outbox) and report
/// what happened in our own words: no resolved address, no library error.
pub async fn test(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::ChannelTest, req.client_ip).await?;
    let project = req.project()?.project.clone();
    let id = req.param_uuid("id")?;
    let conn = st.db.conn().await?;
    let row = store::get(&conn, project.id, id, false).await?.ok_or_else(ApiError::not_found)?;
    drop(conn);
    let who = json!({ "name": row.name, "type": row.kind, "destination": row.destination });
    // Recorded before the first outbound byte, so a test that hangs or
    // crashes the process is still on record.
    st.audit(req.audit("notification.channel.test_requested").target("notification_channel", id).details(who.clone()))
        .await?;
    let n = Notification::test(project.id, &project.slug, st.clock.now());
    let attempt = st.deliverer.deliver(&row, &n, Uuid::new_v4()).await;
    let mut details = who;
    if let Some(obj) = details.as_object_mut() {
        obj.insert("ok".into(), json!(attempt.ok()));
        obj.insert("status".into(), json!(attempt.status()));
        obj.insert("error".into(), json!(attempt.error()));
    }
    let outcome = if attempt.ok() { Outcome::Success } else { Outcome::Failure };
    st.audit(
        req.audit("notification.channel.test").target("notification_channel", id).outcome(outcome).details(details),
    )
    .await?;
    Ok(reply::ok(&json!({ "ok": attempt.ok(), "status": attempt.status(), "error": attempt.error() })))
}

//! Operator commands: validated against the caller's project, stored with
//! their audit row in one transaction, then handed to the dispatcher.

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::dispatcher::DispatcherMsg;
use crate::error::ApiError;
use crate::fleet::commands::{self as cmd, Action, MAX_BULK, PENDING_TTL_SECS};
use crate::security::frame::{self, FrameKey};
use crate::store::commands::{self as store, NewCommand};
use crate::store::{tasks, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    engine: String,
    task_id: Option<String>,
    task_ids: Option<Vec<String>>,
    state: Option<String>,
    task_name: Option<String>,
    queue: Option<String>,
    depth: Option<i64>,
    #[serde(default)]
    force: bool,
    worker_name: Option<String>,
    override_args: Option<Value>,
    override_kwargs: Option<Value>,
    eta_seconds: Option<i64>,
    priority: Option<i64>,
    agent_id: Option<Uuid>,
}

struct Planned {
    target_type: &'static str,
    target_id: Option<String>,
    parameters: Value,
}

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| ApiError::validation(format!("`{field}` is required")))
}

/// Turn a request into a command for this project. Every task, queue or
/// worker named must belong to the caller's project.
async fn plan(req: &Req, action: Action, b: &Body, project_id: Uuid) -> Result<Planned, ApiError> {
    let conn = req.state.db.conn().await?;
    let engine = b.engine.as_str();
    match action {
        Action::RetryTask | Action::CancelTask => {
            let task_id = required(&b.task_id, "task_id")?;
            let task = tasks::get(&conn, project_id, engine, task_id).await?.ok_or_else(ApiError::not_found)?;
            let parameters = if action == Action::RetryTask {
                cmd::retry_parameters(
                    engine,
                    task_id,
                    task.name.as_deref(),
                    b.override_args.clone(),
                    b.override_kwargs.clone(),
                    b.eta_seconds,
                    b.priority,
                )
            } else {
                cmd::cancel_parameters(engine, task_id)
            };
            Ok(Planned { target_type: "task", target_id: Some(format!("{engine}:{task_id}")), parameters })
        }
        Action::BulkRetry => {
            let ids = match (&b.task_ids, &b.state) {
                (Some(ids), _) if !ids.is_empty() && ids.len() <= MAX_BULK => {
                    tasks::existing_ids(&conn, project_id, engine, ids).await?
                }
                (Some(_), _) => return Err(ApiError::validation(format!("task_ids must list 1 to {MAX_BULK} tasks"))),
                (None, Some(state)) => {
                    tasks::ids_matching(&conn, project_id, engine, state, b.task_name.as_deref(), MAX_BULK as i64)
                        .await?
                }
                (None, None) => {
                    return Err(ApiError::validation(
                        "give task_ids, or a state (and optionally task_name) to select tasks",
                    ))
                }
            };
            if ids.is_empty() {
                return Err(ApiError::validation("no matching tasks in this project"));
            }
            Ok(Planned { target_type: "bulk", target_id: None, parameters: cmd::bulk_retry_parameters(engine, &ids) })
        }
        Action::PurgeQueue => {
            let queue = required(&b.queue, "queue")?;
            let token = if b.force {
                None
            } else {
                // The agent re-measures the depth and refuses unless this
                // token commits to exactly that depth (protocol §5.5).
                let depth = match b.depth {
                    Some(d) => d,
                    None => tasks::queue_depth(&conn, project_id, engine, queue).await?.ok_or_else(|| {
                        ApiError::validation("the queue's depth is not known yet; pass `depth` (as shown) or `force`")
                    })?,
                };
                let depth = u64::try_from(depth).map_err(|_| ApiError::validation("depth must not be negative"))?;
                let key = FrameKey::new(&frame::derive_project_key(req.state.config.secret.expose(), project_id))
                    .map_err(|_| ApiError::internal())?;
                Some(frame::purge_confirm_token(&key, queue, depth))
            };
            Ok(Planned {
                target_type: "queue",
                target_id: Some(queue.to_string()),
                parameters: cmd::purge_parameters(queue, token.as_deref(), b.force),
            })
        }
        Action::RestartWorker => {
            let worker = required(&b.worker_name, "worker_name")?;
            Ok(Planned {
                target_type: "worker",
                target_id: Some(worker.to_string()),
                parameters: cmd::restart_parameters(engine, worker),
            })
        }
    }
}

async fn issue(req: Req, action: Action) -> Result<Response, ApiError> {
    let st = &req.state;
    let project_id = req.project()?.project.id;
    let body: Body = req.json()?;
    if body.engine.is_empty() || body.engine.len() > 64 {
        return Err(ApiError::validation("`engine` is required"));
    }
    let planned = plan(&req, action, &body, project_id).await?;
    let caller = req.caller()?;
    let now = st.clock.now();
    let mut conn = st.db.conn().await?;
    let tx = conn.transaction().await.map_err(StoreError::from)?;
    let row = store::insert(
        &tx,
        &NewCommand {
            project_id,
            agent_id: body.agent_id,
            engine: &body.engine,
            action: action.wire(),
            target_type: planned.target_type,
            target_id: planned.target_id.as_deref(),
            parameters: &planned.parameters,
            issued_by: Some(caller.user_id),
            expires_at: now + chrono::Duration::seconds(PENDING_TTL_SECS),
        },
        now,
    )
    .await?;
    st.audit(req.audit("command.issued").project(project_id).target("command", row.id).details(json!({
        "action": row.action, "engine": row.engine, "target_type": row.target_type, "target_id": row.target_id,
    })))
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let _ = st.dispatcher.cast(DispatcherMsg::Dispatch { project_id, command_id: row.id });
    Ok(reply::json(warp::http::StatusCode::ACCEPTED, &json!({ "command": row })))
}

pub async fn retry_task(req: Req) -> Result<Response, ApiError> {
    issue(req, Action::RetryTask).await
}
pub async fn cancel_task(req: Req) -> Result<Response, ApiError> {
    issue(req, Action::CancelTask).await
}
pub async fn bulk_retry(req: Req) -> Result<Response, ApiError> {
    issue(req, Action::BulkRetry).await
}
pub async fn purge_queue(req: Req) -> Result<Response, ApiError> {
    issue(req, Action::PurgeQueue).await
}
pub async fn restart_worker(req: Req) -> Result<Response, ApiError> {
    issue(req, Action::RestartWorker).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    before: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let q: ListQuery = req.query()?;
    let conn = req.state.db.conn().await?;
    let rows =
        store::list(&conn, project_id, q.status.as_deref(), q.before, q.limit.unwrap_or(50).clamp(1, 500)).await?;
    Ok(reply::ok(&reply::Listing::of("commands", &rows)))
}

pub async fn get(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let id = req.param_uuid("id")?;
    let conn = req.state.db.conn().await?;
    let row = store::get(&conn, project_id, id).await?.ok_or_else(ApiError::not_found)?;
    Ok(reply::ok(&json!({ "command": row })))
}

//! Reading what the fleet reported: tasks (filtered, searched, paginated),
//! one task with its events, workers, queues, and the event stream.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::ApiError;
use crate::store::tasks::{self as store, Cursor, TaskFilter};

const MAX_PAGE: i64 = 200;

/// Cursors are opaque to clients: base64url of "time|engine|task_id".
fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{}",
        c.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        c.engine,
        c.task_id
    ))
}

fn decode_cursor(s: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::validation("cursor is not valid");
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let (at, engine, task_id) =
        (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&chrono::Utc);
    Ok(Cursor { at, engine: engine.to_string(), task_id: task_id.to_string() })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TaskQuery {
    state: Option<String>,
    name: Option<String>,
    queue: Option<String>,
    worker: Option<String>,
    engine: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let q: TaskQuery = req.query()?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::validation("search text is longer than 200 characters"));
    }
    let filter = TaskFilter {
        state: q.state,
        name: q.name,
        queue: q.queue,
        worker: q.worker,
        engine: q.engine,
        since: q.since,
        until: q.until,
        search: q.q.filter(|s| !s.is_empty()),
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let conn = req.state.db.conn().await?;
    let rows = store::list(&conn, project_id, &filter, limit).await?;
    let next = if rows.len() as i64 == limit {
        rows.last().map(|t| {
            encode_cursor(&Cursor { at: t.last_event_at, engine: t.engine.clone(), task_id: t.task_id.clone() })
        })
    } else {
        None
    };
    Ok(reply::ok(&reply::Listing::of("tasks", &rows).next("next_cursor", &next)))
}

pub async fn get(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let (engine, task_id) = (req.param("engine"), req.param("task_id"));
    let conn = req.state.db.conn().await?;
    let task = store::get(&conn, project_id, engine, task_id).await?.ok_or_else(ApiError::not_found)?;
    let events = store::task_events(&conn, project_id, engine, task_id).await?;
    Ok(reply::ok(&json!({ "task": task, "events": events })))
}

pub async fn workers(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let conn = req.state.db.conn().await?;
    Ok(reply::ok(&json!({ "workers": store::workers(&conn, project_id).await? })))
}

pub async fn queues(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let conn = req.state.db.conn().await?;
    Ok(reply::ok(&json!({ "queues": store::queues(&conn, project_id).await? })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    kind: Option<String>,
    before: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

pub async fn events(req: Req) -> Result<Response, ApiError> {
    let project_id = req.project()?.project.id;
    let q: EventQuery = req.query()?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let conn = req.state.db.conn().await?;
    let rows = store::events(&conn, project_id, q.kind.as_deref(), q.before, limit).await?;
    let next = if rows.len() as i64 == limit { rows.last().map(|e| e.received_at) } else { None };
    Ok(reply::ok(&reply::Listing::of("events", &rows).next("next_before", &next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor { at: chrono::Utc::now(), engine: "rq".into(), task_id: "a|b".into() };
        let back = decode_cursor(&encode_cursor(&c)).unwrap();
        assert_eq!(back.engine, "rq");
        assert_eq!(back.task_id, "a|b");
        assert_eq!(back.at.timestamp_micros(), c.at.timestamp_micros());
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x|y")).is_err());
    }
}

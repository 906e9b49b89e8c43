//! Liveness and readiness probes (exempt from the Host check so a load
//! balancer can probe by IP).

use serde_json::json;
use warp::http::StatusCode;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::ApiError;

pub async fn live(_req: Req) -> Result<Response, ApiError> {
    Ok(reply::ok(&json!({ "status": "ok" })))
}

/// 200 only when the database answers and no supervised actor has melted
/// down; 503 otherwise, so orchestrators route around (or restart) us.
pub async fn ready(req: Req) -> Result<Response, ApiError> {
    if !req.state.health.healthy() {
        return Ok(reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unready", "reason": "actor_meltdown" }),
        ));
    }
    if !req.state.db.ping().await {
        return Ok(reply::json(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "unready", "reason": "database" })));
    }
    Ok(reply::ok(&json!({ "status": "ready" })))
}

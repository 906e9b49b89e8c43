//! The long-poll transport (protocol §1.10): `POST /api/v1/agent/events`
//! uploads signed frames, `GET /api/v1/agent/commands` waits for commands.
//! The same verification as the WebSocket applies to every frame; the
//! session binding is the `X-Z4J-Session-Nonce` header. Answers carry
//! `X-Z4J-Agent-Id` / `X-Z4J-Project-Id`, which the agent binds to.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode};

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::actors::agent_inbound as inbound;
use crate::actors::ingest::Done;
use crate::actors::limiter::Bucket;
use crate::actors::longpoll::{LongPollError, LongPollMsg, Who};
use crate::audit::Outcome;
use crate::error::ApiError;
use crate::fleet::commands::Action;
use crate::fleet::AgentIdentity;
use crate::security::frame::{self, FrameError, FrameKey, FrameKind};
use crate::store::commands as store;

const MAX_FRAMES: usize = 500;
const MAX_FRAME_BYTES: usize = 1 << 20;
const CALL: Duration = Duration::from_secs(10);
const COMMIT_WAIT: Duration = Duration::from_secs(30);

fn nonce(req: &Req) -> Result<String, ApiError> {
    let v = req.headers.get("x-z4j-session-nonce").and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ApiError::bad_request("bad_session_nonce", "X-Z4J-Session-Nonce must be 1-64 url-safe characters"))
    }
}

fn who(req: &Req, a: &AgentIdentity) -> Result<Who, ApiError> {
    let key = FrameKey::new(&frame::derive_project_key(req.state.config.secret.expose(), a.project_id))
        .map_err(|_| ApiError::internal())?;
    Ok(Who { agent_id: a.agent_id, project_id: a.project_id, nonce: nonce(req)?, key })
}

fn lp_error(e: LongPollError) -> ApiError {
    match e {
        LongPollError::Poisoned => ApiError::conflict("session_invalidated", e.to_string()),
        LongPollError::Full => ApiError::unavailable(e.to_string()),
    }
}

fn with_identity(mut r: Response, a: &AgentIdentity) -> Response {
    for (name, v) in [("x-z4j-agent-id", a.agent_id), ("x-z4j-project-id", a.project_id)] {
        if let Ok(hv) = HeaderValue::from_str(&v.to_string()) {
            r.headers_mut().insert(name, hv);
        }
    }
    r
}

#[derive(Deserialize)]
struct Upload {
    frames: Vec<String>,
}

pub async fn events(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::AgentConnect, req.client_ip).await?;
    let agent = req.agent()?.clone();
    let upload: Upload = req.json()?;
    if upload.frames.is_empty() || upload.frames.len() > MAX_FRAMES {
        return Err(ApiError::validation(format!("frames must hold 1 to {MAX_FRAMES} signed frames")));
    }
    if upload.frames.iter().any(|f| f.len() > MAX_FRAME_BYTES) {
        return Err(ApiError::payload_too_large(MAX_FRAME_BYTES));
    }
    let frames: Vec<Vec<u8>> = upload.frames.into_iter().map(String::into_bytes).collect();
    let who = who(&req, &agent)?;
    // A long-poll agent's session is its nonce: keep its batches in one lane.
    let stream = crate::security::keys::hmac_sha256(b"palisade/ingest-stream", &[who.nonce.as_bytes()])
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let verified =
        st.longpoll.call(|reply| LongPollMsg::Verify { who, frames, reply }, CALL).await?.map_err(lp_error)?;
    let (mut accepted, mut rejected, mut errors, mut waiting) = (0usize, 0usize, Vec::new(), Vec::new());
    for r in verified {
        match r {
            Ok(f) => match f.kind {
                FrameKind::EventBatch => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if inbound::submit_events(st, &agent, stream, &f, |_, _| Done::Waiter(tx)).await {
                        waiting.push(rx);
                    } else {
                        rejected += 1;
                    }
                }
                FrameKind::Heartbeat => {
                    inbound::heartbeat(st, &agent, stream, &f);
                    accepted += 1;
                }
                FrameKind::CommandAck | FrameKind::CommandResult => {
                    inbound::command_reply(st, &agent, &f);
                    accepted += 1;
                }
                _ => accepted += 1,
            },
            // Permanent problems (malformed, unknown type, a hello) are
            // dropped for good: counted accepted so the agent stops resending.
            Err(e @ (FrameError::Protocol(_) | FrameError::Version(_) | FrameError::Unsigned(_))) => {
                accepted += 1;
                if errors.len() < 10 {
                    errors.push(e.to_string());
                }
            }
            Err(e) => {
                rejected += 1;
                if errors.len() < 10 {
                    errors.push(e.to_string());
                }
            }
        }
    }
    if rejected > 0 {
        st.audit(req.audit("agent.frame_rejected").outcome(Outcome::Denied).target("agent", agent.agent_id).details(
            json!({
                "transport": "longpoll", "rejected": rejected, "reason": errors.first(),
            }),
        ))
        .await?;
    }
    // Counted accepted only once durable: the agent deletes its copy when
    // everything it sent was accepted.
    for rx in waiting {
        match tokio::time::timeout(COMMIT_WAIT, rx).await {
            Ok(Ok(true)) => accepted += 1,
            _ => rejected += 1,
        }
    }
    let body = json!({ "accepted": accepted, "rejected": rejected, "errors": errors, "error_code": null });
    Ok(with_identity(reply::ok(&body), &agent))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Poll {
    wait: Option<u64>,
    max_frames: Option<usize>,
}

/// Engines whose adapters retry by reference, from `X-Z4J-Retry-Contracts`
/// (`dramatiq=1,rq=1`): the long-poll counterpart of the hello capability.
fn retry_engines(req: &Req) -> Vec<String> {
    let raw = req.headers.get("x-z4j-retry-contracts").and_then(|v| v.to_str().ok()).unwrap_or("");
    raw.split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(_, v)| *v == "1")
        .map(|(k, _)| k.to_string())
        .collect()
}

pub async fn commands(req: Req) -> Result<Response, ApiError> {
    let st = &req.state;
    st.rate_limit(Bucket::AgentConnect, req.client_ip).await?;
    let agent = req.agent()?.clone();
    let q: Poll = req.query()?;
    let (wait, max) = (q.wait.unwrap_or(0).min(60), q.max_frames.unwrap_or(50).min(500));
    let who = who(&req, &agent)?;
    if max == 0 {
        // The connect probe: create the session, claim nothing.
        st.longpoll.call(|reply| LongPollMsg::Open { who, reply }, CALL).await?.map_err(lp_error)?;
        st.audit(
            req.audit("agent.connected").target("agent", agent.agent_id).details(json!({ "transport": "longpoll" })),
        )
        .await?;
        return Ok(with_identity(reply::ok(&json!({ "frames": [] })), &agent));
    }
    let retry_ok = retry_engines(&req);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let claimed = loop {
        let conn = st.db.conn().await?;
        let now = st.clock.now();
        let mut claimed = Vec::new();
        for c in store::pending(&conn, agent.project_id, now, max as i64).await? {
            let needs_retry = Action::from_wire(&c.action).is_some_and(|a| a.needs_retry_contract());
            let for_me = c.agent_id.is_none_or(|a| a == agent.agent_id);
            if for_me && (!needs_retry || retry_ok.contains(&c.engine)) {
                if let Some(row) = store::claim(&conn, c.id, agent.agent_id, &who.nonce, now).await? {
                    claimed.push(row.spec());
                }
            }
        }
        drop(conn);
        if !claimed.is_empty() || tokio::time::Instant::now() >= deadline {
            break claimed;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let frames = if claimed.is_empty() {
        Vec::new()
    } else {
        st.longpoll.call(|reply| LongPollMsg::Sign { who, commands: claimed, reply }, CALL).await?.map_err(lp_error)?
    };
    Ok(with_identity(reply::json(StatusCode::OK, &json!({ "frames": frames })), &agent))
}

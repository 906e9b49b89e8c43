//! `GET /ws/agent`: the z4j protocol v2 WebSocket (protocol §1).
//!
//! Before upgrading: the per-IP connect limit and the bearer token. The
//! upgrade always succeeds (the agent classifies close codes, not HTTP
//! statuses) and a refused connection is closed at once with its code:
//! 4429 rate limited, 4401 bad token or archived project. Then the `hello`
//! must arrive within a deadline (4400 otherwise, 4426 for another protocol
//! version), we answer `hello_ack`, open an `AgentSession` under the
//! registry, and this task becomes the connection's reader.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use uuid::Uuid;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};

use super::router::Response;
use crate::actors::agent_session::{close, SessionArgs, SessionMsg};
use crate::actors::limiter::Bucket;
use crate::actors::session_registry::RegistryMsg;
use crate::audit::{ActorKind, AuditEvent, Outcome};
use crate::fleet::AgentIdentity;
use crate::security::frame::{self, Binding, FrameError, FrameKey, VersionError};
use crate::state::AppState;
use crate::store::agents;

pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// The socket's read buffer. Agent frames are small (heartbeats, batches of
/// a few KiB); a larger frame grows the buffer as needed. tungstenite's
/// default, 128 KiB zero-filled per socket, would be most of a session's
/// memory.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Outbound frames gather up to this many bytes before a socket write, so
/// the acks of one commit leave in one write; every send ends with a flush,
/// so nothing waits in the buffer. The buffer keeps its capacity, which is
/// why it is small.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
const HEARTBEAT_SECS: u32 = 10;
/// Frames read but not yet handled by the session, per connection.
const READ_AHEAD: usize = 8;

/// The agent's socket after the upgrade.
pub type AgentSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A close message with a protocol code.
pub fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }))
}

/// The `Sec-WebSocket-Key` of a well-formed RFC 6455 upgrade request, or
/// `None` when this is not one.
pub fn handshake_key(headers: &HeaderMap) -> Option<String> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?.trim();
    // A valid key is 16 random bytes in base64: 24 characters.
    (key.len() == 24).then(|| key.to_string())
}

/// `Authorization: Bearer <token>`: scheme case-insensitive, one space.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(warp::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Find the live agent for a bearer token. Tokens minted under an earlier
/// master secret still match (`PALISADE_PREVIOUS_SECRETS`).
pub async fn authenticate_agent(
    state: &AppState,
    token: &str,
) -> Result<Option<(agents::AgentRow, bool)>, crate::store::StoreError> {
    if token.len() > 512 {
        return Ok(None);
    }
    let conn = state.db.conn().await?;
    for master in std::iter::once(&state.config.secret).chain(state.config.previous_secrets.iter()) {
        let hash = frame::agent_token_hash(master.expose(), token);
        if let Some(found) = agents::find_by_token_hash(&conn, &hash).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// What the upgrade decided before the socket existed.
enum Admission {
    Refused(u16, &'static str),
    Agent(AgentIdentity),
}

async fn admit(state: &AppState, headers: &HeaderMap, ip: IpAddr) -> Admission {
    if state.rate_limit(Bucket::AgentConnect, ip).await.is_err() {
        return Admission::Refused(close::TOO_MANY, "too many connections from this address");
    }
    let refuse = |reason: &'static str| {
        let ev = AuditEvent::new("agent.auth_failed")
            .actor(ActorKind::Anonymous, None)
            .outcome(Outcome::Denied)
            .ip(Some(ip))
            .details(json!({ "reason": reason }));
        let st = state.clone();
        tokio::spawn(async move {
            let _ = st.audit(ev).await;
        });
        Admission::Refused(close::UNAUTHORIZED, "authentication failed")
    };
    let Some(token) = bearer(headers) else { return refuse("missing_bearer") };
    match authenticate_agent(state, token).await {
        Ok(Some((agent, false))) => {
            Admission::Agent(AgentIdentity { agent_id: agent.id, project_id: agent.project_id, name: agent.name })
        }
        Ok(Some((_, true))) => refuse("project_archived"),
        Ok(None) => refuse("invalid_token"),
        Err(e) => {
            tracing::warn!(error = %e, "agent authentication unavailable");
            Admission::Refused(close::GOING_AWAY, "try again later")
        }
    }
}

pub async fn upgrade(state: AppState, on_upgrade: OnUpgrade, key: &str, headers: HeaderMap, ip: IpAddr) -> Response {
    let admission = admit(&state, &headers, ip).await;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER_BYTES)
                    .write_buffer_size(WRITE_BUFFER_BYTES)
                    .max_write_buffer_size(4 * MAX_FRAME_BYTES)
                    .max_message_size(Some(MAX_FRAME_BYTES))
                    .max_frame_size(Some(MAX_FRAME_BYTES));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                connection(state, socket, admission, ip).await;
            }
            Err(e) => tracing::debug!(error = %e, "agent upgrade did not complete"),
        }
    });
    let mut resp = Response::new(Default::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

async fn connection(state: AppState, socket: AgentSocket, admission: Admission, ip: IpAddr) {
    let (mut sink, mut stream) = socket.split();
    let identity = match admission {
        Admission::Refused(code, reason) => {
            let _ = sink.send(close_message(code, reason)).await;
            return;
        }
        Admission::Agent(identity) => identity,
    };
    let first = match tokio::time::timeout(state.config.agent_hello_timeout, stream.next()).await {
        Ok(Some(Ok(m @ (Message::Binary(_) | Message::Text(_))))) => m.into_data(),
        _ => {
            let _ = sink.send(close_message(close::BAD_FRAME, "expected hello")).await;
            return;
        }
    };
    let hello = match frame::parse_hello(&first) {
        Ok(h) => Arc::new(h),
        Err(FrameError::Version(VersionError::Handshake(_))) => {
            let _ = sink.send(close_message(close::UNSUPPORTED_VERSION, "protocol version 2 required")).await;
            return;
        }
        Err(_) => {
            let _ = sink.send(close_message(close::BAD_FRAME, "invalid hello")).await;
            return;
        }
    };
    let session_id = Uuid::new_v4();
    let binding = Binding {
        agent_id: identity.agent_id.to_string(),
        project_id: identity.project_id.to_string(),
        session_id: session_id.to_string(),
    };
    let ack = frame::hello_ack_bytes(&binding, HEARTBEAT_SECS, MAX_FRAME_BYTES as u32, state.clock.now());
    if sink.send(Message::Binary(ack.into())).await.is_err() {
        return;
    }
    let Ok(key) = FrameKey::new(&frame::derive_project_key(state.config.secret.expose(), identity.project_id)) else {
        return;
    };
    record_hello(&state, &identity, &hello);
    let args = Box::new(SessionArgs {
        state: state.clone(),
        identity: identity.clone(),
        session_id,
        key,
        hello: hello.clone(),
        sink,
        client_ip: ip,
    });
    let worker_id = hello.worker_id.clone();
    let opened =
        state.registry.call(|reply| RegistryMsg::Open { args, worker_id, reply }, Duration::from_secs(5)).await;
    let session = match opened {
        Ok(Ok(s)) => s,
        _ => return,
    };
    // The agent may have been revoked between authentication and now.
    recheck(&state, &identity, &session).await;
    read_loop(&state, stream, session).await;
}

fn record_hello(state: &AppState, identity: &AgentIdentity, hello: &frame::Hello) {
    let (db, id, now) = (state.db.clone(), identity.agent_id, state.clock.now());
    let caps = serde_json::to_value(&hello.capabilities).unwrap_or_default();
    let (version, framework, engines, host) = (
        hello.agent_version.clone(),
        hello.framework.clone(),
        hello.engines.clone(),
        hello.host_name().map(str::to_string),
    );
    tokio::spawn(async move {
        if let Ok(c) = db.conn().await {
            let h = agents::Hello {
                agent_version: &version,
                framework: &framework,
                engines: &engines,
                capabilities: &caps,
                host_name: host.as_deref(),
            };
            if let Err(e) = agents::record_hello(&c, id, &h, now).await {
                tracing::warn!(error = %e, "could not record an agent's hello");
            }
        }
    });
}

async fn recheck(state: &AppState, identity: &AgentIdentity, session: &ractor::ActorRef<SessionMsg>) {
    let live = match state.db.conn().await {
        Ok(c) => {
            matches!(agents::by_id(&c, identity.project_id, identity.agent_id).await, Ok(Some(a)) if a.revoked_at.is_none())
        }
        Err(_) => true,
    };
    if !live {
        let _ = session.cast(SessionMsg::Close(close::REVOKED, "agent revoked"));
    }
}

async fn read_loop(
    state: &AppState,
    mut stream: futures_util::stream::SplitStream<AgentSocket>,
    session: ractor::ActorRef<SessionMsg>,
) {
    let permits = Arc::new(Semaphore::new(READ_AHEAD));
    let idle = state.config.agent_idle_timeout;
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                let _ = session.cast(SessionMsg::Close(close::IDLE, "idle timeout"));
                return;
            }
            Ok(n) => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                // Oversized messages end up here (tungstenite enforces the limits).
                tracing::debug!(error = %e, "agent socket error");
                let _ = session.cast(SessionMsg::Close(close::BAD_FRAME, "frame too large or malformed"));
                return;
            }
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(m @ (Message::Binary(_) | Message::Text(_)))) => {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                if session.cast(SessionMsg::Frame(m.into_data().to_vec(), permit)).is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
        }
    }
    let _ = session.cast(SessionMsg::SocketClosed);
}

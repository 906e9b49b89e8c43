//! HTTP: one warp filter that extracts the request and one `dispatch` that
//! runs every request through the same pipeline — host check, route match,
//! body cap, authentication (session or API key), CSRF (sessions only),
//! access rule (project routes: `security::rbac`), handler — and maps every
//! failure to the JSON error envelope. Routes translate HTTP into calls on
//! actors and the store; they hold no security state of their own.

pub mod access;
pub mod agent_longpoll;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod health;
pub mod invitations;
pub mod memberships;
pub mod notification_rules;
pub mod notifications;
pub mod pages;
pub mod password_reset;
pub mod projects;
pub mod reply;
pub mod request;
pub mod router;
pub mod setup;
pub mod table;
pub mod tasks;
pub mod users;
pub mod ws_agent;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::filters::path::FullPath;
use warp::http::header::{CONTENT_LENGTH, HOST};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::Filter;

use crate::error::ApiError;
use crate::http_server::{PeerAddr, UpgradeSlot};
use crate::security::csrf;
use crate::security::keys::Purpose;
use crate::state::AppState;
use request::{Principal, Req};
use router::{Access, Found, Response};

/// The whole HTTP surface as one warp filter: the agent WebSocket, and
/// everything else through `dispatch`.
pub fn filter(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let ws_state = state.clone();
    let agent_ws = warp::path!("ws" / "agent")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::ext::optional::<UpgradeSlot>())
        .then(move |headers: HeaderMap, peer: Option<PeerAddr>, slot: Option<UpgradeSlot>| {
            let st = ws_state.clone();
            async move {
                let request_id = request_id(&headers);
                let ip = client_ip(&st, &headers, peer);
                let upgrade = ws_agent::handshake_key(&headers).zip(slot.and_then(|s| s.take()));
                let mut resp = match upgrade {
                    _ if !host_allowed(&st, &headers) => reply::error(&ApiError::invalid_host(), &request_id),
                    Some((key, on_upgrade)) => ws_agent::upgrade(st.clone(), on_upgrade, &key, headers, ip).await,
                    None => reply::error(
                        &ApiError::new(
                            StatusCode::UPGRADE_REQUIRED,
                            "upgrade_required",
                            "this endpoint takes a WebSocket upgrade (RFC 6455, version 13)",
                        ),
                        &request_id,
                    ),
                };
                st.security_headers.apply(&mut resp, "/ws/agent", &request_id);
                resp
            }
        });
    agent_ws.or(api_filter(state)).unify()
}

/// The client address: the TCP peer, or the forwarded address when the
/// peer is a trusted proxy.
fn client_ip(st: &AppState, headers: &HeaderMap, peer: Option<PeerAddr>) -> IpAddr {
    let peer = peer.map(|p| p.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    st.config.trusted_proxies.resolve(peer, xff)
}

fn api_filter(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || state.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::body::stream())
        .then(dispatch)
        .recover(|_rej: warp::Rejection| async move {
            // Only reachable if warp itself cannot build the inputs above.
            Ok::<_, Infallible>(reply::error(&ApiError::bad_request("bad_request", "malformed request"), "req_unknown"))
        })
        .unify()
}

fn request_id(headers: &HeaderMap) -> String {
    let inbound = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    match inbound {
        Some(id) if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
            id.to_string()
        }
        _ => format!("req_{}", hex::encode(rand::random::<[u8; 8]>())),
    }
}

async fn dispatch<S, B>(
    state: AppState,
    method: Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    peer: Option<PeerAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let request_id = request_id(&headers);
    let client_ip = client_ip(&state, &headers, peer);
    let path = path.as_str();
    let result = pipeline(&state, method, path, query, headers, client_ip, body, &request_id).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(path, status = e.status.as_u16(), code = e.code, request_id, "request failed");
            }
            reply::error(&e, &request_id)
        }
    };
    state.security_headers.apply(&mut resp, path, &request_id);
    resp
}

#[allow(clippy::too_many_arguments)]
async fn pipeline<S, B>(
    state: &AppState,
    method: Method,
    path: &str,
    query: String,
    headers: HeaderMap,
    client_ip: IpAddr,
    body: S,
    request_id: &str,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    if !path.starts_with("/api/v1/health") && !host_allowed(state, &headers) {
        return Err(ApiError::invalid_host());
    }
    let (route, params) = match state.router.find(&method, path) {
        Found::Route(r, p) => (r, p),
        Found::MethodNotAllowed(allow) => return Err(ApiError::method_not_allowed(allow)),
        Found::NotFound => return Err(ApiError::not_found()),
    };
    let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        cross_site_guard(state, &headers)?;
    }
    // Agents post batches of up to 500 frames; everyone else gets the
    // small default limit.
    let limit = if route.access == Access::Agent { state.config.agent_body_bytes } else { state.config.max_body_bytes };
    let body = read_body(body, &headers, limit).await?;

    let principal = access::principal(state, route, &headers, client_ip).await?;
    if let Principal::Session(s) = &principal {
        if unsafe_method && !route.csrf_exempt {
            let header = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
            let cookie = crate::authn::cookie(&headers, state.cookies.csrf);
            csrf::check(state.keys.key(Purpose::CsrfToken), header, cookie, &s.session.csrf_hash)
                .map_err(|_| ApiError::csrf_failed())?;
        }
    }
    let project = access::authorize(state, route.access, &params, &principal).await?;
    let req = Req {
        state: state.clone(),
        method,
        params,
        query,
        headers,
        client_ip,
        body,
        request_id: request_id.to_string(),
        principal,
        project,
    };
    (route.handler)(req).await
}

fn host_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST) else {
        // HTTP/1.0 clients may omit Host; nothing to spoof then.
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    state.allowed_hosts.contains(&host)
}

/// Second CSRF layer for unsafe methods: browsers label cross-site requests
/// with `Sec-Fetch-Site`, and send `Origin`; a request a browser says came
/// from another site is refused whatever credentials it carries. Non-browser
/// clients (agents, CLI) send neither and are unaffected.
fn cross_site_guard(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return Err(ApiError::csrf_failed());
    }
    if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
        let origin = origin.to_ascii_lowercase();
        if !state.allowed_origins.contains(&origin) {
            return Err(ApiError::csrf_failed());
        }
    }
    Ok(())
}

/// Read at most `limit` bytes. A declared Content-Length over the limit is
/// refused before reading; a chunked body is cut off as soon as it crosses
/// the limit. Either way the answer is 413, never a partial parse.
async fn read_body<S, B>(body: S, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    if let Some(len) = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > limit as u64 {
            return Err(ApiError::payload_too_large(limit));
        }
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::bad_request("bad_body", "the request body could not be read"))?;
        if buf.len() + chunk.remaining() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.put_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

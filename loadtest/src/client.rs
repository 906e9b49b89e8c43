//! HTTP sessions against a brain: login, cookie and CSRF handling, timed
//! calls.
//!
//! Cookies are handled by hand instead of with a cookie jar: every simulated
//! user owns exactly one session, and the CSRF cookie's value has to be
//! echoed in `X-CSRF-Token` anyway.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use crate::flavor::Call;
use crate::metrics::{Counter, Metrics};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds a client, optionally bound to a loopback source address so the
/// brain sees a distinct client IP (see `safety::source_addrs`).
pub fn client(source: Option<IpAddr>, pool: usize) -> anyhow::Result<Client> {
    Client::builder()
        .no_proxy()
        .local_address(source)
        .pool_max_idle_per_host(pool)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")
}

/// The session and CSRF cookies of one login.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cookies {
    /// `name=value; name=value` for the `Cookie` header.
    pub header: String,
    /// Value of the cookie whose name ends in `csrf`.
    pub csrf: Option<String>,
}

impl Cookies {
    pub fn from_headers(headers: &HeaderMap) -> Cookies {
        let mut pairs = Vec::new();
        let mut csrf = None;
        for v in headers.get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            let Some((name, value)) = text.split(';').next().and_then(|kv| kv.split_once('=')) else { continue };
            let (name, value) = (name.trim(), value.trim());
            // Deletion cookies (empty value) must not be sent back.
            if value.is_empty() || value == "\"\"" {
                continue;
            }
            if name.ends_with("csrf") {
                csrf = Some(value.to_owned());
            }
            pairs.push(format!("{name}={value}"));
        }
        Cookies { header: pairs.join("; "), csrf }
    }
}

/// A logged-in user.
#[derive(Clone)]
pub struct Session {
    pub client: Client,
    pub base: Url,
    pub cookies: Cookies,
}

/// What a login attempt returned.
pub struct LoginOutcome {
    pub status: StatusCode,
    pub elapsed: Duration,
    pub session: Option<Session>,
}

fn join(base: &Url, path: &str) -> anyhow::Result<Url> {
    base.join(path).with_context(|| format!("bad path {path}"))
}

/// One login attempt. `forwarded_for` adds `X-Forwarded-For`, which a brain
/// only believes when the connecting address is a trusted proxy.
pub async fn login(
    client: &Client,
    base: &Url,
    email: &str,
    password: &str,
    forwarded_for: Option<IpAddr>,
) -> anyhow::Result<LoginOutcome> {
    let mut req = client.post(join(base, "/api/v1/auth/login")?).json(&json!({ "email": email, "password": password }));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip.to_string());
    }
    let t0 = Instant::now();
    let resp = req.send().await.context("login request")?;
    let elapsed = t0.elapsed();
    let status = resp.status();
    let session = status.is_success().then(|| Session {
        client: client.clone(),
        base: base.clone(),
        cookies: Cookies::from_headers(resp.headers()),
    });
    // Drain the body so the connection goes back to the pool.
    let _ = resp.bytes().await;
    Ok(LoginOutcome { status, elapsed, session })
}

/// Logs in or fails with the status and body excerpt.
pub async fn must_login(client: &Client, base: &Url, email: &str, password: &str) -> anyhow::Result<Session> {
    let out = login(client, base, email, password, None).await?;
    out.session.ok_or_else(|| anyhow!("login as {email} answered {}", out.status))
}

/// A call's status, body and time.
pub struct Reply {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("response is not JSON")
    }
}

impl Session {
    fn request(&self, method: Method, path: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        let mut req = self.client.request(method.clone(), join(&self.base, path)?);
        if !self.cookies.header.is_empty() {
            req = req.header(COOKIE, HeaderValue::from_str(&self.cookies.header).context("cookie header")?);
        }
        if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            if let Some(csrf) = &self.cookies.csrf {
                req = req.header("x-csrf-token", csrf.as_str());
            }
        }
        Ok(req)
    }

    /// Sends `call` and reads the whole body.
    pub async fn send(&self, call: &Call) -> anyhow::Result<Reply> {
        let mut req = self.request(call.method.clone(), &call.path)?;
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        Ok(Reply { status, body })
    }

    /// [`Session::send`] with the latency recorded as `http:<route>` and the
    /// outcome counted; transport errors and non-2xx statuses are errors by kind.
    pub async fn timed(&self, call: &Call, metrics: &Metrics) -> Option<Reply> {
        self.timed_from(call, metrics, None).await
    }

    /// Like [`Session::timed`]; with `intended`, latency runs from the
    /// scheduled start (open model).
    pub async fn timed_from(&self, call: &Call, metrics: &Metrics, intended: Option<Instant>) -> Option<Reply> {
        let t0 = Instant::now();
        match self.send(call).await {
            Ok(reply) => {
                let name = format!("http:{}", call.route);
                metrics.record_since(&name, intended.unwrap_or(t0), Instant::now());
                if reply.status.is_success() {
                    metrics.incr(Counter::HttpOk);
                } else {
                    metrics.incr(Counter::HttpFailed);
                    metrics.error(&format!("http_{}", reply.status.as_u16()));
                }
                Some(reply)
            }
            Err(e) => {
                metrics.incr(Counter::HttpFailed);
                metrics.error(&transport_error_kind(&e));
                None
            }
        }
    }
}

/// A short, bounded error kind for transport failures.
pub fn transport_error_kind(e: &anyhow::Error) -> String {
    match e.downcast_ref::<reqwest::Error>() {
        Some(r) if r.is_timeout() => "http_timeout".into(),
        Some(r) if r.is_connect() => "http_connect".into(),
        Some(_) => "http_transport".into(),
        None => "http_other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_from_set_cookie_headers() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("z4j_session=abc.def; HttpOnly; Path=/; SameSite=lax"));
        h.append(SET_COOKIE, HeaderValue::from_static("z4j_csrf=tok123; Path=/; SameSite=strict"));
        h.append(SET_COOKIE, HeaderValue::from_static("stale=; Max-Age=0"));
        let c = Cookies::from_headers(&h);
        assert_eq!(c.header, "z4j_session=abc.def; z4j_csrf=tok123");
        assert_eq!(c.csrf.as_deref(), Some("tok123"));
    }

    #[test]
    fn host_prefixed_palisade_cookies() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("__Host-palisade_session=s; Secure; HttpOnly; Path=/"));
        h.append(SET_COOKIE, HeaderValue::from_static("__Host-palisade_csrf=c; Secure; Path=/"));
        let c = Cookies::from_headers(&h);
        assert_eq!(c.csrf.as_deref(), Some("c"));
        assert!(c.header.contains("__Host-palisade_session=s"));
    }
}

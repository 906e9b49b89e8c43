//! The few HTML pages the server itself serves (first-boot setup and
//! sign-in) and `/.well-known/security.txt`. Pages load their script and
//! style from `/assets/`, so the CSP needs no 'unsafe-inline'.

use warp::http::StatusCode;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::error::ApiError;

const INDEX: &str = include_str!("../../assets/index.html");
const SETUP: &str = include_str!("../../assets/setup.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

fn html(body: &'static str) -> Response {
    reply::bytes_with(StatusCode::OK, "text/html; charset=utf-8", body.as_bytes().to_vec())
}

pub async fn index(_req: Req) -> Result<Response, ApiError> {
    Ok(html(INDEX))
}

pub async fn setup(_req: Req) -> Result<Response, ApiError> {
    Ok(html(SETUP))
}

pub async fn app_js(_req: Req) -> Result<Response, ApiError> {
    Ok(reply::bytes_with(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS.as_bytes().to_vec()))
}

pub async fn app_css(_req: Req) -> Result<Response, ApiError> {
    Ok(reply::bytes_with(StatusCode::OK, "text/css; charset=utf-8", APP_CSS.as_bytes().to_vec()))
}

/// RFC 9116. `Expires` is one year after this process started, so a
/// long-running server never serves an expired file.
pub async fn security_txt(req: Req) -> Result<Response, ApiError> {
    let expires = (req.state.started_at + chrono::Duration::days(365)).format("%Y-%m-%dT%H:%M:%S.000Z");
    let base = req.state.config.public_url.as_str().trim_end_matches('/');
    let body = format!(
        "Contact: {contact}\nExpires: {expires}\nPreferred-Languages: en\nCanonical: {base}/.well-known/security.txt\nPolicy: {base}/SECURITY.md\n",
        contact = req.state.config.security_contact,
    );
    Ok(reply::bytes_with(StatusCode::OK, "text/plain; charset=utf-8", body.into_bytes()))
}

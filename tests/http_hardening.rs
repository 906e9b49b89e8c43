//! Headers on every kind of response, Host validation, body limits and the
//! error envelope for hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const EXPECTED: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("content-security-policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

fn assert_security_headers(r: &Resp, what: &str) {
    for (name, value) in EXPECTED {
        assert_eq!(r.header(name), Some(*value), "{name} on {what}");
    }
    let pp = r.header("permissions-policy").unwrap_or("");
    for feature in ["camera=()", "microphone=()", "geolocation=()", "payment=()"] {
        assert!(pp.contains(feature), "{feature} on {what}");
    }
    let csp = r.header("content-security-policy").unwrap();
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert!(r.header("x-request-id").is_some(), "request id on {what}");
}

#[tokio::test]
async fn every_response_kind_carries_the_security_headers() {
    let srv = TestServer::start().await;
    let mut b = srv.browser();
    let html = b.get("/setup").await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    assert_security_headers(&html, "HTML");
    let js = b.get("/assets/app.js").await;
    assert_security_headers(&js, "static asset");
    let json_ok = b.get("/api/v1/health").await;
    assert_security_headers(&json_ok, "JSON");
    assert_eq!(json_ok.header("cache-control"), Some("no-store"));
    let err = b.get("/api/v1/auth/me").await;
    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    assert_security_headers(&err, "401 error");
    assert_eq!(err.header("cache-control"), Some("no-store"));
    let nf = b.get("/api/v1/nope").await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.code(), "not_found");
    assert_security_headers(&nf, "404");
    let limited = b.request(reqwest::Method::POST, "/api/v1/auth/login", None).await;
    assert_security_headers(&limited, "400");
    let txt = b.get("/.well-known/security.txt").await;
    assert_security_headers(&txt, "security.txt");
    srv.shutdown().await;
}

#[tokio::test]
async fn security_txt_follows_rfc_9116() {
    let srv = TestServer::start_with(&[("PALISADE_SECURITY_CONTACT", "mailto:sec@example.org")]).await;
    let r = srv.browser().get("/.well-known/security.txt").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.text.contains("Contact: mailto:sec@example.org\n"));
    let expires = r.text.lines().find_map(|l| l.strip_prefix("Expires: ")).unwrap();
    let when = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    let days = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((300..=366).contains(&days), "{days}");
    srv.shutdown().await;
}

#[tokio::test]
async fn host_header_must_name_this_server() {
    let srv = TestServer::start().await;
    let client = reqwest::Client::new();
    let r = client.get(srv.url("/api/v1/setup/status")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("content-security-policy").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_host");
    // Health probes are exempt (load balancers probe by IP).
    let r = client.get(srv.url("/api/v1/health/ready")).header("host", "10.0.0.5:7700").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_with_or_without_content_length() {
    let srv = TestServer::start().await;
    let client = reqwest::Client::new();
    let big = format!("{{\"email\":\"a@b.c\",\"password\":\"{}\"}}", "x".repeat(70_000));
    let r = client
        .post(srv.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Chunked: no Content-Length at all, written by hand on the socket.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(srv.running().addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        srv.running().addr
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.as_bytes().chunks(4096) {
        // The server may answer and close before we finish; that is fine.
        if sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err() {
            break;
        }
        if sock.write_all(chunk).await.is_err() {
            break;
        }
        if sock.write_all(b"\r\n").await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"));
    // A limit is configurable.
    srv.shutdown().await;
    let srv = TestServer::start_with(&[("PALISADE_MAX_BODY_BYTES", "2048")]).await;
    let r = client
        .post(srv.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("x".repeat(3000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    srv.shutdown().await;
}

#[tokio::test]
async fn malformed_input_gets_typed_errors_never_500_and_never_echoes() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, ct: &'static str| {
        let client = client.clone();
        let url = srv.url("/api/v1/auth/login");
        async move {
            let r = client.post(url).header("content-type", ct).body(body).send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    let secret = "Hunter2-Very-Secret!";
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"{not json".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (b"".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            format!("{{\"email\": 42, \"password\": \"{secret}\"}}").into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            format!("{{\"email\": \"a@b.c\", \"password\": [\"{secret}\"]}}").into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (b"{\"email\": \"a@b.c\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'], StatusCode::BAD_REQUEST, "malformed_json"),
        (b"[1,2,3]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            "{\"email\":\"a@b.c\",\"password\":\"x\"}".as_bytes()[..20].to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let (got, text) = post(body, "application/json").await;
        assert_eq!(got, status, "{shown}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], code, "{shown}");
        assert!(v["error"]["message"].as_str().is_some());
        assert!(!text.contains(secret), "echoed a submitted value: {text}");
    }
    let (got, _) = post(b"email=a".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(got, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Wrong method: 405 with Allow, in the envelope.
    let r = client.delete(srv.url("/api/v1/auth/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers().get("allow").unwrap(), "POST");
    // Non-UUID ids are 404s, not 500s.
    let mut admin = srv.browser();
    admin.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    let r = admin.get("/api/v1/users/not-a-uuid").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = admin.get("/api/v1/users?limit=abc").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    srv.shutdown().await;
}

#[tokio::test]
async fn health_endpoints() {
    let srv = TestServer::start().await;
    let mut b = srv.browser();
    let r = b.get("/api/v1/health").await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let r = b.get("/api/v1/health/ready").await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("ready")));
    srv.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let mut sock = tokio::net::TcpStream::connect(srv.running().addr).await.unwrap();
    // Half a request line, then silence: the slow-headers attack.
    sock.write_all(b"GET /api/v1/health/live HTTP/1.1\r\nHost: ").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(40), sock.read(&mut buf))
        .await
        .expect("the server kept a stalled connection open for 40 s")
        .unwrap_or(0);
    // Either a bare close or a 408; never a served request.
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(10), "closed too early: {:?}", started.elapsed());
}

#[tokio::test]
async fn agent_socket_requests_that_are_not_upgrades_get_json_errors() {
    let srv = TestServer::start().await;
    let http = reqwest::Client::new();
    // Plain GET: no upgrade headers at all.
    let r = http.get(srv.url("/ws/agent")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upgrade_required", "{v}");
    // An upgrade with a wrong WebSocket version is not a handshake either.
    let r = http
        .get(srv.url("/ws/agent"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
    for (name, value) in EXPECTED {
        assert_eq!(r.headers().get(*name).and_then(|v| v.to_str().ok()), Some(*value), "{name}");
    }
}

#[tokio::test]
async fn the_agent_upgrade_answers_101_with_the_rfc_6455_accept_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let mut sock = tokio::net::TcpStream::connect(srv.running().addr).await.unwrap();
    let host = srv.running().addr.to_string();
    let req = format!(
        "GET /ws/agent HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf)).await.unwrap().unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // RFC 6455 §1.3's worked example.
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    assert!(head.contains("content-security-policy:"), "{head}");
}

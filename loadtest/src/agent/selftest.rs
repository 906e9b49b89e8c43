//! `selftest`: the `agents` scenario against a minimal in-process brain
//! that answers `hello` and acks every event frame without verifying or
//! storing anything. It measures the harness's own ceiling on this box
//! (frames signed, sent and acks verified per second), so a brain result
//! close to that ceiling is known to be generator-bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use base64::Engine as _;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use palisade::security::frame::{hello_ack_bytes, Binding, FrameKey, FrameKind};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::frames::{int, obj, s, Signer};
use super::Credential;

const AGENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3";
const PROJECT_ID: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

/// The `id` and `type` of a frame, without parsing the payload.
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

async fn session(stream: tokio::net::TcpStream, key: FrameKey, sessions: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    // The first message is the hello; its content does not matter here.
    let Some(Ok(_hello)) = ws.next().await else { return Ok(()) };
    let n = sessions.fetch_add(1, Ordering::Relaxed);
    let binding = Binding {
        agent_id: AGENT_ID.into(),
        project_id: PROJECT_ID.into(),
        session_id: uuid::Uuid::from_u128(u128::from(n) + 1).to_string(),
    };
    ws.send(Message::Binary(hello_ack_bytes(&binding, 10, 1 << 20, Utc::now()).into())).await?;
    let mut signer = Signer::new(key, binding);
    while let Some(msg) = ws.next().await {
        let bytes = match msg? {
            Message::Binary(b) => b,
            Message::Text(t) => t.into(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Ok(head) = serde_json::from_slice::<Head>(&bytes) else { continue };
        if head.kind != "event_batch" {
            continue;
        }
        let payload = obj(vec![
            ("acked_id", s(head.id.as_str())),
            ("received", int(1)),
            ("accepted", int(1)),
            ("rejected", int(0)),
        ]);
        let id: String = format!("eba_{}", head.id).chars().take(64).collect();
        let frame = signer.sign(FrameKind::EventBatchAck, &id, &payload).context("signing an ack")?;
        ws.send(Message::Binary(frame.into())).await?;
    }
    Ok(())
}

/// Starts the stub brain; returns its base URL and a credential for it.
pub async fn start() -> anyhow::Result<(String, Credential)> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = FrameKey::new(&raw).context("stub key")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sessions = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(session(stream, key.clone(), sessions.clone()));
        }
    });
    let cred = Credential {
        token: "selftest".into(),
        hmac_secret: base64::engine::general_purpose::URL_SAFE.encode(raw),
        agent_id: Some(AGENT_ID.into()),
    };
    Ok((format!("http://{addr}"), cred))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::metrics::Counter;
    use crate::run::RunCtx;
    use clap::Parser;

    /// The whole agent path end to end: dial, hello/hello_ack, signed
    /// heartbeats and events, acks verified by the agent, both phases.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fleet_against_the_stub_gets_every_event_acked() {
        let (url, cred) = start().await.unwrap();
        let dir = std::env::temp_dir().join(format!("lt-selftest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("c.json");
        crate::provision::write_credentials(&creds, &[cred]).unwrap();
        let pid = std::process::id().to_string();
        let argv = [
            "x",
            "agents",
            "--url",
            &url,
            "--agents",
            "3",
            "--idle-secs",
            "0.2",
            "--rate",
            "60",
            "--steady-secs",
            "1",
            "--max-secs",
            "1",
            "--window",
            "4",
            "--drain-secs",
            "3",
            "--invalid-share",
            "0",
            "--no-progress",
            "--brain-pid",
            &pid,
            "--credentials",
            creds.to_str().unwrap(),
        ];
        let Command::Agents(args) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
        let ctx = RunCtx::new(&args.common).unwrap();
        let summary = super::super::fleet::run(&ctx, &args).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let m = &ctx.metrics;
        assert_eq!(summary.connections, 3);
        assert!(m.get(Counter::EventsSent) > 10, "sent {}", m.get(Counter::EventsSent));
        assert_eq!(m.get(Counter::EventsAcked), m.get(Counter::EventsSent));
        assert_eq!(m.get(Counter::InboundRejected), 0);
        assert!(summary.lag_ms.unwrap().count > 0);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
    }
}

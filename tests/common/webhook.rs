//! A webhook receiver's side of notifications: the allow-list that admits
//! a loopback receiver, the channel + rule an admin would create, and the
//! signature check a receiver runs (independently, with the hmac crate).

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::receiver::Received;
use super::Browser;

/// The signing secret of every channel `webhook_rule` creates.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-signing-secret-0123456789";

/// Server environment that admits a plain-HTTP receiver on 127.0.0.1:`port`.
pub fn allow(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("PALISADE_OUTBOUND_ALLOW_HTTP", "1".into()),
        ("PALISADE_OUTBOUND_ALLOW_LOOPBACK", "1".into()),
        ("PALISADE_OUTBOUND_ALLOW_CIDRS", "127.0.0.1/32".into()),
        ("PALISADE_OUTBOUND_ALLOW_PORTS", port.to_string()),
        ("PALISADE_NOTIFY_OFFLINE_GRACE_SECS", "0".into()),
    ]
}

pub fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// What a receiver does with `X-Z4J-Signature`: HMAC-SHA256 over
/// "<timestamp>.<raw body>", constant-time compare, timestamp window.
pub fn receiver_verifies(r: &Received, secret: &str) -> bool {
    let (Some(ts), Some(sig)) = (r.header("x-z4j-timestamp"), r.header("x-z4j-signature")) else { return false };
    let Ok(ts_num) = ts.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return false;
    }
    let Some(hex_sig) = sig.strip_prefix("sha256=") else { return false };
    let Ok(given) = hex::decode(hex_sig) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    mac.verify_slice(&given).is_ok()
}

/// Channel + rule through the API, as an admin would.
pub async fn webhook_rule(admin: &mut Browser, slug: &str, port: u16, trigger: &str, cooldown: i64) -> Value {
    let r = admin
        .post(
            &format!("/api/v1/projects/{slug}/notifications/channels"),
            json!({ "name": "ops-hook", "type": "webhook",
                    "config": { "url": format!("http://127.0.0.1:{port}/hook"), "secret": WEBHOOK_SECRET } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let channel = r.body["channel"].clone();
    let r = admin
        .post(
            &format!("/api/v1/projects/{slug}/notifications/rules"),
            json!({ "name": format!("{trigger} to ops"), "trigger": trigger, "channel_ids": [channel["id"]],
                    "cooldown_secs": cooldown }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    channel
}

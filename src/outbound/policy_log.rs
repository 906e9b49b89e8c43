//! The operator's outbound allow-list is configuration, not an API
//! object, so "changed" means "differs from what the last start-up
//! recorded": at start-up the effective policy is compared with the newest
//! `outbound.policy_loaded` audit row and a new row is appended when they
//! differ (the first time, only if anything is opened beyond the default).

use serde_json::{json, Value};

use crate::audit::AuditEvent;
use crate::security::ssrf::OutboundPolicy;
use crate::state::AppState;
use crate::store::audit::{self as store, Filter};

pub const ACTION: &str = "outbound.policy_loaded";

/// The policy as recorded: every field, lists sorted.
pub fn describe(p: &OutboundPolicy) -> Value {
    let mut cidrs: Vec<String> = p.allowed_cidrs.iter().map(|n| n.to_string()).collect();
    cidrs.sort();
    let (mut ports, mut smtp) = (p.extra_ports.clone(), p.smtp_extra_ports.clone());
    ports.sort_unstable();
    smtp.sort_unstable();
    json!({
        "allow_http": p.allow_http,
        "allow_loopback": p.allow_loopback,
        "allowed_cidrs": cidrs,
        "extra_ports": ports,
        "smtp_extra_ports": smtp,
    })
}

/// Append the row if the policy changed; returns whether it did.
pub async fn record(st: &AppState) -> Result<bool, String> {
    let policy = &st.deliverer.outbound.policy;
    let now = describe(policy);
    tracing::info!(policy = %now, "outbound policy for notification channels");
    let conn = st.db.conn().await.map_err(|e| e.to_string())?;
    let filter = Filter { action: Some(ACTION.into()), ..Filter::default() };
    let last = store::list(&conn, &filter, 1).await.map_err(|e| e.to_string())?;
    drop(conn);
    let previous: Option<Value> =
        last.first().and_then(|r| serde_json::from_str::<Value>(&r.details).ok()).map(|d| d["policy"].clone());
    let changed = match &previous {
        Some(p) => *p != now,
        None => **policy != OutboundPolicy::default(),
    };
    if !changed {
        return Ok(false);
    }
    tracing::warn!(policy = %now, "the outbound policy differs from the last recorded one; recording it in the audit log");
    st.audit(AuditEvent::new(ACTION).details(json!({ "policy": now, "previous": previous })))
        .await
        .map_err(|e| e.message)?;
    Ok(true)
}

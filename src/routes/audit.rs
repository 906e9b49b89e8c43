//! Reading and verifying the audit log.

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::reply;
use super::request::Req;
use super::router::Response;
use crate::audit::canonical::{format_time, AuditRow};
use crate::audit::verify::{self, Report};
use crate::error::{internal, ApiError};
use crate::security::rbac;
use crate::store::audit::{self as store, Filter};

/// Rows per page, and the most one export may carry (page with the cursor
/// for more); exports are built in memory, so this also bounds memory.
const MAX_PAGE: i64 = 500;
pub const MAX_EXPORT_ROWS: i64 = 50_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Query {
    action: Option<String>,
    action_prefix: Option<String>,
    actor_kind: Option<String>,
    actor_id: Option<String>,
    project_id: Option<Uuid>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    cursor: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

/// The JSON shape of one row, including the chain fields so an export can
/// be verified offline.
pub fn row_json(r: &AuditRow) -> Value {
    let details: Value = serde_json::from_str(&r.details).unwrap_or(Value::Null);
    json!({
        "seq": r.seq,
        "occurred_at": format_time(&r.occurred_at),
        "actor": { "kind": r.actor_kind, "id": r.actor_id },
        "action": r.action,
        "project_id": r.project_id,
        "target": { "type": r.target_type, "id": r.target_id },
        "outcome": r.outcome,
        "client_ip": r.client_ip,
        "request_id": r.request_id,
        "details": details,
        "key_id": r.key_id,
        "prev_hmac": hex::encode(r.prev_hmac),
        "row_hmac": hex::encode(r.row_hmac),
    })
}

impl Query {
    fn filter(&self, project: Option<Uuid>) -> Filter {
        Filter {
            action: self.action.clone(),
            action_prefix: self.action_prefix.clone(),
            actor_kind: self.actor_kind.clone(),
            actor_id: self.actor_id.clone(),
            project_id: project.or(self.project_id),
            from: self.from,
            to: self.to,
            before_seq: self.cursor,
        }
    }
}

/// Shared by the global and the per-project listing.
pub async fn list_filtered(req: &Req, project: Option<Uuid>) -> Result<Response, ApiError> {
    let q: Query = req.query()?;
    let filter = q.filter(project);
    let conn = req.state.db.conn().await?;
    match q.format.as_deref() {
        None | Some("json") => {
            let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
            let rows = store::list(&conn, &filter, limit).await?;
            let next = if rows.len() as i64 == limit { rows.last().map(|r| r.seq) } else { None };
            let entries: Vec<Value> = rows.iter().map(row_json).collect();
            Ok(reply::ok(&json!({ "entries": entries, "next_cursor": next })))
        }
        Some("jsonl") => {
            let limit = q.limit.unwrap_or(MAX_EXPORT_ROWS).clamp(1, MAX_EXPORT_ROWS);
            let mut body = Vec::new();
            let mut f = filter.clone();
            let mut count: i64 = 0;
            while count < limit {
                let page = store::list(&conn, &f, (limit - count).min(5_000)).await?;
                let Some(last) = page.last().map(|r| r.seq) else { break };
                for r in &page {
                    serde_json::to_writer(&mut body, &row_json(r)).map_err(internal("export serialisation"))?;
                    body.push(b'\n');
                }
                count += page.len() as i64;
                f.before_seq = Some(last);
            }
            drop(conn);
            // An export is itself an audited act (who took a copy of what).
            let mut ev = req.audit("audit.export").details(json!({
                "rows": count, "format": "jsonl", "action": q.action, "action_prefix": q.action_prefix,
                "actor_kind": q.actor_kind, "actor_id": q.actor_id, "from": q.from, "to": q.to, "cursor": q.cursor,
            }));
            if let Some(p) = project {
                ev = ev.project(p);
            }
            req.state.audit(ev).await?;
            let mut resp = reply::bytes_with(warp::http::StatusCode::OK, "application/x-ndjson", body);
            if let Ok(v) = warp::http::HeaderValue::from_str("attachment; filename=\"palisade-audit.jsonl\"") {
                resp.headers_mut().insert(warp::http::header::CONTENT_DISPOSITION, v);
            }
            Ok(resp)
        }
        Some(_) => Err(ApiError::validation("format must be json or jsonl")),
    }
}

pub async fn list(req: Req) -> Result<Response, ApiError> {
    list_filtered(&req, None).await
}

/// The project's own rows. Reading needs `read_audit`; a `jsonl` export
/// additionally needs `export_audit` — asked of the same policy table.
pub async fn list_project(req: Req) -> Result<Response, ApiError> {
    let access = req.project()?;
    let (project_id, standing, archived) = (access.project.id, access.standing, access.project.archived);
    if req.query.split('&').any(|kv| kv == "format=jsonl") {
        let decision = rbac::decide(Some(standing), req.principal.key_scopes(), rbac::Action::ExportAudit, archived);
        if decision != rbac::Decision::Allow {
            return Err(ApiError::forbidden("exporting the audit log needs the export_audit permission"));
        }
    }
    list_filtered(&req, Some(project_id)).await
}

/// Run the full verification (same as `palisade audit verify`).
pub async fn verify_report(st: &crate::state::AppState) -> Result<Report, ApiError> {
    match verify::verify_with_sink(&st.db, &st.audit_keys, st.checkpoint_sink.clone(), &st.verify_gate).await {
        Ok(report) => Ok(report),
        Err(verify::VerifyError::Busy) => {
            let mut e = ApiError::conflict(
                "verification_running",
                "a verification of the audit log is already running; ask again when it has finished",
            );
            e.retry_after = Some(5);
            Err(e)
        }
        Err(verify::VerifyError::Store(e)) => Err(e.into()),
    }
}

pub async fn verify(req: Req) -> Result<Response, ApiError> {
    let report = verify_report(&req.state).await?;
    if !report.intact {
        tracing::error!(finding = ?report.finding, "audit verification found tampering");
        let (reason, seq) = report.finding.as_ref().map_or(("unknown", 0), |f| (f.reason.as_str(), f.seq));
        crate::notify::triggers::after_commit(&req.state, move |c, now| {
            Box::pin(async move { crate::notify::triggers::audit_verify_failed(c, reason, seq, now).await })
        })
        .await;
    }
    Ok(reply::ok(&report))
}

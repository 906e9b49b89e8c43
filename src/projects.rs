//! Project lifecycle hooks: the single place other subsystems attach to
//! when a project changes state.

use uuid::Uuid;

use crate::state::AppState;

/// Called once a project's archiving has been committed (never before, and
/// never when the project was already archived).
///
/// Archiving cuts the project's live agent connections at once (close
/// 4003; the agent backs off as for a revoked credential): an archived
/// project accepts no events and dispatches no commands, and its agents'
/// tokens are refused at the next connect. The hook cannot fail the request
/// that archived the project (the archive is already durable), so it only
/// logs if the registry is unreachable.
pub async fn on_archived(st: &AppState, project_id: Uuid) {
    let msg = crate::actors::session_registry::RegistryMsg::CloseProject {
        project_id,
        code: crate::actors::agent_session::close::REVOKED,
    };
    if st.registry.cast(msg).is_err() {
        tracing::warn!(%project_id, "project archived, but the session registry is down; its agents are refused at reconnect");
    }
}

//! Project lifecycle hooks: the single place other subsystems attach to
//! when a project changes state.

use uuid::Uuid;

use crate::state::AppState;

/// Called once a project's archiving has been committed (never before, and
/// never when the project was already archived).
///
/// Archiving must cut the project's live agent connections: an archived
/// project accepts no events and dispatches no commands. Agent sessions do
/// not exist yet (the agent gateway lands separately), so today there is
/// nothing to close; the gateway connects here. The hook cannot fail the
/// request that archived the project (the archive is already durable), so
/// anything it does that can fail must log and carry on.
pub async fn on_archived(st: &AppState, project_id: Uuid) {
    let _ = st;
    tracing::info!(%project_id, "project archived; no agent sessions to close (agent gateway not present)");
}

//! Domain logic of the agent fleet, without I/O: turning agent events into
//! rows (`events`, `projection`) and operator commands into agent command
//! payloads (`commands`). The gateway actors and routes call into these.

pub mod commands;
pub mod events;
pub mod projection;

use uuid::Uuid;

/// Who is on the other end of an agent connection, as established by its
/// bearer token. Every row an agent frame touches is scoped by `project_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    pub agent_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
}

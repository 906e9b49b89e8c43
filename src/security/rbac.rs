//! The authorization policy: one table that says, for every action in the
//! product, which project roles may take it, and which API-key scope it
//! needs. The dispatcher, the `/permissions` endpoint (which the dashboard
//! mirrors) and the API-key checks all read this table and nothing else, so
//! the server and the UI cannot drift apart.
//!
//! Pure: no I/O, no clock. Unit tests at the bottom pin the table against an
//! independently written expectation, so an accidental edit is caught.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A project role. `viewer < operator < admin`; `auditor` is a viewer who
/// may also read and export the audit trail (operators may not: separation
/// of duties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Viewer,
    Auditor,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Auditor, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    fn column(self) -> usize {
        match self {
            Role::Viewer => 0,
            Role::Auditor => 1,
            Role::Operator => 2,
            Role::Admin => 3,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role; expected one of viewer, auditor, operator, admin")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(UnknownRole)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How a caller stands in one project: through a membership, or as a global
/// admin (who acts as admin everywhere and alone changes a project's
/// lifecycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Member(Role),
    GlobalAdmin,
}

impl Standing {
    /// The caller's standing given their global-admin flag and membership
    /// role; `None` means "no business in this project".
    pub fn of(is_global_admin: bool, role: Option<Role>) -> Option<Standing> {
        if is_global_admin {
            Some(Standing::GlobalAdmin)
        } else {
            role.map(Standing::Member)
        }
    }
}

/// Resource families that API-key scopes are granted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Projects,
    Members,
    Tasks,
    Commands,
    Agents,
    Audit,
    Channels,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Projects => "projects",
            Family::Members => "members",
            Family::Tasks => "tasks",
            Family::Commands => "commands",
            Family::Agents => "agents",
            Family::Audit => "audit",
            Family::Channels => "channels",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Read,
    Write,
}

/// An API-key scope: `family:read` or `family:write`. Write implies read on
/// the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub family: Family,
    pub level: Level,
}

impl Scope {
    pub const fn read(family: Family) -> Scope {
        Scope { family, level: Level::Read }
    }

    pub const fn write(family: Family) -> Scope {
        Scope { family, level: Level::Write }
    }

    pub fn name(self) -> String {
        let level = match self.level {
            Level::Read => "read",
            Level::Write => "write",
        };
        format!("{}:{level}", self.family.as_str())
    }

    /// Does holding `self` satisfy a requirement of `needed`?
    pub fn covers(self, needed: Scope) -> bool {
        self.family == needed.family && self.level >= needed.level
    }

    /// Every scope some action asks for: the catalogue a key may be granted.
    pub fn catalogue() -> Vec<Scope> {
        let mut all: Vec<Scope> = Action::ALL.iter().filter_map(|a| a.scope()).collect();
        // A write scope also grants read, so offer the read scope of every
        // family that has a write scope, even if no action reads it alone.
        let reads: Vec<Scope> = all.iter().map(|s| Scope::read(s.family)).collect();
        all.extend(reads);
        let mut seen = Vec::new();
        for s in all {
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        seen
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Scope, UnknownScope> {
        Scope::catalogue().into_iter().find(|c| c.name() == s).ok_or(UnknownScope)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown API-key scope")]
pub struct UnknownScope;

/// Does a key holding `granted` satisfy `needed`?
pub fn scopes_cover(granted: &[Scope], needed: Scope) -> bool {
    granted.iter().any(|g| g.covers(needed))
}

macro_rules! actions {
    ($( $variant:ident => $name:literal, [$v:literal, $au:literal, $op:literal, $ad:literal, $ga:literal], $scope:expr, $writes:literal; )+) => {
        /// Every action in the product that is taken inside a project,
        /// including those whose routes arrive with later features.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $($variant),+ }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// The stable snake_case name used by `/permissions`.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name),+ }
            }

            /// [viewer, auditor, operator, admin, global admin]
            fn row(self) -> [bool; 5] {
                match self { $(Action::$variant => [$v == 1, $au == 1, $op == 1, $ad == 1, $ga == 1]),+ }
            }

            /// The API-key scope this action needs; `None` means only a
            /// browser session may take it (see `SESSION_ONLY_RATIONALE`).
            pub fn scope(self) -> Option<Scope> {
                match self { $(Action::$variant => $scope),+ }
            }

            /// Does the action change state? Changes are refused on
            /// archived projects (except restoring or re-archiving).
            pub fn writes(self) -> bool {
                match self { $(Action::$variant => $writes),+ }
            }
        }
    };
}

const P: Family = Family::Projects;
const M: Family = Family::Members;
const T: Family = Family::Tasks;
const C: Family = Family::Commands;
const G: Family = Family::Agents;
const A: Family = Family::Audit;
const H: Family = Family::Channels;

/// Session-only actions grant access to the project (members, invitations,
/// agent credentials, key bindings) or change its lifecycle: a leaked API key
/// must not be able to widen or perpetuate its own access.
pub const SESSION_ONLY_RATIONALE: &str =
    "actions that grant access to a project or change its lifecycle need a browser session";

// The one policy table. Columns: [viewer, auditor, operator, admin, global admin],
// the API-key scope (None = browser session only), and whether it changes state.
actions! {
    ReadProject     => "read_project",      [1, 1, 1, 1, 1], Some(Scope::read(P)),   false;
    UpdateProject   => "update_project",    [0, 0, 0, 0, 1], None,                   true;
    ArchiveProject  => "archive_project",   [0, 0, 0, 0, 1], None,                   true;
    ReadTasks       => "read_tasks",        [1, 1, 1, 1, 1], Some(Scope::read(T)),   false;
    ReadWorkers     => "read_workers",      [1, 1, 1, 1, 1], Some(Scope::read(T)),   false;
    ReadQueues      => "read_queues",       [1, 1, 1, 1, 1], Some(Scope::read(T)),   false;
    ReadEvents      => "read_events",       [1, 1, 1, 1, 1], Some(Scope::read(T)),   false;
    ReadCommands    => "read_commands",     [1, 1, 1, 1, 1], Some(Scope::read(C)),   false;
    RetryTask       => "retry_task",        [0, 0, 1, 1, 1], Some(Scope::write(C)),  true;
    CancelTask      => "cancel_task",       [0, 0, 1, 1, 1], Some(Scope::write(C)),  true;
    BulkRetry       => "bulk_retry",        [0, 0, 1, 1, 1], Some(Scope::write(C)),  true;
    RestartWorker   => "restart_worker",    [0, 0, 1, 1, 1], Some(Scope::write(C)),  true;
    PurgeQueue      => "purge_queue",       [0, 0, 0, 1, 1], Some(Scope::write(C)),  true;
    ReadAgents      => "read_agents",       [1, 1, 1, 1, 1], Some(Scope::read(G)),   false;
    ManageAgents    => "manage_agents",     [0, 0, 0, 1, 1], None,                   true;
    ReadMembers     => "read_members",      [0, 0, 0, 1, 1], Some(Scope::read(M)),   false;
    ManageMembers   => "manage_members",    [0, 0, 0, 1, 1], None,                   true;
    ReadInvitations => "read_invitations",  [0, 0, 0, 1, 1], Some(Scope::read(M)),   false;
    InviteMembers   => "invite_members",    [0, 0, 0, 1, 1], None,                   true;
    ReadAudit       => "read_audit",        [0, 1, 0, 1, 1], Some(Scope::read(A)),   false;
    ExportAudit     => "export_audit",      [0, 1, 0, 1, 1], Some(Scope::read(A)),   false;
    ManageApiKeys   => "manage_api_keys",   [1, 1, 1, 1, 1], None,                   true;
    ReadChannels    => "read_channels",     [1, 1, 1, 1, 1], Some(Scope::read(H)),   false;
    ManageChannels  => "manage_channels",   [0, 0, 0, 1, 1], Some(Scope::write(H)),  true;
    TestChannel     => "test_channel",      [0, 0, 0, 1, 1], Some(Scope::write(H)),  true;
}

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Restoring or (idempotently) archiving is how an archived project's
    /// lifecycle changes, so those two stay possible while it is archived.
    pub fn allowed_on_archived(self) -> bool {
        !self.writes() || matches!(self, Action::UpdateProject | Action::ArchiveProject)
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// May a member with `role` take `action`? Straight from the table.
pub fn allowed(role: Role, action: Action) -> bool {
    action.row()[role.column()]
}

/// May a caller with this standing take `action`?
pub fn permits(standing: Standing, action: Action) -> bool {
    match standing {
        Standing::Member(role) => allowed(role, action),
        Standing::GlobalAdmin => action.row()[4],
    }
}

/// The outcome of one authorization decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403: no standing, role too low, or the key lacks the scope.
    Deny,
    /// 409: the project is archived and the action would change it.
    Archived,
}

/// The whole decision for one request: the caller's standing (`None` for
/// non-members), the scopes of the API key it came through (`None` for a
/// browser session), and the project's state.
pub fn decide(standing: Option<Standing>, key_scopes: Option<&[Scope]>, action: Action, archived: bool) -> Decision {
    let Some(standing) = standing else {
        return Decision::Deny;
    };
    if !permits(standing, action) {
        return Decision::Deny;
    }
    if let Some(granted) = key_scopes {
        match action.scope() {
            Some(needed) if scopes_cover(granted, needed) => {}
            _ => return Decision::Deny,
        }
    }
    if archived && !action.allowed_on_archived() {
        return Decision::Archived;
    }
    Decision::Allow
}

/// Every action the caller may take right now: what `/permissions` serves.
pub fn allowed_actions(standing: Option<Standing>, key_scopes: Option<&[Scope]>, archived: bool) -> Vec<Action> {
    Action::ALL.iter().copied().filter(|a| decide(standing, key_scopes, *a, archived) == Decision::Allow).collect()
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;

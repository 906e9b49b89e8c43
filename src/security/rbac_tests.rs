use super::*;
use Action::*;

/// The policy, written out a second time by hand in the shape product
/// documentation uses, so an edit to the table has to be made twice.
fn expected(role: Role) -> Vec<Action> {
    let viewer = vec![
        ReadProject,
        ReadTasks,
        ReadWorkers,
        ReadQueues,
        ReadEvents,
        ReadCommands,
        ReadAgents,
        ManageApiKeys,
        ReadChannels,
    ];
    let mut v = viewer.clone();
    match role {
        Role::Viewer => {}
        Role::Auditor => v.extend([ReadAudit, ExportAudit]),
        Role::Operator => v.extend([RetryTask, CancelTask, BulkRetry, RestartWorker]),
        Role::Admin => v.extend([
            RetryTask,
            CancelTask,
            BulkRetry,
            RestartWorker,
            PurgeQueue,
            ManageAgents,
            ReadMembers,
            ManageMembers,
            ReadInvitations,
            InviteMembers,
            ReadAudit,
            ExportAudit,
            ManageChannels,
            TestChannel,
        ]),
    }
    v
}

fn set(role: Role) -> Vec<Action> {
    Action::ALL.iter().copied().filter(|a| allowed(role, *a)).collect()
}

fn subset(a: &[Action], b: &[Action]) -> bool {
    a.iter().all(|x| b.contains(x))
}

#[test]
fn table_matches_the_written_policy() {
    for role in Role::ALL {
        let mut got: Vec<&str> = set(role).iter().map(|a| a.name()).collect();
        let mut want: Vec<&str> = expected(role).iter().map(|a| a.name()).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{role}");
    }
}

#[test]
fn roles_are_ordered_and_auditor_is_viewer_plus_audit() {
    let (v, au, op, ad) = (set(Role::Viewer), set(Role::Auditor), set(Role::Operator), set(Role::Admin));
    assert!(subset(&v, &op) && subset(&op, &ad));
    assert!(subset(&v, &au) && subset(&au, &ad));
    let extra: Vec<Action> = au.iter().copied().filter(|a| !v.contains(a)).collect();
    assert_eq!(extra, vec![ReadAudit, ExportAudit]);
    assert!(!allowed(Role::Operator, ReadAudit) && !allowed(Role::Operator, ExportAudit), "separation of duties");
    assert!(!allowed(Role::Auditor, RetryTask));
}

#[test]
fn purge_is_admin_only_and_lifecycle_is_global_admin_only() {
    for role in Role::ALL {
        assert_eq!(allowed(role, PurgeQueue), role == Role::Admin);
        assert!(!allowed(role, UpdateProject) && !allowed(role, ArchiveProject));
    }
    for a in Action::ALL {
        assert!(permits(Standing::GlobalAdmin, *a), "global admin may {}", a.name());
    }
}

#[test]
fn names_are_unique_snake_case_and_round_trip() {
    let mut names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
    for n in &names {
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{n}");
        assert_eq!(Action::from_name(n).map(|a| a.name()), Some(*n));
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Action::ALL.len());
    assert_eq!(Action::from_name("root_everything"), None);
    for r in Role::ALL {
        assert_eq!(r.as_str().parse::<Role>(), Ok(r));
    }
    assert_eq!("owner".parse::<Role>(), Err(UnknownRole));
    assert_eq!("Admin".parse::<Role>(), Err(UnknownRole), "roles are case-sensitive");
}

#[test]
fn scopes_follow_the_action_kind() {
    for a in Action::ALL {
        if let Some(s) = a.scope() {
            assert_eq!(s.level == Level::Write, a.writes(), "{}", a.name());
        }
    }
    let session_only: Vec<Action> = Action::ALL.iter().copied().filter(|a| a.scope().is_none()).collect();
    assert_eq!(
        session_only,
        vec![UpdateProject, ArchiveProject, ManageAgents, ManageMembers, InviteMembers, ManageApiKeys]
    );
}

#[test]
fn scope_catalogue_parses_and_write_implies_read() {
    let names: Vec<String> = Scope::catalogue().iter().map(|s| s.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "agents:read",
            "audit:read",
            "channels:read",
            "channels:write",
            "commands:read",
            "commands:write",
            "members:read",
            "projects:read",
            "tasks:read"
        ]
    );
    for n in &names {
        assert_eq!(n.parse::<Scope>().map(|s| s.name()), Ok(n.clone()));
    }
    assert_eq!("admin:*".parse::<Scope>(), Err(UnknownScope));
    assert_eq!("members:write".parse::<Scope>(), Err(UnknownScope), "no key may manage members");
    let cw = Scope::write(Family::Commands);
    assert!(scopes_cover(&[cw], Scope::read(Family::Commands)));
    assert!(!scopes_cover(&[Scope::read(Family::Commands)], cw));
    assert!(!scopes_cover(&[cw], Scope::read(Family::Tasks)));
}

#[test]
fn decisions_combine_standing_scope_and_archive_state() {
    let op = Some(Standing::Member(Role::Operator));
    assert_eq!(decide(None, None, ReadProject, false), Decision::Deny);
    assert_eq!(decide(op, None, RetryTask, false), Decision::Allow);
    assert_eq!(decide(op, None, PurgeQueue, false), Decision::Deny);
    // A key never exceeds its owner's role, and needs the scope too.
    let cw = [Scope::write(Family::Commands)];
    assert_eq!(decide(op, Some(&cw), RetryTask, false), Decision::Allow);
    assert_eq!(decide(op, Some(&cw), PurgeQueue, false), Decision::Deny);
    assert_eq!(decide(op, Some(&[]), ReadProject, false), Decision::Deny);
    assert_eq!(decide(Some(Standing::GlobalAdmin), Some(&cw), ArchiveProject, false), Decision::Deny);
    // Archived: reads and lifecycle changes only; denial still wins.
    assert_eq!(decide(op, None, ReadTasks, true), Decision::Allow);
    assert_eq!(decide(op, None, RetryTask, true), Decision::Archived);
    assert_eq!(decide(op, None, PurgeQueue, true), Decision::Deny);
    assert_eq!(decide(Some(Standing::GlobalAdmin), None, UpdateProject, true), Decision::Allow);
    assert_eq!(decide(Some(Standing::GlobalAdmin), None, ManageMembers, true), Decision::Archived);
}

#[test]
fn allowed_actions_is_the_table_row() {
    for role in Role::ALL {
        let got = allowed_actions(Some(Standing::Member(role)), None, false);
        assert_eq!(got, set(role));
    }
    assert!(allowed_actions(None, None, false).is_empty());
    let archived = allowed_actions(Some(Standing::Member(Role::Admin)), None, true);
    assert!(archived.iter().all(|a| !a.writes()));
    assert_eq!(Standing::of(true, Some(Role::Viewer)), Some(Standing::GlobalAdmin));
    assert_eq!(Standing::of(false, None), None);
}

/// docs/rbac.md carries a copy of the table for readers; it must not drift.
#[test]
fn the_documented_table_is_the_code_table() {
    let doc = include_str!("../../docs/rbac.md");
    let start = doc.find("<!-- policy-table:start -->").unwrap();
    let end = doc.find("<!-- policy-table:end -->").unwrap();
    let rows: Vec<Vec<&str>> = doc[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), Action::ALL.len());
    for (row, action) in rows.iter().zip(Action::ALL) {
        assert_eq!(row[0], format!("`{}`", action.name()));
        for (i, role) in Role::ALL.iter().enumerate() {
            assert_eq!(row[1 + i] == "✓", allowed(*role, *action), "{} {role}", action.name());
        }
        assert_eq!(row[5] == "✓", permits(Standing::GlobalAdmin, *action));
        let scope = action.scope().map(|s| format!("`{}`", s.name())).unwrap_or_else(|| "session only".into());
        assert_eq!(row[6], scope, "{}", action.name());
        assert_eq!(row[7], if action.writes() { "yes" } else { "no" });
    }
}

//! Every HTTP route of the product, in one list. The permission-matrix
//! test walks this table; a route cannot be added without an access rule,
//! and a `{slug}` route cannot be added without a policy action.

use super::router::Access::{Agent, GlobalAdmin, Listing, Project, Public, User};
use super::router::Route;
use super::{
    agent_longpoll, agents, api_keys, audit, auth, commands, health, invitations, memberships, notification_rules,
    notifications, pages, password_reset, projects, setup, tasks, users,
};
use crate::route;
use crate::security::rbac::Action::*;
use crate::security::rbac::{Family, Scope};

pub fn routes() -> Vec<Route> {
    vec![
        // Pages and well-known files.
        route!(GET "/", Public, pages::index),
        route!(GET "/setup", Public, pages::setup),
        route!(GET "/assets/app.js", Public, pages::app_js),
        route!(GET "/assets/app.css", Public, pages::app_css),
        route!(GET "/.well-known/security.txt", Public, pages::security_txt),
        // Health.
        route!(GET "/api/v1/health", Public, health::live),
        route!(GET "/api/v1/health/ready", Public, health::ready),
        // First boot.
        route!(GET "/api/v1/setup/status", Public, setup::status),
        route!(POST "/api/v1/setup/complete", Public, csrf_exempt, setup::complete),
        // Authentication.
        route!(POST "/api/v1/auth/login", Public, csrf_exempt, auth::login),
        route!(POST "/api/v1/auth/logout", User, auth::logout),
        route!(GET "/api/v1/auth/me", User, auth::me),
        route!(PATCH "/api/v1/auth/me", User, auth::update_me),
        route!(GET "/api/v1/auth/policy", Public, auth::policy),
        route!(POST "/api/v1/auth/change-password", User, auth::change_password),
        route!(GET "/api/v1/auth/sessions", User, auth::list_sessions),
        route!(POST "/api/v1/auth/sessions/revoke-others", User, auth::revoke_others),
        route!(POST "/api/v1/auth/sessions/{id}/revoke", User, auth::revoke_one),
        route!(POST "/api/v1/auth/password-reset/request", Public, csrf_exempt, password_reset::request),
        route!(POST "/api/v1/auth/password-reset/confirm", Public, csrf_exempt, password_reset::confirm),
        // Users (global admin).
        route!(GET "/api/v1/users", GlobalAdmin, users::list),
        route!(POST "/api/v1/users", GlobalAdmin, users::create),
        route!(GET "/api/v1/users/{id}", GlobalAdmin, users::get),
        route!(PATCH "/api/v1/users/{id}", GlobalAdmin, users::update),
        route!(DELETE "/api/v1/users/{id}", GlobalAdmin, users::delete),
        route!(POST "/api/v1/users/{id}/sessions/revoke", GlobalAdmin, users::revoke_sessions),
        // Projects.
        route!(GET "/api/v1/projects", Listing(Scope::read(Family::Projects)), projects::list),
        route!(POST "/api/v1/projects", GlobalAdmin, projects::create),
        route!(GET "/api/v1/projects/{slug}", Project(ReadProject), projects::get),
        route!(PATCH "/api/v1/projects/{slug}", Project(UpdateProject), projects::update),
        route!(DELETE "/api/v1/projects/{slug}", Project(ArchiveProject), projects::archive),
        route!(GET "/api/v1/projects/{slug}/permissions", Project(ReadProject), projects::permissions),
        // Memberships.
        route!(GET "/api/v1/projects/{slug}/memberships", Project(ReadMembers), memberships::list),
        route!(POST "/api/v1/projects/{slug}/memberships", Project(ManageMembers), memberships::add),
        route!(PATCH "/api/v1/projects/{slug}/memberships/{id}", Project(ManageMembers), memberships::update),
        route!(DELETE "/api/v1/projects/{slug}/memberships/{id}", Project(ManageMembers), memberships::remove),
        // Invitations. Accept is not CSRF-exempt: anonymous callers have no
        // session to check, and a signed-in caller must prove same-origin.
        route!(GET "/api/v1/projects/{slug}/invitations", Project(ReadInvitations), invitations::list),
        route!(POST "/api/v1/projects/{slug}/invitations", Project(InviteMembers), invitations::create),
        route!(DELETE "/api/v1/projects/{slug}/invitations/{id}", Project(InviteMembers), invitations::revoke),
        route!(POST "/api/v1/invitations/preview", Public, csrf_exempt, invitations::preview),
        route!(POST "/api/v1/invitations/accept", Public, invitations::accept),
        // API keys (browser session only).
        route!(GET "/api/v1/api-keys", User, api_keys::list),
        route!(POST "/api/v1/api-keys", User, api_keys::create),
        route!(DELETE "/api/v1/api-keys/{id}", User, api_keys::revoke),
        // Audit log.
        // Agents and what they report.
        route!(GET "/api/v1/projects/{slug}/agents", Project(ReadAgents), agents::list),
        route!(POST "/api/v1/projects/{slug}/agents", Project(ManageAgents), agents::create),
        route!(DELETE "/api/v1/projects/{slug}/agents/{id}", Project(ManageAgents), agents::revoke),
        route!(GET "/api/v1/projects/{slug}/tasks", Project(ReadTasks), tasks::list),
        route!(GET "/api/v1/projects/{slug}/tasks/{engine}/{task_id}", Project(ReadTasks), tasks::get),
        route!(GET "/api/v1/projects/{slug}/workers", Project(ReadWorkers), tasks::workers),
        route!(GET "/api/v1/projects/{slug}/queues", Project(ReadQueues), tasks::queues),
        route!(GET "/api/v1/projects/{slug}/events", Project(ReadEvents), tasks::events),
        // The agent long-poll transport (the WebSocket is /ws/agent).
        route!(POST "/api/v1/agent/events", Agent, csrf_exempt, agent_longpoll::events),
        route!(GET "/api/v1/agent/commands", Agent, agent_longpoll::commands),
        // Commands.
        route!(GET "/api/v1/projects/{slug}/commands", Project(ReadCommands), commands::list),
        route!(GET "/api/v1/projects/{slug}/commands/{id}", Project(ReadCommands), commands::get),
        route!(POST "/api/v1/projects/{slug}/commands/retry-task", Project(RetryTask), commands::retry_task),
        route!(POST "/api/v1/projects/{slug}/commands/cancel-task", Project(CancelTask), commands::cancel_task),
        route!(POST "/api/v1/projects/{slug}/commands/bulk-retry", Project(BulkRetry), commands::bulk_retry),
        route!(POST "/api/v1/projects/{slug}/commands/purge-queue", Project(PurgeQueue), commands::purge_queue),
        route!(POST "/api/v1/projects/{slug}/commands/restart-worker", Project(RestartWorker), commands::restart_worker),
        // Notifications: channels, rules (managed with the channel actions)
        // and the delivery list.
        route!(GET "/api/v1/projects/{slug}/notifications/channels", Project(ReadChannels), notifications::list),
        route!(POST "/api/v1/projects/{slug}/notifications/channels", Project(ManageChannels), notifications::create),
        route!(PATCH "/api/v1/projects/{slug}/notifications/channels/{id}", Project(ManageChannels), notifications::update),
        route!(DELETE "/api/v1/projects/{slug}/notifications/channels/{id}", Project(ManageChannels), notifications::delete),
        route!(POST "/api/v1/projects/{slug}/notifications/channels/{id}/test", Project(TestChannel), notifications::test),
        route!(GET "/api/v1/projects/{slug}/notifications/rules", Project(ReadChannels), notification_rules::list),
        route!(POST "/api/v1/projects/{slug}/notifications/rules", Project(ManageChannels), notification_rules::create),
        route!(PATCH "/api/v1/projects/{slug}/notifications/rules/{id}", Project(ManageChannels), notification_rules::update),
        route!(DELETE "/api/v1/projects/{slug}/notifications/rules/{id}", Project(ManageChannels), notification_rules::delete),
        route!(GET "/api/v1/projects/{slug}/notifications/deliveries", Project(ReadChannels), notification_rules::deliveries),
        // Audit log.
        route!(GET "/api/v1/projects/{slug}/audit", Project(ReadAudit), audit::list_project),
        route!(GET "/api/v1/audit", GlobalAdmin, audit::list),
        route!(GET "/api/v1/audit/verify", GlobalAdmin, audit::verify),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::router::Router;
    use super::*;

    #[test]
    fn table_is_well_formed() {
        Router::new(routes()).check().unwrap();
    }
}

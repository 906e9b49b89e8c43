//! Every HTTP route of the product, in one list. The permission-matrix
//! test walks this table; a route cannot be added without an access rule.

use super::router::Route;
use super::{audit, auth, health, pages, setup, users};
use crate::route;

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
        // Users (global admin).
        route!(GET "/api/v1/users", GlobalAdmin, users::list),
        route!(POST "/api/v1/users", GlobalAdmin, users::create),
        route!(GET "/api/v1/users/{id}", GlobalAdmin, users::get),
        route!(PATCH "/api/v1/users/{id}", GlobalAdmin, users::update),
        route!(DELETE "/api/v1/users/{id}", GlobalAdmin, users::delete),
        route!(POST "/api/v1/users/{id}/sessions/revoke", GlobalAdmin, users::revoke_sessions),
        // Audit log.
        route!(GET "/api/v1/audit", GlobalAdmin, audit::list),
        route!(GET "/api/v1/audit/verify", GlobalAdmin, audit::verify),
    ]
}

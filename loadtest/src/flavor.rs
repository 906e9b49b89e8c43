//! Where Palisade's and z4j 1.13's REST APIs differ. Everything the
//! scenarios call goes through here, so adjusting to a changed path is a
//! one-line edit.
//!
//! What is the same in both (and therefore not here): `POST
//! /api/v1/auth/login {email,password}`, a session cookie plus a readable
//! `…_csrf` cookie whose value goes into `X-CSRF-Token` on unsafe methods
//! (cookie names are discovered from `Set-Cookie`, so dev and `__Host-`
//! prod names both work), `GET /api/v1/auth/me`, agent minting at `POST
//! /api/v1/projects/{slug}/agents {name}` answering `token` and
//! `hmac_secret`, the project-scoped list paths, and the agent protocol.

use clap::ValueEnum;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Palisade,
    Z4j,
}

/// One HTTP call: method, path (with query) and optional JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<Value>,
    /// Short name for reports (`http{route:…}`), without ids.
    pub route: String,
}

impl Call {
    fn get(path: String, route: &str) -> Call {
        Call { method: reqwest::Method::GET, path, body: None, route: route.to_owned() }
    }

    fn with(method: reqwest::Method, path: String, body: Value, route: &str) -> Call {
        Call { method, path, body: Some(body), route: route.to_owned() }
    }
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Palisade => "palisade",
            Flavor::Z4j => "z4j",
        }
    }

    pub fn me(self) -> Call {
        Call::get("/api/v1/auth/me".into(), "GET /auth/me")
    }

    /// An audited mutation that is cheap and repeatable. Palisade audits
    /// profile edits; z4j 1.13 does not (it writes no audit row for `PATCH
    /// /auth/me`), so for z4j a project description edit (`project.updated`)
    /// is the comparable audited action.
    pub fn audited_action(self, project: &str, n: u64) -> Call {
        match self {
            Flavor::Palisade => Call::with(
                reqwest::Method::PATCH,
                "/api/v1/auth/me".into(),
                json!({ "display_name": format!("loadtest {n}") }),
                "PATCH /auth/me",
            ),
            Flavor::Z4j => Call::with(
                reqwest::Method::PATCH,
                format!("/api/v1/projects/{project}"),
                json!({ "description": format!("loadtest {n}") }),
                "PATCH /projects/{slug}",
            ),
        }
    }

    pub fn tasks(self, project: &str, limit: u32) -> Call {
        Call::get(format!("/api/v1/projects/{project}/tasks?limit={limit}"), "GET /projects/{slug}/tasks")
    }

    pub fn workers(self, project: &str) -> Call {
        Call::get(format!("/api/v1/projects/{project}/workers"), "GET /projects/{slug}/workers")
    }

    pub fn audit_list(self, project: &str, limit: u32) -> Call {
        Call::get(format!("/api/v1/projects/{project}/audit?limit={limit}"), "GET /projects/{slug}/audit")
    }

    pub fn commands_list(self, project: &str) -> Call {
        Call::get(format!("/api/v1/projects/{project}/commands"), "GET /projects/{slug}/commands")
    }

    /// The operator command used for round trips. `cancel_task` is in the rq
    /// adapter's capabilities and, unlike `retry_task`, has no retry-contract
    /// preconditions, so both brains deliver it to our simulated rq agents.
    pub fn issue_command(self, project: &str, agent_id: &str, engine: &str, task_id: &str) -> Call {
        Call::with(
            reqwest::Method::POST,
            format!("/api/v1/projects/{project}/commands/cancel-task"),
            json!({ "agent_id": agent_id, "engine": engine, "task_id": task_id }),
            "POST /projects/{slug}/commands/cancel-task",
        )
    }

    pub fn command(self, project: &str, id: &str) -> Call {
        Call::get(format!("/api/v1/projects/{project}/commands/{id}"), "GET /projects/{slug}/commands/{id}")
    }

    pub fn project(self, project: &str) -> Call {
        Call::get(format!("/api/v1/projects/{project}"), "GET /projects/{slug}")
    }

    pub fn create_project(self, project: &str) -> Call {
        Call::with(
            reqwest::Method::POST,
            "/api/v1/projects".into(),
            json!({ "slug": project, "name": format!("Load test {project}") }),
            "POST /projects",
        )
    }

    /// A global admin creating an ordinary user (Palisade's `POST /users`).
    pub fn create_user(self, email: &str, password: &str) -> Call {
        Call::with(
            reqwest::Method::POST,
            "/api/v1/users".into(),
            json!({ "email": email, "password": password, "display_name": "load test" }),
            "POST /users",
        )
    }

    pub fn mint_agent(self, project: &str, name: &str) -> Call {
        Call::with(
            reqwest::Method::POST,
            format!("/api/v1/projects/{project}/agents"),
            json!({ "name": name }),
            "POST /projects/{slug}/agents",
        )
    }

    /// Command states after which nothing changes any more.
    pub fn command_is_final(self, status: &str) -> bool {
        matches!(status, "completed" | "success" | "succeeded" | "failed" | "timeout" | "timed_out" | "cancelled")
    }

    /// Processes that each keep their own login limiter by default: z4j's
    /// limiter is per uvicorn worker (2 on a 2-core box).
    pub fn limiter_processes(self) -> u32 {
        match self {
            Flavor::Palisade => 1,
            Flavor::Z4j => 2,
        }
    }

    /// Statuses the brain answers when a login is refused by a limiter
    /// (429) or a lockout (423, Palisade only: z4j answers 401 while locked).
    pub fn lockout_status(self) -> Option<u16> {
        match self {
            Flavor::Palisade => Some(423),
            Flavor::Z4j => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audited_action_differs_by_flavor() {
        let p = Flavor::Palisade.audited_action("default", 3);
        assert_eq!(p.path, "/api/v1/auth/me");
        assert_eq!(p.body, Some(json!({"display_name": "loadtest 3"})));
        let z = Flavor::Z4j.audited_action("default", 3);
        assert_eq!(z.path, "/api/v1/projects/default");
        assert_eq!(z.method, reqwest::Method::PATCH);
    }

    #[test]
    fn project_paths() {
        assert_eq!(Flavor::Z4j.tasks("p", 50).path, "/api/v1/projects/p/tasks?limit=50");
        assert_eq!(Flavor::Palisade.mint_agent("p", "a").path, "/api/v1/projects/p/agents");
        assert_eq!(Flavor::Palisade.command("p", "c").path, "/api/v1/projects/p/commands/c");
        assert!(Flavor::Z4j.command_is_final("completed"));
        assert!(!Flavor::Z4j.command_is_final("dispatched"));
    }
}

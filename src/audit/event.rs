//! One audit event, before it is sequenced and MACed by the writer.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiKey,
    Agent,
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Agent => "agent",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        Some(match s {
            "user" => ActorKind::User,
            "api_key" => ActorKind::ApiKey,
            "agent" => ActorKind::Agent,
            "system" => ActorKind::System,
            "anonymous" => ActorKind::Anonymous,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "success" => Outcome::Success,
            "failure" => Outcome::Failure,
            "denied" => Outcome::Denied,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub action: String,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(action: impl Into<String>) -> AuditEvent {
        AuditEvent {
            action: action.into(),
            actor_kind: ActorKind::System,
            actor_id: None,
            project_id: None,
            target_type: None,
            target_id: None,
            outcome: Outcome::Success,
            client_ip: None,
            request_id: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, kind: ActorKind, id: Option<String>) -> Self {
        self.actor_kind = kind;
        self.actor_id = id;
        self
    }

    pub fn user(self, id: Uuid) -> Self {
        self.actor(ActorKind::User, Some(id.to_string()))
    }

    pub fn project(mut self, id: Uuid) -> Self {
        self.project_id = Some(id);
        self
    }

    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.target_type = Some(kind.to_string());
        self.target_id = Some(id.to_string());
        self
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    pub fn request(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, v: Value) -> Self {
        self.details = v;
        self
    }
}

//! The one error type routes return, and its single mapping to HTTP:
//! `{"error":{"code","message"[,"details"]}}` with a stable snake_case code.
//! Messages are written by us, never copied from a parser or driver error,
//! so a submitted value (a password, a token) can never be echoed back.

use serde_json::{json, Value};
use warp::http::StatusCode;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, sent as `Retry-After` (every 423/429/503 carries one).
    pub retry_after: Option<u64>,
    /// Methods for the `Allow` header of a 405.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, retry_after: None, allow: None }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "authentication required")
    }

    pub fn invalid_credentials() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "email or password is incorrect")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn csrf_failed() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "missing or invalid X-CSRF-Token header for a cookie-authenticated request",
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed(allow: String) -> ApiError {
        let mut e =
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path");
        e.allow = Some(allow);
        e
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the {limit}-byte limit"),
        )
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
    }

    pub fn weak_password(rule: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", message).with_details(json!({ "rule": rule }))
    }

    pub fn account_locked(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::LOCKED,
            "account_locked",
            "too many failed logins for this account; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    pub fn rate_limited(retry_after: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down");
        e.retry_after = Some(retry_after.max(1));
        e.with_details(json!({ "retry_after_seconds": retry_after.max(1) }))
    }

    pub fn invalid_host() -> ApiError {
        ApiError::bad_request("invalid_host", "the Host header does not name this server")
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// Unexpected failure. The cause goes to the log (by the caller), never
    /// to the client.
    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server hit an unexpected error")
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut err = json!({ "code": self.code, "message": self.message, "request_id": request_id });
        if let (Some(details), Some(obj)) = (&self.details, err.as_object_mut()) {
            obj.insert("details".into(), details.clone());
        }
        json!({ "error": err })
    }
}

/// Log the real cause of an internal error and hand back the generic one.
pub fn internal<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> ApiError {
    move |e| {
        tracing::error!(error = %e, "{context}");
        ApiError::internal()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is not reachable")
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
        }
    }
}

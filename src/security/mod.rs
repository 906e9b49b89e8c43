//! Security primitives: pure functions and small types with no I/O, so each
//! can be tested exhaustively on its own. Anything that needs the database or
//! ordering lives in `store` or `actors` and calls into here.

pub mod canonical_json;
pub mod client_ip;
pub mod csrf;
pub mod email;
pub mod frame;
pub mod keys;
pub mod password;
pub mod password_policy;
pub mod rbac;
pub mod redaction;
pub mod replay;
pub mod secret;
pub mod ssrf;
pub mod tokens;

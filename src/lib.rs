//! Palisade: a hardened control plane ("brain") for Python task queues that
//! speaks the z4j agent protocol v2.
//!
//! The crate is a library so the integration tests can start the real server
//! in-process on `127.0.0.1:0`; `src/main.rs` is a thin CLI over it.
//! ARCHITECTURE.md maps the modules and states the invariants they keep.

pub mod actors;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod bearer;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod fd_limit;
pub mod fleet;
pub mod http_server;
pub mod notify;
pub mod outbound;
pub mod projects;
pub mod routes;
pub mod security;
pub mod server;
pub mod state;
pub mod store;

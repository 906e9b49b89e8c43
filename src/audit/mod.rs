//! The tamper-evident audit log: what gets audited (`event`), the
//! canonical row format and MACs (`canonical`), keys and rotation (`keys`),
//! signed checkpoints and their sink (`checkpoint`), and the verifier
//! (`verify`, with the parallel whole-table walk in `scan`). Only
//! `actors::audit_writer` turns events into rows (see ARCHITECTURE.md);
//! docs/audit-format.md specifies the format.

pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod keys;
pub mod scan;
pub mod verify;

pub use event::{ActorKind, AuditEvent, Outcome};

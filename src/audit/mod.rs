//! What gets audited, as a value routes build and hand to the audit writer.
//! Only `actors::audit_writer` turns these into rows (see ARCHITECTURE.md).

pub mod event;

pub use event::{ActorKind, AuditEvent, Outcome};

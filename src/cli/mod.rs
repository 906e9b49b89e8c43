//! Command-line interface. Each subcommand is a function that returns a
//! process exit code; `main` only parses arguments and sets up logging.

pub mod admin;
pub mod audit;
pub mod check;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "palisade", version, about = "Hardened control plane for Python task queues (z4j agent compatible)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check a deployment's configuration.
    Check {
        /// Run the named deployment checks (secret, bind, public URL, proxies, database, audit sink).
        #[arg(long)]
        deploy: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a global admin (automation path; the setup link is the interactive one).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify every row, the chain links and the signed checkpoints.
    /// Exit 0 intact, 1 tampered (prints the first bad row and why), 2 could not run.
    Verify {
        /// Checkpoint file (default: PALISADE_AUDIT_CHECKPOINTS).
        #[arg(long)]
        checkpoints: Option<std::path::PathBuf>,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete the oldest rows, keeping the rest verifiable (the new start
    /// is recorded in a signed checkpoint first). Needs the table owner's role.
    Prune {
        #[arg(long, conflicts_with = "below_seq")]
        keep_days: Option<u32>,
        #[arg(long)]
        below_seq: Option<i64>,
    },
}

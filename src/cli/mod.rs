//! Command-line interface. Each subcommand is a function that returns a
//! process exit code; `main` only parses arguments and sets up logging.

pub mod admin;
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

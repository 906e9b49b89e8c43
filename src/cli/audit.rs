//! `palisade audit verify` and `palisade audit prune`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;

use crate::actors::audit_writer::{AuditMsg, AuditWriter, AuditWriterArgs};
use crate::audit::checkpoint::{CheckpointSink, FileSink};
use crate::audit::keys::AuditKeys;
use crate::audit::verify::{self, Report};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::server::Database;
use crate::store::audit as store;

/// Exit codes promised by the interface: 0 intact, 1 tampered, 2 could not run.
pub const EXIT_INTACT: i32 = 0;
pub const EXIT_TAMPERED: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

fn progress_bar(done: u64, total: u64) {
    let pct = (done.min(total) * 100).checked_div(total).unwrap_or(100) as usize;
    let filled = pct / 4;
    eprint!("\rverifying audit log [{}{}] {pct:>3}% {done}/{total} rows", "#".repeat(filled), ".".repeat(25 - filled));
    let _ = std::io::stderr().flush();
}

pub async fn verify(config: &Config, checkpoints: Option<PathBuf>, json: bool) -> i32 {
    let keys = AuditKeys::new(&config.secret, &config.previous_secrets);
    let sink = FileSink::new(checkpoints.unwrap_or_else(|| config.audit_checkpoints.clone()));
    let database = match Database::open_shared(config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot open the database: {e}");
            return EXIT_ERROR;
        }
    };
    let report = match sink.load(&keys) {
        Err(e) => Ok(Report::bad_checkpoints(e.to_string())),
        Ok(cps) => {
            let total = match database.db.conn().await {
                Ok(c) => store::bounds(&c).await.ok().flatten().map(|(lo, hi)| (hi - lo + 1) as u64).unwrap_or(0),
                Err(_) => 0,
            };
            let tty = std::io::stderr().is_terminal();
            verify::verify_table(&database.db, &keys, &cps, move |done| {
                if tty {
                    progress_bar(done, total)
                }
            })
            .await
        }
    };
    database.close().await;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: verification could not run: {e}");
            return EXIT_ERROR;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    match &report.finding {
        None => {
            if !json {
                println!(
                    "audit log intact: {} rows verified{}; {} checkpoint(s), newest at row {}",
                    report.rows_checked,
                    report.first_seq.zip(report.last_seq).map(|(a, b)| format!(" (rows {a}..{b})")).unwrap_or_default(),
                    report.checkpoints,
                    report.newest_checkpoint_seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                );
            }
            EXIT_INTACT
        }
        Some(f) => {
            if !json {
                println!("AUDIT LOG TAMPERED: first bad row {}: {} ({})", f.seq, f.reason.as_str(), f.detail);
            }
            EXIT_TAMPERED
        }
    }
}

pub async fn prune(config: &Config, keep_days: Option<u32>, below_seq: Option<i64>) -> Result<u64, String> {
    let database = Database::open_shared(config).await.map_err(|e| e.to_string())?;
    let result = async {
        let conn = database.db.conn().await.map_err(|e| e.to_string())?;
        let below = match (below_seq, keep_days) {
            (Some(s), _) => s,
            (None, Some(days)) => {
                let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
                let row = conn
                    .query_one("SELECT min(seq) FROM audit_log WHERE occurred_at >= $1", &[&cutoff])
                    .await
                    .map_err(|e| e.to_string())?;
                match row.get::<_, Option<i64>>(0) {
                    Some(s) => s,
                    None => return Ok(0),
                }
            }
            (None, None) => return Err("give --keep-days N or --below-seq N".to_string()),
        };
        drop(conn);
        let keys = Arc::new(AuditKeys::new(&config.secret, &config.previous_secrets));
        let sink: Arc<dyn CheckpointSink> = Arc::new(FileSink::new(config.audit_checkpoints.clone()));
        let args = AuditWriterArgs {
            db: database.db.clone(),
            keys,
            sink,
            clock: SystemClock::shared(),
            checkpoint_interval: config.audit_checkpoint_interval,
            allow_broken_chain: false,
        };
        let (writer, handle) = Actor::spawn(None, AuditWriter, args).await.map_err(|e| e.to_string())?;
        let outcome = writer.call(|reply| AuditMsg::Prune { below, reply }, Some(Duration::from_secs(600))).await;
        writer.stop(None);
        let _ = handle.await;
        match outcome {
            Ok(ractor::rpc::CallResult::Success(r)) => r.map_err(|e| e.to_string()),
            _ => Err("the audit writer did not answer".to_string()),
        }
    }
    .await;
    database.close().await;
    result
}

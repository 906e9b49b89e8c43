//! The embedded default database: initialised from the installed
//! PostgreSQL binaries under the data directory, reused on the next start,
//! and stopped on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use palisade::clock::ManualClock;
use palisade::config::Config;
use reqwest::StatusCode;

fn embedded_config(dir: &std::path::Path) -> Config {
    let vars = [
        ("PALISADE_ENV", "dev".to_string()),
        ("PALISADE_BIND", "127.0.0.1:0".to_string()),
        ("PALISADE_PUBLIC_URL", "http://127.0.0.1:0".to_string()),
        ("PALISADE_DATA_DIR", dir.display().to_string()),
    ];
    Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap()
}

#[tokio::test]
async fn serve_runs_on_a_private_cluster_and_stops_it() {
    let dir = tempdir::Dir::new();
    let running =
        palisade::server::start(embedded_config(dir.path()), ManualClock::new()).await.expect("embedded start");
    assert!(running.setup_token.is_some(), "first boot prints a setup link");
    assert!(dir.path().join("pg/PG_VERSION").is_file());
    let pid: i32 =
        std::fs::read_to_string(dir.path().join("pg/postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    let r = reqwest::get(format!("http://{}/api/v1/health/ready", running.addr)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // No TCP listener: the cluster is reachable only through its socket.
    let conf = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default();
    assert!(!conf.contains("listening on IPv4"), "{conf}");
    running.shutdown().await;
    // SAFETY (test): probing whether the postmaster still exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "postmaster stopped");

    // Second start reuses the cluster and its data (migrations idempotent).
    let running = palisade::server::start(embedded_config(dir.path()), ManualClock::new()).await.expect("restart");
    let db = running.state.db.conn().await.unwrap();
    let n: i64 = db.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, palisade::store::migrate::MIGRATIONS.len());
    drop(db);
    running.shutdown().await;
}

#[tokio::test]
async fn a_data_dir_the_postgres_user_cannot_reach_still_works() {
    // SAFETY (test): reading our effective uid.
    if unsafe { libc::geteuid() } != 0 {
        return; // only root hands the cluster to another user
    }
    let outer = tempdir::Dir::new();
    std::fs::set_permissions(outer.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let data = outer.path().join("palisade-data");
    let running = palisade::server::start(embedded_config(&data), ManualClock::new()).await.expect("embedded start");
    let note = std::fs::read_to_string(data.join("EMBEDDED_POSTGRES_LOCATION")).unwrap();
    assert!(note.contains("/var/lib/palisade/embedded/"), "{note}");
    let r = reqwest::get(format!("http://{}/api/v1/health/ready", running.addr)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    running.shutdown().await;
}

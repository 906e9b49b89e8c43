//! The audit log under load and failure: concurrent writers, a SIGKILL
//! mid-storm, two server processes on one database, start-up refusal on a
//! broken chain, key rotation, least-privilege roles, pruning, reading,
//! and the list of security events that are recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::{env_for, palisade_bin, ServerProcess};
use common::*;
use palisade::audit::checkpoint::{CheckpointSink, FileSink};
use palisade::audit::keys::AuditKeys;
use palisade::audit::verify::{verify_table, Reason, Report};
use palisade::security::secret::MasterSecret;
use palisade::store::Db;
use reqwest::StatusCode;
use serde_json::json;

fn keys_for(current: &str, previous: &[&str]) -> AuditKeys {
    let prev: Vec<MasterSecret> = previous.iter().map(|s| MasterSecret::from_string(s.to_string()).unwrap()).collect();
    AuditKeys::new(&MasterSecret::from_string(current.into()).unwrap(), &prev)
}

async fn verify_dir(db_url: &str, dir: &std::path::Path, keys: &AuditKeys) -> Report {
    let cps = FileSink::new(dir.join("audit-checkpoints.log")).load(keys).unwrap();
    let db = Db::connect(db_url, 2).unwrap();
    verify_table(&db, keys, &cps, |_| {}).await.unwrap()
}

/// Stop the server cleanly (its last checkpoint covers every row) and
/// verify its chain.
async fn stop_and_verify(srv: TestServer) -> Report {
    let (db, dir) = srv.stop().await;
    verify_dir(&db.url, dir.path(), &keys_for(SECRET, &[])).await
}

async fn contiguous(c: &tokio_postgres::Client) -> i64 {
    let r = c.query_one("SELECT count(*), min(seq), max(seq) FROM audit_log", &[]).await.unwrap();
    let (n, lo, hi): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    assert_eq!((lo, hi), (1, n), "seq is gapless from 1");
    n
}

/// `workers` clients each PATCH /auth/me until `stop`; returns the request
/// ids that were answered 200.
async fn storm(
    base: &str,
    cookies: std::collections::HashMap<String, String>,
    workers: usize,
    stop: Duration,
) -> Vec<String> {
    storm_counting(base, cookies, workers, stop, Default::default()).await
}

/// Like `storm`, counting successes in `done` as they happen.
async fn storm_counting(
    base: &str,
    cookies: std::collections::HashMap<String, String>,
    workers: usize,
    stop: Duration,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let done = done.clone();
        let mut b = Browser::new(base);
        b.cookies = cookies.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let end = std::time::Instant::now() + stop;
            let mut i = 0;
            while std::time::Instant::now() < end {
                let id = format!("req_w{w}_{i}");
                i += 1;
                b.extra_headers = vec![("x-request-id".into(), id.clone())];
                let url = format!("{}/api/v1/auth/me", b.base);
                let mut rb = b.client.patch(url).json(&json!({ "display_name": id }));
                rb = rb
                    .header("cookie", b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "));
                rb = rb.header("x-csrf-token", b.csrf().unwrap()).header("x-request-id", &id);
                match rb.send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        ok.push(id);
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(r) => panic!("storm: unexpected {} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(_) => break, // the server went away
                }
            }
            ok
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        ok.extend(t.await.unwrap());
    }
    ok
}

#[tokio::test]
async fn fifty_concurrent_clients_make_one_linear_chain() {
    let srv = TestServer::start().await;
    let admin = srv.admin().await;
    let ok = storm(&srv.base, admin.cookies.clone(), 50, Duration::from_secs(3)).await;
    assert!(ok.len() >= 200, "only {} actions", ok.len());
    let c = srv.db.client().await;
    let n = contiguous(&c).await;
    assert_eq!(n as usize, ok.len() + 1, "one row per action plus setup.completed");
    let report = stop_and_verify(srv).await;
    assert!(report.intact, "{:?}", report.finding);
}

#[tokio::test]
async fn sigkill_mid_storm_leaves_a_chain_that_verifies_with_every_reported_action() {
    let db = TestDb::fresh().await;
    let dir = tempdir::Dir::new();
    let mut p = ServerProcess::spawn(&env_for(&db.url, dir.path(), SECRET)).unwrap();
    let mut admin = Browser::new(&p.base());
    let r = admin
        .post(
            "/api/v1/setup/complete",
            json!({ "token": p.setup_token.clone().unwrap(), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let base = p.base();
    let cookies = admin.cookies.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = done.clone();
    let stormer =
        tokio::spawn(async move { storm_counting(&base, cookies, 50, Duration::from_secs(60), counter).await });
    // Kill it in the middle of the storm: once plenty of actions are done
    // and 50 more are in flight.
    while done.load(std::sync::atomic::Ordering::Relaxed) < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.kill9();
    let ok = stormer.await.unwrap();
    assert!(!ok.is_empty());
    let report = verify_dir(&db.url, dir.path(), &keys_for(SECRET, &[])).await;
    assert!(report.intact, "{:?}", report.finding);
    let c = db.client().await;
    contiguous(&c).await;
    let rows = c.query("SELECT request_id FROM audit_log WHERE action = 'user.updated'", &[]).await.unwrap();
    let recorded: HashSet<String> = rows.iter().filter_map(|r| r.get::<_, Option<String>>(0)).collect();
    for id in &ok {
        assert!(recorded.contains(id), "action {id} was reported done but has no audit row");
    }
    // And the restarted server accepts the chain it left behind.
    let p2 = ServerProcess::spawn(&env_for(&db.url, dir.path(), SECRET)).unwrap();
    drop(p2);
}

#[tokio::test]
async fn two_server_processes_on_one_database_keep_one_chain() {
    let db = TestDb::fresh().await;
    let (d1, d2) = (tempdir::Dir::new(), tempdir::Dir::new());
    let mut p1 = ServerProcess::spawn(&env_for(&db.url, d1.path(), SECRET)).unwrap();
    let mut admin = Browser::new(&p1.base());
    admin
        .post(
            "/api/v1/setup/complete",
            json!({ "token": p1.setup_token.clone().unwrap(), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .await;
    let mut p2 = ServerProcess::spawn(&env_for(&db.url, d2.path(), SECRET)).unwrap();
    let (b1, b2, c1, c2) = (p1.base(), p2.base(), admin.cookies.clone(), admin.cookies.clone());
    let s1 = tokio::spawn(async move { storm(&b1, c1, 25, Duration::from_secs(3)).await });
    let s2 = tokio::spawn(async move { storm(&b2, c2, 25, Duration::from_secs(3)).await });
    let (ok1, ok2) = (s1.await.unwrap(), s2.await.unwrap());
    assert!(!ok1.is_empty() && !ok2.is_empty(), "both servers appended");
    assert!(p1.terminate().success() && p2.terminate().success());
    let c = db.client().await;
    let n = contiguous(&c).await;
    assert_eq!(n as usize, ok1.len() + ok2.len() + 1);
    let keys = keys_for(SECRET, &[]);
    for dir in [d1.path(), d2.path()] {
        let report = verify_dir(&db.url, dir, &keys).await;
        assert!(report.intact, "{:?}", report.finding);
    }
}

#[tokio::test]
async fn startup_refuses_to_write_on_a_broken_chain_unless_told() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    for i in 0..6 {
        admin.patch("/api/v1/auth/me", json!({ "display_name": format!("x{i}") })).await;
    }
    let (db, dir) = srv.stop().await;
    db.client()
        .await
        .batch_execute("SET session_replication_role = replica; DELETE FROM audit_log WHERE seq > 4")
        .await
        .unwrap();
    let (err, db, dir) = match TestServer::try_start_on(db, dir, &[]).await {
        Err(e) => e,
        Ok(_) => panic!("server started on a truncated chain"),
    };
    assert!(err.contains("audit chain verification failed at row 5 (truncated)"), "{err}");
    assert!(err.contains("PALISADE_AUDIT_ALLOW_BROKEN_CHAIN"), "{err}");
    let srv = TestServer::start_on(db, dir, &[("PALISADE_AUDIT_ALLOW_BROKEN_CHAIN", "1")]).await;
    assert_eq!(srv.browser().get("/api/v1/health/ready").await.status, StatusCode::OK);
    srv.shutdown().await;
}

#[tokio::test]
async fn key_rotation_keeps_old_rows_verifiable() {
    const NEW: &str = "rotated-master-secret-0123456789-abcdefghijklmnop";
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    admin.patch("/api/v1/auth/me", json!({ "display_name": "before" })).await;
    let (db, dir) = srv.stop().await;
    let srv = TestServer::start_on(db, dir, &[("PALISADE_SECRET", NEW), ("PALISADE_PREVIOUS_SECRETS", SECRET)]).await;
    // Sessions are keyed by the master secret, so everyone signs in again.
    let mut old = srv.browser();
    old.cookies = admin.cookies.clone();
    assert_eq!(old.get("/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    let mut admin = srv.browser();
    admin.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    admin.patch("/api/v1/auth/me", json!({ "display_name": "after" })).await;
    let (db, dir) = srv.stop().await;
    let c = db.client().await;
    let ids: i64 = c.query_one("SELECT count(DISTINCT key_id) FROM audit_log", &[]).await.unwrap().get(0);
    assert_eq!(ids, 2, "rows carry the key that signed them");
    let report = verify_dir(&db.url, dir.path(), &keys_for(NEW, &[SECRET])).await;
    assert!(report.intact, "{:?}", report.finding);
    // Without the old key the oldest rows cannot be checked.
    let only_new = keys_for(NEW, &[]);
    assert!(FileSink::new(dir.path().join("audit-checkpoints.log")).load(&only_new).is_err());
    let report = verify_table(&Db::connect(&db.url, 2).unwrap(), &only_new, &[], |_| {}).await.unwrap();
    let f = report.finding.unwrap();
    assert_eq!((f.seq, f.reason), (1, Reason::UnknownKey));
}

#[tokio::test]
async fn the_application_role_can_only_read_and_append_audit_rows() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let (db, dir) = srv.stop().await;
    let owner = db.client().await;
    let role = format!("palisade_app_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    owner.batch_execute(&format!("CREATE ROLE {role} LOGIN")).await.unwrap();
    let grants =
        std::fs::read_to_string("scripts/db-roles.sql").unwrap().replace(":\"app_role\"", &format!("\"{role}\""));
    owner.batch_execute(&grants).await.unwrap();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let (app, conn) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    app.query_one("SELECT count(*) FROM audit_log", &[]).await.unwrap();
    for sql in ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let err = app.batch_execute(sql).await.unwrap_err();
        assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{sql}: {err}");
    }
    // Even the owner (here a superuser) is stopped by the guard trigger.
    for sql in ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let err = owner.batch_execute(sql).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{sql}: {err:?}"
        );
    }
    // The server runs fine as the application role and keeps the chain.
    let app_url = url.to_string();
    let cfg = config_with(&app_url, dir.path(), &[]);
    let running = palisade::server::start(cfg, palisade::clock::ManualClock::new()).await.unwrap();
    let mut b = Browser::new(&format!("http://{}", running.addr));
    b.post("/api/v1/auth/login", json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD })).await;
    assert_eq!(b.patch("/api/v1/auth/me", json!({ "display_name": "least privilege" })).await.status, StatusCode::OK);
    running.shutdown().await;
    let report = verify_dir(&db.url, dir.path(), &keys_for(SECRET, &[])).await;
    assert!(report.intact, "{:?}", report.finding);
    owner.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await.ok();
}

fn cli(args: &[&str], db_url: &str, dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(palisade_bin())
        .args(args)
        .env("PALISADE_SECRET", SECRET)
        .env("PALISADE_DATABASE_URL", db_url)
        .env("PALISADE_DATA_DIR", dir)
        .output()
        .unwrap()
}

#[tokio::test]
async fn prune_and_the_verify_command() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    for i in 0..29 {
        admin.patch("/api/v1/auth/me", json!({ "display_name": format!("p{i}") })).await;
    }
    let (db, dir) = srv.stop().await;
    let out = cli(&["audit", "verify"], &db.url, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit log intact: 30 rows"));

    let out = cli(&["audit", "prune", "--below-seq", "11"], &db.url, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let c = db.client().await;
    let r = c.query_one("SELECT min(seq), max(seq) FROM audit_log", &[]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (11, 31), "rows 1..10 gone, audit.pruned appended");
    let out = cli(&["audit", "verify", "--json"], &db.url, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // Deleting more old rows without a signed prune is tampering.
    c.batch_execute("SET session_replication_role = replica; DELETE FROM audit_log WHERE seq = 11").await.unwrap();
    let out = cli(&["audit", "verify"], &db.url, dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("first bad row 1: gap"), "{text}");

    let out = std::process::Command::new(palisade_bin())
        .args(["audit", "verify"])
        .env("PALISADE_SECRET", SECRET)
        .env("PALISADE_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("PALISADE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "could not run");
}

#[tokio::test]
async fn reading_filtering_and_exporting_the_log() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let mut bob = srv.user(&mut admin, "bob@palisade.test", "Velvet-Summit-38$", false).await;
    srv.browser()
        .post("/api/v1/auth/login", json!({ "email": "bob@palisade.test", "password": "nope-nope-nope" }))
        .await;
    assert_eq!(bob.get("/api/v1/audit").await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.get("/api/v1/audit/verify").await.status, StatusCode::FORBIDDEN);

    let r = admin.get("/api/v1/audit?action_prefix=auth.&limit=2").await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.body["entries"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert!(page[0]["seq"].as_i64() > page[1]["seq"].as_i64(), "newest first");
    let cursor = r.body["next_cursor"].as_i64().unwrap();
    let r = admin.get(&format!("/api/v1/audit?action_prefix=auth.&cursor={cursor}")).await;
    assert!(r.body["entries"].as_array().unwrap().iter().all(|e| e["seq"].as_i64().unwrap() < cursor));
    let r = admin.get("/api/v1/audit?action=auth.login").await;
    let outcomes: HashSet<&str> =
        r.body["entries"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, HashSet::from(["success", "failure"]));
    assert!(r.text.find("nope-nope-nope").is_none(), "no password in audit details");

    let export = admin.get("/api/v1/audit?format=jsonl").await;
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = export.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 4 && lines.iter().all(|l| l["row_hmac"].as_str().unwrap().len() == 64));
    let r = admin.get("/api/v1/audit?action=audit.export").await;
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 1, "the export itself was audited");

    let r = admin.get("/api/v1/audit/verify").await;
    assert_eq!((r.status, r.body["intact"].as_bool()), (StatusCode::OK, Some(true)), "{:?}", r.body);
    srv.db
        .client()
        .await
        .batch_execute("SET session_replication_role = replica; UPDATE audit_log SET outcome = 'success' WHERE seq = 4")
        .await
        .unwrap();
    let r = admin.get("/api/v1/audit/verify").await;
    assert_eq!(r.body["intact"], false);
    assert_eq!(r.body["finding"]["seq"], 4);
    assert_eq!(r.body["finding"]["reason"], "hmac_mismatch");
    let r = admin.get("/api/v1/audit?format=csv").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    srv.shutdown().await;
}

#[tokio::test]
async fn security_events_each_leave_a_row() {
    let srv = TestServer::start().await;
    let setup_fail = srv
        .browser()
        .post(
            "/api/v1/setup/complete",
            json!({ "token": "x".repeat(43), "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(setup_fail.status, StatusCode::NOT_FOUND);
    let mut admin = srv.admin().await;
    let mut carol = srv.user(&mut admin, "carol@palisade.test", "Velvet-Summit-38$", false).await;
    let mut other = srv.browser();
    other.post("/api/v1/auth/login", json!({ "email": "carol@palisade.test", "password": "Velvet-Summit-38$" })).await;
    for _ in 0..5 {
        srv.browser()
            .post("/api/v1/auth/login", json!({ "email": "mallory@palisade.test", "password": "Wrong-Password-9!" }))
            .await;
    }
    let sessions = carol.get("/api/v1/auth/sessions").await;
    let other_id = sessions.body["sessions"].as_array().unwrap().iter().find(|s| s["is_current"] == false).unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    carol.post(&format!("/api/v1/auth/sessions/{other_id}/revoke"), json!({})).await;
    carol.post("/api/v1/auth/sessions/revoke-others", json!({})).await;
    carol
        .post(
            "/api/v1/auth/change-password",
            json!({ "current_password": "Velvet-Summit-38$", "new_password": "Granite-Meadow-51#" }),
        )
        .await;
    carol.post("/api/v1/auth/logout", json!({})).await;
    let uid = admin.get("/api/v1/users").await.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "carol@palisade.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    admin.patch(&format!("/api/v1/users/{uid}"), json!({ "is_active": false })).await;
    admin.post(&format!("/api/v1/users/{uid}/sessions/revoke"), json!({})).await;
    admin.delete(&format!("/api/v1/users/{uid}")).await;
    let c = srv.db.client().await;
    let rows = c.query("SELECT DISTINCT action || ':' || outcome FROM audit_log", &[]).await.unwrap();
    let got: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    for want in [
        "setup.attempt:denied",
        "setup.completed:success",
        "auth.login:success",
        "auth.login:failure",
        "auth.lockout:success",
        "auth.session_revoked:success",
        "auth.other_sessions_revoked:success",
        "auth.password_changed:success",
        "auth.logout:success",
        "user.created:success",
        "user.updated:success",
        "auth.sessions_revoked_by_admin:success",
        "user.deleted:success",
    ] {
        assert!(got.contains(want), "missing {want}; have {got:?}");
    }
    srv.shutdown().await;
}

/// An action and its audit row share fate: when PostgreSQL refuses the
/// audit INSERT, the caller is told the action did not happen, the change
/// is not visible, no connection is left inside a transaction, and the next
/// action is recorded on an unbroken chain.
#[tokio::test]
async fn an_action_whose_audit_row_fails_is_not_done() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let c = srv.db.client().await;
    let before = contiguous(&c).await;
    c.batch_execute(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'simulated audit storage failure'; END $$;
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
    )
    .await
    .unwrap();

    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "Must Not Stick" })).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("not performed"), "{:?}", r.body);
    let me = admin.get("/api/v1/auth/me").await;
    assert_ne!(me.body["user"]["display_name"], "Must Not Stick", "the change was rolled back with its audit row");
    assert_eq!(contiguous(&c).await, before);
    let stuck: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stuck, 0, "a failed append leaves no open transaction behind");

    c.batch_execute("DROP TRIGGER refuse_audit ON audit_log").await.unwrap();
    let r = admin.patch("/api/v1/auth/me", json!({ "display_name": "Sticks Now" })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(admin.get("/api/v1/auth/me").await.body["user"]["display_name"], "Sticks Now");
    assert_eq!(contiguous(&c).await, before + 1);
    let report = stop_and_verify(srv).await;
    assert!(report.intact, "{:?}", report.finding);
}

/// Each verification holds a connection per segment for as long as it
/// walks, so the server runs one at a time: a second request while one is
/// running gets 409 `verification_running` with Retry-After, not a second
/// walk; afterwards verification answers again.
#[tokio::test]
async fn overlapping_verifications_get_409_not_a_second_walk() {
    let srv = TestServer::start().await;
    let admin = srv.admin().await;
    // A chain long enough that two requests overlap: 100,000 rows signed
    // with the server's key, continuing from its head.
    let seq = common::chain::extend_chain(
        &Db::connect(&srv.db.url, 2).unwrap(),
        &keys_for(SECRET, &[]),
        100_000,
        "bulk.loaded",
    )
    .await;
    let mut a = admin;
    let mut b = Browser::new(&srv.base);
    b.cookies = a.cookies.clone();
    let (ra, rb) = tokio::join!(a.get("/api/v1/audit/verify"), b.get("/api/v1/audit/verify"));
    let (done, refused) = if ra.status == StatusCode::OK { (ra, rb) } else { (rb, ra) };
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["intact"], true, "{}", done.text);
    assert_eq!(done.body["rows_checked"], seq);
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "verification_running"), "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("5"));
    let again = a.get("/api/v1/audit/verify").await;
    assert_eq!((again.status, again.body["intact"].clone()), (StatusCode::OK, json!(true)));
}

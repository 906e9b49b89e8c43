//! TLS to PostgreSQL: a throwaway cluster that accepts TCP connections
//! only over TLS (`hostssl`), with a certificate for `localhost` from a test
//! CA made here with the openssl CLI. With `sslmode=require` Palisade
//! connects and verifies the chain and the name; a wrong CA, a wrong name
//! or no TLS at all each fail with an error that says why, and the server
//! binary refuses to start rather than fall back to plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::palisade_bin;
use common::tempdir;
use palisade::store::Db;

fn pg_bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    if let Some(p) = on_path {
        return p;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (Debian package postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join(name).is_file())
        .collect();
    dirs.sort();
    dirs.pop().expect("PostgreSQL server binaries").join(name)
}

/// PostgreSQL refuses to run as root; as root the cluster runs as `postgres`.
fn owner() -> Option<(u32, u32)> {
    // SAFETY (test): reading our effective uid.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postgres system user")
    };
    Some((id("-u"), id("-g")))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn as_owner(bin: PathBuf, owner: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// A CA and a server certificate for `localhost` signed by it.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let ca = dir.join(format!("{name}.pem"));
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.pem"),
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    ca
}

fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ]));
}

struct Cluster {
    data: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let owner = owner();
        chown(dir, owner);
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        make_server_cert(dir, "test-ca");
        for f in ["server.key", "server.pem"] {
            chown(&dir.join(f), owner);
            std::fs::set_permissions(dir.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        }
        let data = dir.join("pgdata");
        run(as_owner(pg_bin("initdb"), owner).args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust"]));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\n\
             ssl_cert_file = '{d}/server.pem'\nssl_key_file = '{d}/server.key'\nfsync = off\n",
            d = dir.display()
        );
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pgconf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pgconf).unwrap();
        // TCP only over TLS: a plaintext connection finds no pg_hba line.
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").unwrap();
        let log = dir.join("postgres.log");
        run(as_owner(pg_bin("pg_ctl"), owner).args([
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ]));
        Cluster { data, owner, port }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_owner(pg_bin("pg_ctl"), self.owner)
            .args(["-D", self.data.to_str().unwrap_or_default(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A TLS-only cluster, the CA that signed its certificate and one that
/// did not. Bind the result in this order: the cluster stops before its
/// directory is removed.
fn tls_cluster() -> (tempdir::Dir, PathBuf, PathBuf, Cluster) {
    let dir = tempdir::Dir::new();
    let ca = make_ca(dir.path(), "test-ca");
    let other = make_ca(dir.path(), "other-ca");
    let pg = Cluster::start(dir.path());
    (dir, ca, other, pg)
}

async fn try_query(url: &str, ca: Option<&Path>) -> Result<bool, String> {
    let db = Db::connect_with_ca(url, 2, ca).map_err(|e| e.to_string())?;
    let conn = db.conn().await.map_err(|e| e.to_string())?;
    let row = conn
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_require_verifies_the_chain_and_the_name() {
    let (dir, ca, other, pg) = tls_cluster();

    // The right CA and the certificate's name: encrypted, per pg_stat_ssl.
    let ok = try_query(&pg.url("localhost", "?sslmode=require"), Some(&ca)).await;
    assert_eq!(ok, Ok(true));

    // A CA that did not sign the server's certificate.
    let err = try_query(&pg.url("localhost", "?sslmode=require"), Some(&other)).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    assert!(err.to_lowercase().contains("unknownissuer") || err.contains("issuer"), "{err}");

    // The right CA, but a name the certificate does not carry.
    let err = try_query(&pg.url("127.0.0.1", "?sslmode=require"), Some(&ca)).await.unwrap_err();
    assert!(err.contains("certificate not valid for name"), "{err}");

    // No TLS asked for: plaintext, which this server refuses on TCP.
    let err = try_query(&pg.url("localhost", ""), Some(&ca)).await.unwrap_err();
    assert!(err.contains("no encryption"), "{err}");

    // An unreadable or empty CA file is a configuration error up front.
    let err = Db::connect_with_ca(&pg.url("localhost", "?sslmode=require"), 2, Some(&dir.path().join("missing.pem")))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("PALISADE_DATABASE_CA: cannot read"), "{err}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let err = Db::connect_with_ca(&pg.url("localhost", "?sslmode=require"), 2, Some(&dir.path().join("empty.pem")))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("holds no PEM certificate"), "{err}");

    // Connections outside the pool (the verifier's) use the same TLS.
    let db = Db::connect_with_ca(&pg.url("localhost", "?sslmode=require"), 2, Some(&ca)).unwrap();
    let (client, _driver) = db.dedicated().await.unwrap();
    let ssl: bool =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(ssl && db.is_tls());
}

#[tokio::test]
async fn the_server_migrates_over_tls_and_refuses_an_unverified_one() {
    let (_dir, ca, other, pg) = tls_cluster();
    let data = tempdir::Dir::new();
    let migrate = |ca: &Path| {
        Command::new(palisade_bin())
            .arg("migrate")
            .env_clear()
            .env("PALISADE_ENV", "dev")
            .env("PALISADE_DATA_DIR", data.path())
            .env("PALISADE_DATABASE_URL", pg.url("localhost", "?sslmode=require"))
            .env("PALISADE_DATABASE_CA", ca)
            .output()
            .unwrap()
    };
    let refused = migrate(&other);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    let out = migrate(&ca);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = Db::connect_with_ca(&pg.url("localhost", "?sslmode=require"), 2, Some(&ca)).unwrap();
    let conn = c.conn().await.unwrap();
    let n: i64 = conn.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, palisade::store::migrate::MIGRATIONS.len());
}

//! The embedded default database: with no `PALISADE_DATABASE_URL`, `serve`
//! runs a private PostgreSQL cluster under the data directory, from the
//! PostgreSQL server binaries installed on the machine, listening only on a
//! Unix socket in a 0700 directory (no TCP port), and stops it on exit.
//!
//! PostgreSQL refuses to run as root; when we are root the cluster runs as
//! the `postgres` system user, which owns the cluster directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found on PATH or under /usr/lib/postgresql/*/bin; \
         install the Debian package `postgresql` (apt-get install postgresql), or point \
         PALISADE_DATABASE_URL at an existing server"
    )]
    NoBinaries,
    #[error("running as root, and there is no `postgres` system user to run the embedded cluster as (PostgreSQL refuses to run as root); create one or set PALISADE_DATABASE_URL")]
    NoServiceUser,
    #[error("embedded PostgreSQL data directory {0} is in use by a running server (pid {1}); another `palisade serve` may be using this PALISADE_DATA_DIR")]
    InUse(PathBuf, i32),
    #[error("{step}: {source}")]
    Io { step: &'static str, source: std::io::Error },
    #[error("{0} failed; see {1}")]
    Command(&'static str, PathBuf),
    #[error("embedded PostgreSQL did not become ready within {0:?}; see {1}")]
    NotReady(Duration, PathBuf),
}

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    move |source| EmbeddedError::Io { step, source }
}

/// Owner of the server process. Call `stop` on shutdown.
pub struct EmbeddedPostgres {
    child: Child,
    socket_dir: PathBuf,
    log_path: PathBuf,
}

const PORT: u16 = 5432;
const SUPERUSER: &str = "palisade";
const DATABASE: &str = "palisade";

struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

fn find_binaries() -> Result<Binaries, EmbeddedError> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    };
    if let (Some(initdb), Some(postgres)) = (on_path("initdb"), on_path("postgres")) {
        return Ok(Binaries { initdb, postgres });
    }
    // Debian keeps server binaries off PATH, one directory per major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    let (_, bin) = versions.pop().ok_or(EmbeddedError::NoBinaries)?;
    Ok(Binaries { initdb: bin.join("initdb"), postgres: bin.join("postgres") })
}

/// (uid, gid) to run PostgreSQL as, or None to run as ourselves.
fn service_user() -> Result<Option<(u32, u32)>, EmbeddedError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    // SAFETY: getpwnam reads a static buffer; we copy the two integers out
    // before any other call could overwrite it, and check for NULL first.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(EmbeddedError::NoServiceUser);
    }
    // SAFETY: pw was checked non-null above and points to a valid passwd.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn prepare_dir(path: &Path, owner: Option<(u32, u32)>) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(path).map_err(io("create directory"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod directory"))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io("chown directory"))?;
    }
    Ok(())
}

fn command(bin: &Path, owner: Option<(u32, u32)>, log: &Path) -> Result<Command, EmbeddedError> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(io("open postgres log"))?;
    let log_err = log_file.try_clone().map_err(io("open postgres log"))?;
    let mut cmd = Command::new(bin);
    cmd.stdin(Stdio::null()).stdout(log_file).stderr(log_err).env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    Ok(cmd)
}

/// Unix socket paths are limited to ~107 bytes; a deep data directory
/// falls back to a per-directory folder under /tmp.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let preferred = data_dir.join("run");
    if preferred.as_os_str().len() + 20 < 100 {
        return preferred;
    }
    let digest = crate::security::keys::hmac_sha256(b"palisade-socket", &[preferred.as_os_str().as_encoded_bytes()]);
    PathBuf::from(format!("/tmp/palisade-{}", hex::encode(&digest[..6])))
}

/// Can `owner` (uid, gid) walk down to `dir`? PostgreSQL running as the
/// service user needs search permission on every ancestor.
fn reachable(dir: &Path, owner: (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.ancestors().all(|a| match std::fs::metadata(a) {
        Ok(m) => {
            let mode = m.mode();
            mode & 0o001 != 0 || (m.uid() == owner.0 && mode & 0o100 != 0) || (m.gid() == owner.1 && mode & 0o010 != 0)
        }
        Err(_) => false,
    })
}

/// Where the cluster lives: under the data directory, unless the service
/// user cannot reach it (a root-owned 0700 home directory, say). Then it
/// goes to a per-data-directory folder under /var/lib/palisade, and a note
/// in the data directory says where.
fn cluster_base(data_dir: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, EmbeddedError> {
    let Some(owner) = owner.filter(|o| !reachable(data_dir, *o)) else {
        return Ok(data_dir.to_path_buf());
    };
    let digest = crate::security::keys::hmac_sha256(b"palisade-cluster", &[data_dir.as_os_str().as_encoded_bytes()]);
    let base = PathBuf::from("/var/lib/palisade/embedded").join(hex::encode(&digest[..8]));
    std::fs::create_dir_all(&base).map_err(io("create /var/lib/palisade/embedded"))?;
    for dir in ["/var/lib/palisade", "/var/lib/palisade/embedded"] {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711));
    }
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).map_err(io("chmod cluster directory"))?;
    std::os::unix::fs::chown(&base, Some(owner.0), Some(owner.1)).map_err(io("chown cluster directory"))?;
    let note = format!(
        "The embedded PostgreSQL for this data directory lives in {} because the postgres user cannot reach {}.\n",
        base.display(),
        data_dir.display()
    );
    let _ = std::fs::write(data_dir.join("EMBEDDED_POSTGRES_LOCATION"), note);
    tracing::info!(cluster = %base.display(), "data directory is not reachable by the postgres user; keeping the embedded cluster elsewhere");
    Ok(base)
}

fn live_postmaster(pgdata: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()?;
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive.then_some(pid)
}

/// Connection settings for an embedded cluster another `palisade serve`
/// is already running on this data directory (so CLI tools can use it
/// without starting a second postmaster).
pub fn running_config(data_dir: &Path) -> Option<tokio_postgres::Config> {
    let data_dir = data_dir.canonicalize().ok()?;
    let base = cluster_base(&data_dir, service_user().ok()?).ok()?;
    live_postmaster(&base.join("pg"))?;
    let mut c = tokio_postgres::Config::new();
    c.host_path(socket_dir_for(&base)).port(PORT).user(SUPERUSER).dbname(DATABASE);
    Some(c)
}

impl EmbeddedPostgres {
    pub async fn start(data_dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let bins = find_binaries()?;
        let owner = service_user()?;
        std::fs::create_dir_all(data_dir).map_err(io("create data directory"))?;
        let data_dir = data_dir.canonicalize().map_err(io("resolve data directory"))?;
        if owner.is_some() {
            // The service user must be able to traverse to the cluster.
            let _ = std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711));
        }
        let base = cluster_base(&data_dir, owner)?;
        let pgdata = base.join("pg");
        let socket_dir = socket_dir_for(&base);
        let log_path = base.join("postgres.log");
        if !pgdata.join("PG_VERSION").is_file() {
            prepare_dir(&pgdata, owner)?;
            let _ = std::fs::remove_file(&log_path);
            tracing::info!(dir = %pgdata.display(), "initialising embedded PostgreSQL cluster");
            let status = command(&bins.initdb, owner, &log_path)?
                .arg("-D")
                .arg(&pgdata)
                .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C"])
                .status()
                .await
                .map_err(io("run initdb"))?;
            if !status.success() {
                return Err(EmbeddedError::Command("initdb", log_path));
            }
        }
        if let Some(pid) = live_postmaster(&pgdata) {
            return Err(EmbeddedError::InUse(pgdata, pid));
        }
        prepare_dir(&socket_dir, owner)?;
        let mut cmd = command(&bins.postgres, owner, &log_path)?;
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"])
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and only affects the child.
        // If Palisade dies without running `stop` (SIGKILL, panic=abort),
        // the kernel sends the cluster SIGINT, PostgreSQL's fast shutdown.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io("start postgres"))?;
        let mut me = EmbeddedPostgres { child, socket_dir, log_path };
        me.wait_ready(Duration::from_secs(30)).await?;
        me.ensure_database().await?;
        tracing::info!(socket = %me.socket_dir.display(), "embedded PostgreSQL is ready");
        Ok(me)
    }

    fn config_for(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir).port(PORT).user(SUPERUSER).dbname(dbname);
        c
    }

    /// Connection settings for the application database.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config_for(DATABASE)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), EmbeddedError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(EmbeddedError::Command("postgres", self.log_path.clone()));
            }
            if let Ok((client, conn)) = self.config_for("postgres").connect(tokio_postgres::NoTls).await {
                drop(client);
                drop(conn);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(EmbeddedError::NotReady(limit, self.log_path.clone()))
    }

    async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        let fail = |_| EmbeddedError::Command("create database", self.log_path.clone());
        let (client, conn) = self.config_for("postgres").connect(tokio_postgres::NoTls).await.map_err(fail)?;
        let task = tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
            .await
            .map_err(fail)?
            .is_some();
        if !exists {
            client.batch_execute(&format!("CREATE DATABASE {DATABASE}")).await.map_err(fail)?;
        }
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Fast shutdown (SIGINT), then SIGKILL if it has not exited in 30 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child process by pid.
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(_) => tracing::info!("embedded PostgreSQL stopped"),
            Err(_) => {
                tracing::warn!("embedded PostgreSQL did not stop in 30 s; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

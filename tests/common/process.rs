//! The real `palisade` binary as a child process, for tests that must kill
//! it (SIGKILL) or run two servers against one database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub setup_token: Option<String>,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn palisade_bin() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

impl ServerProcess {
    /// Start `palisade serve` and wait until it listens (or fails).
    pub fn spawn(envs: &[(&str, String)]) -> Result<ServerProcess, String> {
        let mut cmd = Command::new(palisade_bin());
        cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).env("PALISADE_LOG", "info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut token = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(t) = line.split("setup?token=").nth(1) {
                        token = Some(t.trim().to_string());
                    }
                    if line.contains("palisade is listening") {
                        let addr =
                            line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
                        return Ok(ServerProcess { child, addr, setup_token: token, log });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("exited with {status}: {}", log.lock().unwrap().join("\n")));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    return Err(log.lock().unwrap().join("\n"));
                }
            }
        }
        let _ = child.kill();
        Err("server did not start in 60 s".into())
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill9(&mut self) {
        // SAFETY (test): SIGKILL to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY (test): SIGTERM to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for a prod-mode server on a test database.
pub fn env_for(db_url: &str, data_dir: &std::path::Path, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PALISADE_ENV", "prod".into()),
        ("PALISADE_SECRET", secret.into()),
        ("PALISADE_DATABASE_URL", db_url.into()),
        ("PALISADE_DATA_DIR", data_dir.display().to_string()),
        ("PALISADE_BIND", "127.0.0.1:0".into()),
        ("PALISADE_PUBLIC_URL", "http://127.0.0.1:0".into()),
        ("PALISADE_AUDIT_CHECKPOINT_MS", "20".into()),
    ]
}

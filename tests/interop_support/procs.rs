//! Child processes (the real Python workers) in their own process groups,
//! with their output in log files. Dropping one stops its whole group, also
//! while a failing test unwinds, and prints the end of its log then.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    reaped: bool,
}

fn signal_group(pgid: u32, sig: i32) {
    // SAFETY (test): signals only the process group we created for our own
    // child (its pgid is its pid, set through `process_group(0)`).
    unsafe { libc::kill(-(pgid as i32), sig) };
}

impl Proc {
    /// Start `program args…` with exactly `envs` added to a minimal
    /// environment, in a new process group, output to `<dir>/<name>.log`.
    pub fn spawn(name: &str, program: &Path, args: &[&str], envs: &[(String, String)], dir: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).process_group(0);
        cmd.env_clear();
        for k in ["PATH", "LANG", "LC_ALL", "TMPDIR"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.env("HOME", dir).env("PYTHONUNBUFFERED", "1").env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {name} ({}): {e}", program.display()));
        Proc { name: name.to_string(), child, log, reaped: false }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics (with the log) if the process already exited.
    pub fn assert_running(&self) {
        if self.exited() {
            panic!("{} exited early:\n{}", self.name, self.tail(60));
        }
    }

    /// Whether the group leader exited, without reaping it: while it is a
    /// zombie its pid (our group id) cannot be reused by anyone else.
    fn exited(&self) -> bool {
        // SAFETY (test): waitid on our own child with WNOWAIT leaves it
        // waitable; `info` is a plain C struct we own.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r =
                libc::waitid(libc::P_PID, self.child.id(), &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
            r == 0 && info.si_pid() != 0
        }
    }

    fn wait_exit(&self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGTERM the group; a second SIGTERM makes RQ do a cold shutdown
    /// (which kills a running work horse, whose group is its own); then
    /// SIGKILL whatever is left of our group.
    pub fn stop(&mut self) {
        let pgid = self.child.id();
        if self.reaped {
            return;
        }
        signal_group(pgid, libc::SIGTERM);
        if !self.wait_exit(Duration::from_secs(3)) {
            signal_group(pgid, libc::SIGTERM);
            self.wait_exit(Duration::from_secs(5));
        }
        // The leader is at most a zombie here, so the group id is still
        // ours: stray members (a work horse, a dramatiq child) go too.
        signal_group(pgid, libc::SIGKILL);
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- last lines of {} ({}) ----\n{}", self.name, self.log.display(), self.tail(80));
        }
    }
}

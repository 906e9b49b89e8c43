//! Signed checkpoints and where they are kept.
//!
//! A checkpoint commits to the chain's length and head HMAC at a moment.
//! Kept outside the database, it is what reveals deleted tail rows and a
//! table restored to an older copy: the hash chain alone cannot. The sink
//! is a trait so checkpoints can also go to a remote, append-only store;
//! the default appends JSON lines to a file and fsyncs each one.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::canonical::Checkpoint;
use super::keys::AuditKeys;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("checkpoint sink {0}: {1}")]
    Io(String, std::io::Error),
    #[error("checkpoint line {line} of {sink} is malformed")]
    Malformed { sink: String, line: usize },
    #[error("checkpoint line {line} of {sink} is signed with an unknown key {key_id}")]
    UnknownKey { sink: String, line: usize, key_id: String },
    #[error("checkpoint line {line} of {sink} has a bad MAC (forged or edited)")]
    BadMac { sink: String, line: usize },
}

/// Somewhere checkpoints survive an attacker who controls the database.
pub trait CheckpointSink: Send + Sync {
    fn append(&self, cp: &Checkpoint) -> Result<(), SinkError>;
    /// Every checkpoint, oldest first, each MAC-checked.
    fn load(&self, keys: &AuditKeys) -> Result<Vec<Checkpoint>, SinkError>;
    fn describe(&self) -> String;
}

pub fn sign(keys: &AuditKeys, mut cp: Checkpoint) -> Checkpoint {
    let (id, key) = keys.checkpoints.signing();
    cp.key_id = id.to_string();
    cp.mac = key.mac(&cp.message());
    cp
}

pub enum CheckOutcome {
    Valid,
    UnknownKey,
    BadMac,
}

pub fn check(keys: &AuditKeys, cp: &Checkpoint) -> CheckOutcome {
    match keys.checkpoints.by_id(&cp.key_id) {
        None => CheckOutcome::UnknownKey,
        Some(key) if bool::from(key.mac(&cp.message()).ct_eq(&cp.mac)) => CheckOutcome::Valid,
        Some(_) => CheckOutcome::BadMac,
    }
}

pub struct FileSink {
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl FileSink {
    pub fn new(path: PathBuf) -> FileSink {
        FileSink { path, write_lock: Mutex::new(()) }
    }

    fn io(&self, e: std::io::Error) -> SinkError {
        SinkError::Io(self.path.display().to_string(), e)
    }
}

impl CheckpointSink for FileSink {
    fn append(&self, cp: &Checkpoint) -> Result<(), SinkError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut line = serde_json::to_vec(cp).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f =
            OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path).map_err(|e| self.io(e))?;
        // One write of a whole line to an O_APPEND file, then fsync: a
        // crash leaves either the full line or nothing usable.
        f.write_all(&line).map_err(|e| self.io(e))?;
        f.sync_data().map_err(|e| self.io(e))
    }

    fn load(&self, keys: &AuditKeys) -> Result<Vec<Checkpoint>, SinkError> {
        let sink = self.path.display().to_string();
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|e| self.io(e))?;
        let last = lines.len();
        for (i, text) in lines.into_iter().enumerate() {
            let line = i + 1;
            if text.trim().is_empty() {
                continue;
            }
            let cp: Checkpoint = match serde_json::from_str(&text) {
                Ok(cp) => cp,
                // A torn final line is what a crash mid-write leaves; it
                // carries no claim, so it is ignored. Anywhere else it is
                // tampering.
                Err(_) if line == last => continue,
                Err(_) => return Err(SinkError::Malformed { sink, line }),
            };
            match check(keys, &cp) {
                CheckOutcome::Valid => out.push(cp),
                CheckOutcome::UnknownKey => return Err(SinkError::UnknownKey { sink, line, key_id: cp.key_id }),
                CheckOutcome::BadMac => return Err(SinkError::BadMac { sink, line }),
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

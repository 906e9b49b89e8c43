//! Just enough RESP to own a Redis database for one test run: find an empty
//! database, claim it with a marker key (SET NX), flush it when done. Other
//! people's processes share this Redis, so a database that holds anything
//! is never touched.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const ADDR: &str = "127.0.0.1:6379";
const CLAIM_KEY: &str = "palisade:interop:claim";

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Option<String>),
    Error(String),
    Array(usize),
}

pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    pub fn connect() -> std::io::Result<Redis> {
        let addr = ADDR.parse().map_err(std::io::Error::other)?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let writer = stream.try_clone()?;
        Ok(Redis { reader: BufReader::new(stream), writer })
    }

    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.writer.write_all(out.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let (tag, rest) = line.split_at(line.len().min(1));
        let bad = || std::io::Error::other(format!("unexpected redis reply {line:?}"));
        Ok(match tag {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "*" => Reply::Array(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0u8; n as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// Whether anything answers PING on 127.0.0.1:6379.
pub fn answers() -> bool {
    Redis::connect().and_then(|mut r| r.cmd(&["PING"])).is_ok_and(|r| r == Reply::Simple("PONG".into()))
}

/// A database this run owns; flushed (and so released) on drop.
pub struct ClaimedDb {
    pub db: u32,
}

impl ClaimedDb {
    /// Claim an empty database, trying the high numbers first (people tend
    /// to use 0 and the low ones).
    pub fn claim(label: &str) -> ClaimedDb {
        let mut r = Redis::connect().expect("Redis on 127.0.0.1:6379 (scripts/test.sh starts one when none answers)");
        for db in (1..=15).rev() {
            let n = db.to_string();
            if r.cmd(&["SELECT", &n]).expect("SELECT") != Reply::Simple("OK".into()) {
                continue;
            }
            if r.cmd(&["DBSIZE"]).expect("DBSIZE") != Reply::Int(0) {
                continue;
            }
            let owner = format!("{label} pid={}", std::process::id());
            let set = r.cmd(&["SET", CLAIM_KEY, &owner, "NX", "EX", "3600"]).expect("SET");
            // Lost a race, or someone wrote between DBSIZE and SET: move on.
            if set == Reply::Simple("OK".into()) && r.cmd(&["DBSIZE"]).expect("DBSIZE") == Reply::Int(1) {
                return ClaimedDb { db };
            }
        }
        panic!("no empty Redis database among 1..=15 to run the interop test in");
    }

    pub fn url(&self) -> String {
        format!("redis://{ADDR}/{}", self.db)
    }
}

impl Drop for ClaimedDb {
    fn drop(&mut self) {
        if let Ok(mut r) = Redis::connect() {
            let _ = r.cmd(&["SELECT", &self.db.to_string()]);
            // Only our own database: it held nothing before we claimed it.
            let _ = r.cmd(&["FLUSHDB"]);
        }
    }
}

//! A resolver the test controls, injected into the server's outbound
//! client: answers from a table (a sequence per name, the last answer
//! repeating) and counts lookups. Names it does not know fail, so nothing
//! in a test ever reaches the real DNS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use palisade::security::ssrf::{Resolve, ResolveFuture};

/// Per name: the answers in order, and how many lookups so far.
type Answers = HashMap<String, (Vec<Vec<IpAddr>>, usize)>;

#[derive(Default)]
pub struct FakeDns {
    answers: Mutex<Answers>,
}

impl FakeDns {
    pub fn new() -> Arc<FakeDns> {
        Arc::new(FakeDns::default())
    }

    /// Every lookup of `name` answers `addrs`.
    pub fn set(&self, name: &str, addrs: &[&str]) {
        self.sequence(name, &[addrs]);
    }

    /// Lookup n answers `seq[n]`; later lookups repeat the last entry.
    pub fn sequence(&self, name: &str, seq: &[&[&str]]) {
        let parsed = seq.iter().map(|a| a.iter().map(|s| s.parse().unwrap()).collect()).collect();
        self.answers.lock().unwrap().insert(name.to_string(), (parsed, 0));
    }

    pub fn lookups(&self, name: &str) -> usize {
        self.answers.lock().unwrap().get(name).map_or(0, |(_, n)| *n)
    }
}

impl Resolve for FakeDns {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let mut map = self.answers.lock().unwrap();
            match map.get_mut(host) {
                Some((seq, n)) => {
                    let answer = seq[(*n).min(seq.len() - 1)].clone();
                    *n += 1;
                    Ok(answer)
                }
                None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such name")),
            }
        })
    }
}

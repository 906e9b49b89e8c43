//! A tiny HTTP/1.1 receiver for outbound tests: records every request
//! (peer, method, path, headers, body) and answers with a status the test
//! sets, closing each connection so every delivery dials afresh. It can
//! also blackhole: accept connections and never answer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct Received {
    pub peer: SocketAddr,
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<AtomicU16>,
    pub blackhole: Arc<AtomicBool>,
    /// Body of every answer (default `ok`).
    pub reply_body: Arc<Mutex<Vec<u8>>>,
    arrived: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// Listen on a given address (restart on a port the server knows).
    pub async fn bind(addr: SocketAddr) -> Receiver {
        for _ in 0..50 {
            if let Ok(l) = TcpListener::bind(addr).await {
                return Receiver::on(l);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not re-bind {addr}");
    }

    fn on(listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let blackhole = Arc::new(AtomicBool::new(false));
        let arrived = Arc::new(Notify::new());
        let reply_body = Arc::new(Mutex::new(b"ok".to_vec()));
        let task = tokio::spawn({
            let (got, status, blackhole, arrived) = (got.clone(), status.clone(), blackhole.clone(), arrived.clone());
            let reply_body = reply_body.clone();
            async move {
                loop {
                    let Ok((sock, peer)) = listener.accept().await else { break };
                    let (got, status, blackhole, arrived) =
                        (got.clone(), status.clone(), blackhole.clone(), arrived.clone());
                    let body = reply_body.lock().unwrap().clone();
                    tokio::spawn(async move {
                        if blackhole.load(Ordering::SeqCst) {
                            // Hold the socket open, never read or answer.
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            drop(sock);
                            return;
                        }
                        if let Some(r) = read_request(sock, peer, status.load(Ordering::SeqCst), &body).await {
                            got.lock().unwrap().push(r);
                            arrived.notify_waiters();
                        }
                    });
                }
            }
        });
        Receiver { addr, got, status, blackhole, reply_body, arrived, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until at least `n` requests arrived (or `wait` passes).
    pub async fn wait_for(&self, n: usize, wait: Duration) -> Vec<Received> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            if self.count() >= n {
                return self.all();
            }
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return self.all();
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), self.arrived.notified()).await;
        }
    }

    /// Stop listening (the port is free again).
    pub fn stop(self) -> SocketAddr {
        self.task.abort();
        self.addr
    }
}

async fn read_request(mut sock: TcpStream, peer: SocketAddr, status: u16, reply_body: &[u8]) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    // A 3xx points back at this receiver, so a client that followed it
    // would show up as a second request.
    let location = if (300..400).contains(&status) {
        format!("Location: http://{}/followed\r\n", sock.local_addr().ok()?)
    } else {
        String::new()
    };
    let head =
        format!("HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n", reply_body.len());
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(reply_body).await;
    let _ = sock.shutdown().await;
    Some(Received { peer, method, path, headers, body })
}

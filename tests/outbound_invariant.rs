//! ARCHITECTURE.md invariant: nothing outside `src/outbound/` builds an
//! HTTP client or opens an SMTP (or any other outbound) connection, so
//! every way out of the process is reviewed in one place and user-supplied
//! destinations cannot bypass the SSRF policy. This scans the source tree;
//! adding such code elsewhere fails here with the file and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Ways to build a client or open a connection. Parsing an address with
/// `lettre::Address` or `lettre::message::Mailbox` is allowed anywhere.
const FORBIDDEN: [&str; 14] = [
    "reqwest::Client",
    "reqwest::ClientBuilder",
    "reqwest::get(",
    "reqwest::blocking",
    "reqwest::dns",
    "Client::builder(",
    "AsyncSmtpTransport",
    "SmtpTransport",
    "SmtpConnection",
    "lettre::transport",
    "hyper_util::client",
    "TcpStream::connect",
    "UdpSocket::bind",
    "ureq::",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_src_outbound_reaches_out() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let outbound = src.join("outbound");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the scan found too few files; is the path right?");
    let mut offenders = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&outbound)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(p) = FORBIDDEN.iter().find(|p| code.contains(*p)) {
                offenders.push(format!("{}:{}: `{p}`", file.strip_prefix(root).unwrap().display(), n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "outbound code outside src/outbound/:\n{}", offenders.join("\n"));
    // And the module itself still holds the clients (the scan is live).
    let http = std::fs::read_to_string(outbound.join("http.rs")).unwrap();
    assert!(http.contains("reqwest::Client::builder()"));
    let smtp = std::fs::read_to_string(outbound.join("smtp.rs")).unwrap();
    assert!(smtp.contains("AsyncSmtpTransport"));
}

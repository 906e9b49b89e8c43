//! `palisade check --deploy`: named checks an operator runs before going
//! live. Each prints PASS, WARN or FAIL with a reason; any FAIL exits 1.

use std::net::IpAddr;

use crate::config::{Config, Env};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

pub struct Finding {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
}

fn f(name: &'static str, level: Level, detail: impl Into<String>) -> Finding {
    Finding { name, level, detail: detail.into() }
}

fn is_local_host(host: Option<&str>) -> bool {
    match host {
        None => true,
        Some(h) => {
            h == "localhost" || h.starts_with('/') || h.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
        }
    }
}

pub fn run_checks(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(match config.env {
        Env::Prod => f("environment", Level::Pass, "PALISADE_ENV=prod"),
        Env::Dev => f("environment", Level::Fail, "PALISADE_ENV=dev relaxes cookie security; use prod"),
    });
    out.push(if config.secret_is_ephemeral {
        f(
            "secret_length",
            Level::Fail,
            "PALISADE_SECRET is not set; sessions and agent keys would not survive a restart",
        )
    } else if config.secret.len() < 48 {
        f(
            "secret_length",
            Level::Warn,
            format!("PALISADE_SECRET is {} bytes; 48 or more random bytes are recommended", config.secret.len()),
        )
    } else {
        f("secret_length", Level::Pass, format!("PALISADE_SECRET is {} bytes", config.secret.len()))
    });
    let public_https = config.public_url.scheme() == "https";
    let public_local = is_local_host(config.public_url.host_str());
    out.push(match (public_https, public_local) {
        (true, _) => f("public_url_scheme", Level::Pass, format!("{} uses https", config.public_url)),
        (false, true) => {
            f("public_url_scheme", Level::Warn, "public URL is plain http on loopback; fine for a local trial only")
        }
        (false, false) => f(
            "public_url_scheme",
            Level::Fail,
            "public URL must be https: session cookies are Secure and __Host- prefixed",
        ),
    });
    let bind_local = config.bind.ip().is_loopback();
    out.push(match (bind_local, config.trusted_proxies.is_empty()) {
        (true, _) => f("bind_address", Level::Pass, format!("{} is loopback; a TLS proxy on this host forwards to it", config.bind)),
        (false, false) => f("bind_address", Level::Pass, format!("{} with trusted proxies configured", config.bind)),
        (false, true) => f("bind_address", Level::Warn, format!(
            "{} is reachable from the network over plain HTTP; terminate TLS in front and make sure this port is not exposed", config.bind)),
    });
    out.push(if config.trusted_proxies.trusts_everything() {
        f("trusted_proxies", Level::Fail, "a trusted proxy CIDR covers every address: any client can forge X-Forwarded-For and dodge rate limits")
    } else if config.trusted_proxies.is_empty() && public_https && bind_local {
        f("trusted_proxies", Level::Warn, "TLS is terminated by a proxy but PALISADE_TRUSTED_PROXIES is empty: every client shares the proxy's address, so one client's rate limit blocks all")
    } else {
        f("trusted_proxies", Level::Pass, format!("{} trusted proxy range(s)", config.trusted_proxies.nets().len()))
    });
    out.push(match &config.database_url {
        None => f(
            "database",
            Level::Warn,
            "embedded PostgreSQL under the data directory; use a managed server with backups for production",
        ),
        Some(url) => {
            let parsed = url.parse::<tokio_postgres::Config>().ok();
            let host = parsed.as_ref().and_then(|c| match c.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => Some(h.clone()),
                Some(tokio_postgres::config::Host::Unix(p)) => Some(p.display().to_string()),
                None => None,
            });
            let tls = parsed.is_some_and(|c| c.get_ssl_mode() == tokio_postgres::config::SslMode::Require);
            match (is_local_host(host.as_deref()), tls) {
                (_, true) => f(
                    "database",
                    Level::Pass,
                    "external PostgreSQL over TLS; its certificate and name are verified (PALISADE_DATABASE_CA or the system roots)",
                ),
                (true, false) => f("database", Level::Pass, "external PostgreSQL on this host"),
                (false, false) => f(
                    "database",
                    Level::Fail,
                    "PostgreSQL on another host without TLS: add sslmode=require to PALISADE_DATABASE_URL (and PALISADE_DATABASE_CA for a private CA)",
                ),
            }
        }
    });
    out.push(smtp_check(config));
    out.push(outbound_check(config));
    let cp = &config.audit_checkpoints;
    out.push(if cp.starts_with(&config.data_dir) && config.database_url.is_none() {
        f("audit_checkpoints", Level::Warn, format!(
            "{} sits next to the embedded database: an attacker with that disk could rewrite both; point PALISADE_AUDIT_CHECKPOINTS elsewhere", cp.display()))
    } else {
        f("audit_checkpoints", Level::Pass, format!("checkpoints go to {}", cp.display()))
    });
    out
}

/// The notification allow-list widens what project admins can make the
/// server contact; say so when it is open.
fn outbound_check(config: &Config) -> Finding {
    let p = &config.outbound;
    let mut opened = Vec::new();
    if p.allow_loopback {
        opened.push("loopback receivers (services on this host, on the listed ports)".to_string());
    }
    if p.allow_http {
        opened.push("plain http (messages and headers unencrypted)".to_string());
    }
    if !p.allowed_cidrs.is_empty() {
        let nets: Vec<String> = p.allowed_cidrs.iter().map(|n| n.to_string()).collect();
        opened.push(format!("private ranges {}", nets.join(", ")));
    }
    if opened.is_empty() {
        f("outbound_policy", Level::Pass, "notification channels reach public https receivers only")
    } else {
        f("outbound_policy", Level::Warn, format!("notification channels may reach {}", opened.join("; ")))
    }
}

fn smtp_check(config: &Config) -> Finding {
    let Some(raw) = config.smtp_url.as_deref() else {
        return f(
            "smtp",
            Level::Warn,
            "PALISADE_SMTP_URL is not set: invitation links are shown to the admin instead, password reset by email is off",
        );
    };
    if let Err(e) =
        crate::outbound::mail::Mailer::from_config(Some(raw), config.smtp_from.as_deref(), &config.public_url)
    {
        return f("smtp", Level::Fail, e.to_string());
    }
    let url = url::Url::parse(raw).ok();
    let encrypted = url
        .as_ref()
        .is_some_and(|u| u.scheme() == "smtps" || u.query_pairs().any(|(k, v)| k == "tls" && v == "required"));
    if encrypted || is_local_host(url.as_ref().and_then(|u| u.host_str())) {
        f("smtp", Level::Pass, "mail goes to the relay over TLS or on this host")
    } else {
        f(
            "smtp",
            Level::Warn,
            "mail (with one-time links) travels to the relay unencrypted; use smtps:// or ?tls=required",
        )
    }
}

/// Print the findings; exit code 1 when any check failed.
pub fn deploy(config: &Config) -> i32 {
    let findings = run_checks(config);
    for x in &findings {
        let tag = match x.level {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{tag:<4}  {:<18} {}", x.name, x.detail);
    }
    i32::from(findings.iter().any(|x| x.level == Level::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned()).unwrap()
    }

    fn level(findings: &[Finding], name: &str) -> Level {
        findings.iter().find(|x| x.name == name).map(|x| x.level).unwrap()
    }

    #[test]
    fn good_production_config_passes() {
        let c = cfg(&[
            ("PALISADE_SECRET", &"s".repeat(64)),
            ("PALISADE_PUBLIC_URL", "https://palisade.example.com"),
            ("PALISADE_TRUSTED_PROXIES", "127.0.0.1"),
            ("PALISADE_DATABASE_URL", "postgres://palisade@127.0.0.1/palisade"),
            ("PALISADE_SMTP_URL", "smtps://mailer:pw@smtp.example.com"),
        ]);
        let out = run_checks(&c);
        assert!(
            out.iter().all(|x| x.level == Level::Pass),
            "{:?}",
            out.iter().map(|x| (x.name, x.level, &x.detail)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn each_check_can_fail_or_warn() {
        let c = cfg(&[("PALISADE_ENV", "dev"), ("PALISADE_OUTBOUND_ALLOW_CIDRS", "10.0.0.0/8")]);
        let out = run_checks(&c);
        assert_eq!(level(&out, "outbound_policy"), Level::Warn);
        assert_eq!(level(&out, "environment"), Level::Fail);
        assert_eq!(level(&out, "secret_length"), Level::Fail);
        let c = cfg(&[
            ("PALISADE_SECRET", &"s".repeat(40)),
            ("PALISADE_PUBLIC_URL", "http://palisade.example.com"),
            ("PALISADE_TRUSTED_PROXIES", "0.0.0.0/0"),
            ("PALISADE_BIND", "0.0.0.0:7700"),
        ]);
        let out = run_checks(&c);
        assert_eq!(level(&out, "secret_length"), Level::Warn);
        assert_eq!(level(&out, "public_url_scheme"), Level::Fail);
        assert_eq!(level(&out, "trusted_proxies"), Level::Fail);
        assert_eq!(level(&out, "database"), Level::Warn);
        assert_eq!(level(&out, "audit_checkpoints"), Level::Warn);
        assert_eq!(level(&out, "smtp"), Level::Warn, "no SMTP configured");
        let c = cfg(&[("PALISADE_SECRET", &"s".repeat(64)), ("PALISADE_SMTP_URL", "smtp://relay.example.com")]);
        assert_eq!(level(&run_checks(&c), "smtp"), Level::Warn, "unencrypted relay");
        let c = cfg(&[("PALISADE_SECRET", &"s".repeat(64)), ("PALISADE_SMTP_URL", "smtp://u:p@relay.example.com")]);
        assert_eq!(level(&run_checks(&c), "smtp"), Level::Fail, "credentials in clear");
        let c = cfg(&[
            ("PALISADE_SECRET", &"s".repeat(64)),
            ("PALISADE_PUBLIC_URL", "https://p.example.com"),
            ("PALISADE_BIND", "0.0.0.0:7700"),
        ]);
        assert_eq!(level(&run_checks(&c), "bind_address"), Level::Warn);
        let c = cfg(&[("PALISADE_SECRET", &"s".repeat(64)), ("PALISADE_PUBLIC_URL", "https://p.example.com")]);
        assert_eq!(level(&run_checks(&c), "trusted_proxies"), Level::Warn);
        let remote = |url: &str| {
            level(
                &run_checks(&cfg(&[("PALISADE_SECRET", &"s".repeat(64)), ("PALISADE_DATABASE_URL", url)])),
                "database",
            )
        };
        assert_eq!(remote("postgres://app@db.internal/palisade"), Level::Fail, "remote database in plaintext");
        assert_eq!(remote("postgres://app@db.internal/palisade?sslmode=require"), Level::Pass);
        assert_eq!(remote("postgres://app@127.0.0.1/palisade"), Level::Pass);
    }
}

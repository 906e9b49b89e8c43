//! Configuration from the environment (`PALISADE_*`), validated once at
//! start-up. Every knob has a documented default (README, "Configuration").
//! `Config` holds the master secret, so it deliberately has no `Debug`;
//! `summary()` lists the non-secret values for the start-up log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::security::client_ip::TrustedProxies;
use crate::security::secret::{MasterSecret, SecretError};
use crate::security::ssrf::OutboundPolicy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Env {
    Prod,
    Dev,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("PALISADE_SECRET is required when PALISADE_ENV=prod (generate one with `openssl rand -base64 48`)")]
    SecretRequired,
    #[error("PALISADE_ENV=dev refuses to bind {0}: dev mode relaxes cookie security and may only listen on loopback")]
    DevNonLoopback(SocketAddr),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

pub struct Config {
    pub env: Env,
    pub bind: SocketAddr,
    pub public_url: url::Url,
    pub secret: MasterSecret,
    /// Earlier master secrets (`PALISADE_PREVIOUS_SECRETS`, comma-separated):
    /// still accepted for verifying what they signed (audit rows, agent
    /// tokens), never used to sign anything new.
    pub previous_secrets: Vec<MasterSecret>,
    /// True when no `PALISADE_SECRET` was given in dev and one was minted.
    pub secret_is_ephemeral: bool,
    pub database_url: Option<String>,
    /// PEM CA bundle that verifies the database server (with
    /// `sslmode=require`); None: the system's trust store.
    pub database_ca: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub trusted_proxies: TrustedProxies,
    pub audit_checkpoints: PathBuf,
    pub smtp_url: Option<String>,
    /// Sender of invitation and reset mail; default `palisade@<public host>`.
    pub smtp_from: Option<String>,
    pub max_body_bytes: usize,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    pub limiter_max_keys: usize,
    pub hash_concurrency: usize,
    pub db_pool_size: usize,
    pub extra_allowed_hosts: Vec<String>,
    pub security_contact: String,
    pub audit_allow_broken_chain: bool,
    pub audit_checkpoint_interval: Duration,
    /// How often the whole chain is re-verified in the background; None
    /// turns the scheduled check off.
    pub audit_verify_interval: Option<Duration>,
    pub agent_idle_timeout: Duration,
    pub agent_hello_timeout: Duration,
    pub agent_body_bytes: usize,
    pub ingest_budget: usize,
    /// What notification channels may reach (`PALISADE_OUTBOUND_*`). Set
    /// only here, never through the API.
    pub outbound: OutboundPolicy,
    /// Total deadline of one outbound HTTP request or SMTP delivery.
    pub outbound_timeout: Duration,
    /// How long an agent must stay disconnected before `agent.offline` fires.
    pub agent_offline_grace: Duration,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Build from any key lookup (the process environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let env = match var("PALISADE_ENV").as_deref() {
            None | Some("prod") => Env::Prod,
            Some("dev") => Env::Dev,
            Some(other) => return Err(invalid("PALISADE_ENV", format!("must be `prod` or `dev`, not {other:?}"))),
        };
        let bind: SocketAddr = parse_or(var("PALISADE_BIND"), "127.0.0.1:7700", "PALISADE_BIND")?;
        if env == Env::Dev && !bind.ip().is_loopback() {
            return Err(ConfigError::DevNonLoopback(bind));
        }
        let public_url = var("PALISADE_PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:7700".into());
        let public_url = parse_public_url(&public_url)?;

        let (secret, secret_is_ephemeral) = match get("PALISADE_SECRET") {
            Some(s) if !s.trim().is_empty() => (MasterSecret::from_string(s)?, false),
            _ if env == Env::Dev => (MasterSecret::ephemeral(), true),
            _ => return Err(ConfigError::SecretRequired),
        };

        let mut previous_secrets = Vec::new();
        for part in get("PALISADE_PREVIOUS_SECRETS").unwrap_or_default().split(',') {
            if !part.trim().is_empty() {
                previous_secrets.push(MasterSecret::from_string(part.to_string())?);
            }
        }

        let data_dir = PathBuf::from(var("PALISADE_DATA_DIR").unwrap_or_else(|| "./palisade-data".into()));
        let audit_checkpoints = var("PALISADE_AUDIT_CHECKPOINTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("audit-checkpoints.log"));
        let trusted_proxies = TrustedProxies::parse(&var("PALISADE_TRUSTED_PROXIES").unwrap_or_default())
            .map_err(|e| invalid("PALISADE_TRUSTED_PROXIES", e.to_string()))?;

        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Ok(Config {
            env,
            bind,
            public_url,
            secret,
            secret_is_ephemeral,
            previous_secrets,
            database_url: var("PALISADE_DATABASE_URL"),
            database_ca: var("PALISADE_DATABASE_CA").map(PathBuf::from),
            data_dir,
            trusted_proxies,
            audit_checkpoints,
            smtp_url: var("PALISADE_SMTP_URL"),
            smtp_from: var("PALISADE_SMTP_FROM"),
            max_body_bytes: bounded(
                var("PALISADE_MAX_BODY_BYTES"),
                65_536,
                1_024,
                16 << 20,
                "PALISADE_MAX_BODY_BYTES",
            )?,
            session_idle: secs(var("PALISADE_SESSION_IDLE_SECS"), 1_800, 60, 86_400, "PALISADE_SESSION_IDLE_SECS")?,
            session_absolute: secs(
                var("PALISADE_SESSION_ABSOLUTE_SECS"),
                43_200,
                300,
                2_592_000,
                "PALISADE_SESSION_ABSOLUTE_SECS",
            )?,
            lockout_threshold: bounded(var("PALISADE_LOCKOUT_THRESHOLD"), 5, 3, 100, "PALISADE_LOCKOUT_THRESHOLD")?,
            lockout_duration: secs(var("PALISADE_LOCKOUT_SECS"), 900, 60, 86_400, "PALISADE_LOCKOUT_SECS")?,
            limiter_max_keys: bounded(
                var("PALISADE_LIMITER_MAX_KEYS"),
                10_000,
                100,
                1_000_000,
                "PALISADE_LIMITER_MAX_KEYS",
            )?,
            hash_concurrency: bounded(var("PALISADE_HASH_CONCURRENCY"), cores, 1, 256, "PALISADE_HASH_CONCURRENCY")?,
            db_pool_size: bounded(var("PALISADE_DB_POOL_SIZE"), 16, 2, 512, "PALISADE_DB_POOL_SIZE")?,
            extra_allowed_hosts: var("PALISADE_ALLOWED_HOSTS")
                .map(|v| v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
                .unwrap_or_default(),
            security_contact: var("PALISADE_SECURITY_CONTACT")
                .unwrap_or_else(|| format!("mailto:security@{}", public_url_host(&var("PALISADE_PUBLIC_URL")))),
            audit_allow_broken_chain: matches!(var("PALISADE_AUDIT_ALLOW_BROKEN_CHAIN").as_deref(), Some("1" | "true")),
            audit_verify_interval: Some(secs(
                var("PALISADE_AUDIT_VERIFY_SECS"),
                3_600,
                0,
                7 * 86_400,
                "PALISADE_AUDIT_VERIFY_SECS",
            )?)
            .filter(|d| !d.is_zero()),
            audit_checkpoint_interval: Duration::from_millis(bounded(
                var("PALISADE_AUDIT_CHECKPOINT_MS"),
                1_000,
                10,
                60_000,
                "PALISADE_AUDIT_CHECKPOINT_MS",
            )?),
            // The agent heartbeats every 10 s; below that an idle limit
            // would cut healthy agents, so the floor is for tests only.
            agent_idle_timeout: secs(var("PALISADE_AGENT_IDLE_SECS"), 90, 1, 3_600, "PALISADE_AGENT_IDLE_SECS")?,
            agent_body_bytes: bounded(
                var("PALISADE_AGENT_BODY_BYTES"),
                16 << 20,
                1 << 20,
                512 << 20,
                "PALISADE_AGENT_BODY_BYTES",
            )?,
            agent_hello_timeout: secs(var("PALISADE_AGENT_HELLO_SECS"), 10, 1, 60, "PALISADE_AGENT_HELLO_SECS")?,
            ingest_budget: bounded(var("PALISADE_INGEST_BUDGET"), 50_000, 1_000, 10_000_000, "PALISADE_INGEST_BUDGET")?,
            outbound: outbound_policy(&var)?,
            outbound_timeout: secs(var("PALISADE_OUTBOUND_TIMEOUT_SECS"), 10, 1, 60, "PALISADE_OUTBOUND_TIMEOUT_SECS")?,
            agent_offline_grace: secs(
                var("PALISADE_NOTIFY_OFFLINE_GRACE_SECS"),
                60,
                0,
                3_600,
                "PALISADE_NOTIFY_OFFLINE_GRACE_SECS",
            )?,
        })
    }

    pub fn is_dev(&self) -> bool {
        self.env == Env::Dev
    }

    /// Cookies drop `__Host-` and `Secure` only in dev (plain HTTP on loopback).
    pub fn secure_cookies(&self) -> bool {
        self.env == Env::Prod
    }

    /// Host header values we answer to: the public URL's authority, plus in
    /// dev the loopback names on the bound port, plus operator extras.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(host) = self.public_url.host_str() {
            let host = host.to_ascii_lowercase();
            match self.public_url.port() {
                Some(p) => hosts.push(format!("{host}:{p}")),
                None => {
                    hosts.push(host.clone());
                    if let Some(p) = self.public_url.port_or_known_default() {
                        hosts.push(format!("{host}:{p}"));
                    }
                }
            }
        }
        if self.is_dev() {
            let port = self.bind.port();
            for h in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(format!("{h}:{port}"));
            }
        }
        hosts.extend(self.extra_allowed_hosts.iter().cloned());
        hosts
    }

    /// Non-secret settings, for the start-up log line.
    pub fn summary(&self) -> String {
        format!(
            "env={:?} bind={} public_url={} database={} data_dir={} trusted_proxies={} max_body={}B session_idle={}s session_absolute={}s smtp={}",
            self.env,
            self.bind,
            self.public_url,
            if self.database_url.is_some() { "external" } else { "embedded" },
            self.data_dir.display(),
            self.trusted_proxies.nets().len(),
            self.max_body_bytes,
            self.session_idle.as_secs(),
            self.session_absolute.as_secs(),
            if self.smtp_url.is_some() { "on" } else { "off" },
        )
    }
}

fn flag(v: Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match v.as_deref() {
        None | Some("0" | "false" | "off") => Ok(false),
        Some("1" | "true" | "on") => Ok(true),
        Some(_) => Err(invalid(var, "expected 1/0, true/false or on/off")),
    }
}

fn ports(v: Option<String>, var: &'static str) -> Result<Vec<u16>, ConfigError> {
    let mut out = Vec::new();
    for part in v.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u16>() {
            Ok(p) if p != 0 => out.push(p),
            _ => return Err(invalid(var, format!("{part:?} is not a port number (1-65535)"))),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The operator's outbound allow-list. A `/0` is refused: it would switch
/// the private-address policy off while looking like a narrow exception.
fn outbound_policy(var: &impl Fn(&str) -> Option<String>) -> Result<OutboundPolicy, ConfigError> {
    const CIDRS: &str = "PALISADE_OUTBOUND_ALLOW_CIDRS";
    let mut allowed_cidrs = Vec::new();
    for part in var(CIDRS).unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net: ipnet::IpNet = part.parse().map_err(|_| invalid(CIDRS, format!("{part:?} is not a CIDR")))?;
        if net.prefix_len() == 0 {
            return Err(invalid(CIDRS, "a /0 range would disable the address policy; list the receiver's network"));
        }
        allowed_cidrs.push(net.trunc());
    }
    allowed_cidrs.sort();
    allowed_cidrs.dedup();
    Ok(OutboundPolicy {
        allow_http: flag(var("PALISADE_OUTBOUND_ALLOW_HTTP"), "PALISADE_OUTBOUND_ALLOW_HTTP")?,
        extra_ports: ports(var("PALISADE_OUTBOUND_ALLOW_PORTS"), "PALISADE_OUTBOUND_ALLOW_PORTS")?,
        allowed_cidrs,
        allow_loopback: flag(var("PALISADE_OUTBOUND_ALLOW_LOOPBACK"), "PALISADE_OUTBOUND_ALLOW_LOOPBACK")?,
        smtp_extra_ports: ports(var("PALISADE_OUTBOUND_SMTP_PORTS"), "PALISADE_OUTBOUND_SMTP_PORTS")?,
    })
}

fn public_url_host(raw: &Option<String>) -> String {
    raw.as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into())
}

fn parse_public_url(raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw).map_err(|e| invalid("PALISADE_PUBLIC_URL", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("PALISADE_PUBLIC_URL", "scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("PALISADE_PUBLIC_URL", "must not contain credentials"));
    }
    if url.host_str().is_none() {
        return Err(invalid("PALISADE_PUBLIC_URL", "must have a host"));
    }
    Ok(url)
}

fn parse_or<T: std::str::FromStr>(v: Option<String>, default: &str, var: &'static str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.as_deref().unwrap_or(default).parse::<T>().map_err(|e| invalid(var, e.to_string()))
}

fn bounded<T>(v: Option<String>, default: T, min: T, max: T, var: &'static str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = v else { return Ok(default) };
    let n: T = raw.parse().map_err(|_| invalid(var, format!("expected a number, got {raw:?}")))?;
    if n < min || n > max {
        return Err(invalid(var, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn secs(v: Option<String>, default: u64, min: u64, max: u64, var: &'static str) -> Result<Duration, ConfigError> {
    bounded(v, default, min, max, var).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    #[test]
    fn prod_requires_a_secret() {
        assert!(matches!(cfg(&[]), Err(ConfigError::SecretRequired)));
        assert!(matches!(cfg(&[("PALISADE_SECRET", "short")]), Err(ConfigError::Secret(_))));
        let c = cfg(&[("PALISADE_SECRET", SECRET)]).unwrap();
        assert_eq!(c.env, Env::Prod);
        assert!(c.secure_cookies());
        assert!(!c.secret_is_ephemeral);
    }

    #[test]
    fn dev_mints_ephemeral_secret_on_loopback_only() {
        let c = cfg(&[("PALISADE_ENV", "dev")]).unwrap();
        assert!(c.secret_is_ephemeral);
        assert!(!c.secure_cookies());
        assert!(matches!(
            cfg(&[("PALISADE_ENV", "dev"), ("PALISADE_BIND", "0.0.0.0:7700")]),
            Err(ConfigError::DevNonLoopback(_))
        ));
    }

    #[test]
    fn the_scheduled_audit_check_is_hourly_and_can_be_turned_off() {
        let dev = [("PALISADE_ENV", "dev")];
        assert_eq!(cfg(&dev).unwrap().audit_verify_interval, Some(Duration::from_secs(3_600)));
        let off = cfg(&[dev[0], ("PALISADE_AUDIT_VERIFY_SECS", "0")]).unwrap();
        assert_eq!(off.audit_verify_interval, None);
        let err = cfg(&[dev[0], ("PALISADE_AUDIT_VERIFY_SECS", "-5")]).err().unwrap();
        assert!(err.to_string().starts_with("PALISADE_AUDIT_VERIFY_SECS"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = cfg(&[("PALISADE_SECRET", SECRET), ("PALISADE_MAX_BODY_BYTES", "lots")]).err().unwrap();
        assert!(err.to_string().starts_with("PALISADE_MAX_BODY_BYTES"));
        let err = cfg(&[("PALISADE_SECRET", SECRET), ("PALISADE_PUBLIC_URL", "https://u:p@x")]).err().unwrap();
        assert!(err.to_string().contains("credentials"));
        assert!(cfg(&[("PALISADE_ENV", "staging")]).is_err());
    }

    #[test]
    fn allowed_hosts_follow_public_url() {
        let c = cfg(&[("PALISADE_SECRET", SECRET), ("PALISADE_PUBLIC_URL", "https://Palisade.Example.com")]).unwrap();
        assert_eq!(c.allowed_hosts(), vec!["palisade.example.com", "palisade.example.com:443"]);
        assert_eq!(c.security_contact, "mailto:security@palisade.example.com");
    }

    #[test]
    fn outbound_policy_is_off_by_default_and_parsed_strictly() {
        let c = cfg(&[("PALISADE_SECRET", SECRET)]).unwrap();
        assert_eq!(c.outbound, OutboundPolicy::default());
        let c = cfg(&[
            ("PALISADE_SECRET", SECRET),
            ("PALISADE_OUTBOUND_ALLOW_CIDRS", "10.1.2.3/16, 127.0.0.1/32"),
            ("PALISADE_OUTBOUND_ALLOW_PORTS", "8443,8080,8443"),
            ("PALISADE_OUTBOUND_ALLOW_LOOPBACK", "1"),
        ])
        .unwrap();
        let nets: Vec<String> = c.outbound.allowed_cidrs.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.1.0.0/16", "127.0.0.1/32"]);
        assert_eq!(c.outbound.extra_ports, [8080, 8443]);
        assert!(c.outbound.allow_loopback && !c.outbound.allow_http);
        for (k, v) in [
            ("PALISADE_OUTBOUND_ALLOW_CIDRS", "0.0.0.0/0"),
            ("PALISADE_OUTBOUND_ALLOW_CIDRS", "10.0.0.0/33"),
            ("PALISADE_OUTBOUND_ALLOW_PORTS", "0"),
            ("PALISADE_OUTBOUND_ALLOW_HTTP", "yes please"),
        ] {
            let err = cfg(&[("PALISADE_SECRET", SECRET), (k, v)]).err().unwrap();
            assert!(err.to_string().starts_with(k), "{err}");
        }
    }
}

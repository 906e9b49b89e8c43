//! `login-storm`: attacker loops send wrong passwords as fast as the brain
//! answers, from many client addresses, while legitimate users log in on a
//! fixed schedule. Reports the legitimate login latency (from its schedule
//! slot, so a brain that queues logins behind the attack shows it), the
//! status mix, and whether the per-IP limit and the lockout held.
//!
//! Client addresses: `--via bind` gives every attacker loop and every
//! legitimate user its own 127.0.0.x source address (works with any brain,
//! no configuration). `--via xff` sends `X-Forwarded-For` with addresses
//! from the documentation ranges (198.51.100.0/24 for attackers,
//! 203.0.113.0/24 for users); only a brain that trusts the loopback peer as
//! a proxy believes it (`PALISADE_TRUSTED_PROXIES=127.0.0.1`,
//! `Z4J_TRUSTED_PROXIES='["127.0.0.1/32"]'`); otherwise every request counts
//! against 127.0.0.1 and the run measures that instead. Those header values
//! are never contacted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use crate::cli::{LoginStormArgs, Spoof};
use crate::client;
use crate::report::Summary;
use crate::run::RunCtx;
use crate::safety;

pub fn smoke_scale(args: &mut LoginStormArgs) {
    args.attackers = args.attackers.min(4);
    args.attacker_addrs = args.attacker_addrs.min(4);
    args.victims = args.victims.min(2);
    args.legit_users = args.legit_users.min(1);
    args.duration = args.duration.min(4.0);
    args.legit_interval_ms = args.legit_interval_ms.max(1000.0);
}

pub fn planned(args: &LoginStormArgs) -> Duration {
    Duration::from_secs_f64(args.duration)
}

/// Largest number of events inside any window of `window` length (the
/// sliding-window count a limiter would see). `times` must be sorted.
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut q: VecDeque<Instant> = VecDeque::new();
    for &t in times {
        q.push_back(t);
        while q.front().is_some_and(|&f| t.saturating_duration_since(f) >= window) {
            q.pop_front();
        }
        best = best.max(q.len());
    }
    best
}

#[derive(Default)]
struct Tally {
    /// Attacker status counts.
    attack: BTreeMap<u16, u64>,
    legit: BTreeMap<u16, u64>,
    /// Times each attacker address got an answer that was not 429 (an
    /// attempt the limiter let through to the password check).
    admitted: HashMap<String, Vec<Instant>>,
    /// Per victim email: statuses in order.
    victims: HashMap<String, Vec<u16>>,
}

type Shared = Arc<Mutex<Tally>>;

fn with<T>(t: &Shared, f: impl FnOnce(&mut Tally) -> T) -> T {
    f(&mut t.lock().unwrap_or_else(PoisonError::into_inner))
}

/// (client to use, address the brain should see, XFF header value).
fn addressing(
    ctx: &RunCtx,
    via: Spoof,
    k: u32,
    xff_net: u8,
) -> anyhow::Result<(Option<IpAddr>, String, Option<IpAddr>)> {
    match via {
        Spoof::Bind => {
            let srcs = ctx.sources(k)?;
            let ip = srcs.get(k as usize - 1).copied().flatten();
            Ok((ip, ip.map_or_else(|| "peer".to_owned(), |i| i.to_string()), None))
        }
        Spoof::Xff => {
            let ip = IpAddr::V4(if xff_net == 0 {
                Ipv4Addr::new(198, 51, 100, k as u8)
            } else {
                Ipv4Addr::new(203, 0, 113, k as u8)
            });
            Ok((None, ip.to_string(), Some(ip)))
        }
    }
}

pub async fn run(ctx: &RunCtx, args: &LoginStormArgs) -> anyhow::Result<Summary> {
    safety::cap("--attackers", args.attackers, safety::MAX_USERS)?;
    safety::cap("--legit-users", args.legit_users, safety::MAX_USERS)?;
    let duration = safety::cap_duration("--duration", args.duration)?;
    let attacker_addrs = args.attacker_addrs.clamp(1, 200);
    if args.via == Spoof::Bind && attacker_addrs + args.legit_users as u32 > safety::MAX_SOURCE_ADDRS {
        anyhow::bail!(
            "--attacker-addrs + --legit-users must stay within {} loopback addresses",
            safety::MAX_SOURCE_ADDRS
        );
    }
    if ctx.common.password.is_empty() {
        anyhow::bail!("no admin password: the legitimate users log in as the admin");
    }
    ctx.fd_budget.ensure(args.attackers + args.legit_users + 8, "--attackers")?;
    let tally: Shared = Arc::default();
    let start = Instant::now();
    let deadline = start + duration;
    ctx.phase.set("storm");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.attackers {
        let k = (i as u32 % attacker_addrs) + 1;
        let (source, seen_as, xff) = addressing(ctx, args.via, k, 0)?;
        let http = client::client(source, 2)?;
        let (base, tally, m, victims) = (ctx.base.clone(), tally.clone(), ctx.metrics.clone(), args.victims);
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let email = {
                    let mut rng = rand::rng();
                    if victims > 0 && rng.random_bool(0.5) {
                        format!("victim{}@loadtest.test", rng.random_range(0..victims))
                    } else {
                        format!("nobody-{}-{n}@loadtest.test", rng.random::<u32>())
                    }
                };
                match client::login(&http, &base, &email, "definitely-Wrong-password-1", xff).await {
                    Ok(out) => {
                        let status = out.status.as_u16();
                        m.record("attack_login", out.elapsed);
                        with(&tally, |t| {
                            *t.attack.entry(status).or_default() += 1;
                            if status != 429 {
                                t.admitted.entry(seen_as.clone()).or_default().push(Instant::now());
                            }
                            if email.starts_with("victim") {
                                t.victims.entry(email).or_default().push(status);
                            }
                        });
                    }
                    Err(e) => m.error(&format!("attacker_{}", client::transport_error_kind(&e))),
                }
            }
        });
    }
    for j in 0..args.legit_users {
        let k = attacker_addrs + 1 + j as u32;
        let (source, _, xff) = addressing(ctx, args.via, if args.via == Spoof::Xff { j as u32 + 1 } else { k }, 1)?;
        let http = client::client(source, 2)?;
        let (base, tally, m) = (ctx.base.clone(), tally.clone(), ctx.metrics.clone());
        let (email, pw) = (ctx.common.email.clone(), ctx.common.password.clone());
        let interval = Duration::from_secs_f64(args.legit_interval_ms.max(100.0) / 1000.0);
        tasks.spawn(async move {
            // Stagger users across the interval.
            let mut slot = Instant::now() + interval.mul_f64(j as f64 / 8.0 % 1.0);
            while slot < deadline {
                tokio::time::sleep_until(slot.into()).await;
                match client::login(&http, &base, &email, &pw, xff).await {
                    Ok(out) => {
                        m.record_since("http:POST /auth/login (legitimate)", slot, Instant::now());
                        with(&tally, |t| *t.legit.entry(out.status.as_u16()).or_default() += 1);
                    }
                    Err(e) => m.error(&format!("legit_{}", client::transport_error_kind(&e))),
                }
                slot += interval;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    Ok(summarize(ctx, args, &tally, elapsed))
}

fn summarize(ctx: &RunCtx, args: &LoginStormArgs, tally: &Shared, elapsed: Duration) -> Summary {
    let window = Duration::from_secs(60);
    with(tally, |t| {
        let mut per_ip: Vec<usize> = t
            .admitted
            .values_mut()
            .map(|times| {
                times.sort();
                max_in_window(times, window)
            })
            .collect();
        per_ip.sort_unstable();
        let max_admitted = per_ip.last().copied().unwrap_or(0);
        let attempts: u64 = t.attack.values().sum();
        let lock_code = ctx.flavor.lockout_status();
        let locked = t.victims.values().filter(|v| lock_code.is_some_and(|c| v.contains(&c))).count();
        let first_lock: Vec<usize> = t
            .victims
            .values()
            .filter_map(|v| lock_code.and_then(|c| v.iter().position(|s| *s == c)))
            .map(|p| p + 1)
            .collect();
        let legit_ok = t.legit.get(&200).copied().unwrap_or(0);
        let processes = args.limiter_processes.unwrap_or_else(|| ctx.flavor.limiter_processes()).max(1);
        let allowed = args.ip_limit.saturating_mul(processes);
        let legit_total: u64 = t.legit.values().sum();
        let mut s = Summary::new("login-storm");
        s.http = ctx.http_routes(elapsed, false).into_iter().collect();
        s.details = json!({
            "via": format!("{:?}", args.via).to_lowercase(),
            "attackers": args.attackers,
            "attacker_addresses": args.attacker_addrs,
            "attack_attempts": attempts,
            "attack_attempts_per_s": crate::metrics::rate(attempts, elapsed),
            "attack_status": t.attack,
            "attack_latency_ms": ctx.metrics.histogram("attack_login").percentiles(),
            "max_admitted_per_ip_per_min": max_admitted,
            "expected_ip_limit_per_min": allowed,
            "limiter_processes": processes,
            "ip_limit_held": max_admitted as u32 <= allowed,
            "victims": args.victims,
            "victims_locked": locked,
            "attempts_until_lock": first_lock,
            "lockout_status": lock_code,
            "legit_status": t.legit,
            "legit_logins_ok": legit_ok,
            "legit_logins_per_s": crate::metrics::rate(legit_ok, elapsed),
            "legit_offered_per_s": args.legit_users as f64 * 1000.0 / args.legit_interval_ms.max(100.0),
            "legit_success_ratio": if legit_total > 0 { legit_ok as f64 / legit_total as f64 } else { 0.0 },
            "legit_login_ms": ctx.metrics.histogram("http:POST /auth/login (legitimate)").percentiles(),
        });
        s.notes.push(format!(
            "a limit 'holds' when no attacker address got more than {allowed} non-429 answers in any 60 s window \
             ({} per minute × {processes} limiter process(es); z4j keeps one limiter per uvicorn worker)",
            args.ip_limit
        ));
        if lock_code.is_none() {
            s.notes.push("z4j answers 401 while an account is locked, so its lockout is not visible here".into());
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_maximum() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let w = Duration::from_secs(60);
        assert_eq!(max_in_window(&[], w), 0);
        assert_eq!(max_in_window(&[s(0), s(1), s(2)], w), 3);
        // 0..59 all in one window; at 60 the first leaves.
        let times: Vec<Instant> = (0..=60).map(s).collect();
        assert_eq!(max_in_window(&times, w), 60);
        assert_eq!(max_in_window(&[s(0), s(59), s(61), s(200)], w), 2);
    }
}

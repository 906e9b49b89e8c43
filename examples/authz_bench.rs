//! Micro-benchmark: what the authorization check adds to one request.
//!
//! On a project route the dispatcher (`routes::access`) does, per request:
//! a cache lookup of the project by slug and of the caller's role in it
//! (`AuthzCache::cached`), then the policy decision (`rbac::decide`). This
//! measures exactly that, warm, over a populated cache (10,000 projects,
//! 50,000 memberships, random pairs), single-threaded and with every core
//! hammering the same cache. The cache is built with a long TTL so entries
//! do not expire mid-run; the TTL does not change what a hit costs, and a
//! miss (which the server answers with one query) is counted and reported. With `PALISADE_BENCH_DATABASE_URL` set (an
//! admin URL; a scratch database is created and dropped) it also times the
//! one query a cache miss costs, for comparison.
//!
//! Run: `cargo run --release --example authz_bench`
//! (see BENCHMARKS.md, "Authorization", for recorded numbers).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::authz::{AuthzCache, Lookup};
use palisade::security::rbac::{self, Action, Role, Standing};
use palisade::store::projects::ProjectRef;
use rand::Rng;
use uuid::Uuid;

const USERS_PER_PROJECT: usize = 5;
const BATCH: usize = 100_000;
const BATCHES: usize = 30;

struct Fixture {
    cache: AuthzCache,
    pairs: Vec<(String, Uuid)>,
    misses: std::sync::atomic::AtomicU64,
}

/// Projects in the cache; `AUTHZ_BENCH_PROJECTS` overrides (e.g. 100 for a
/// hot set that fits in the CPU caches).
fn projects() -> usize {
    std::env::var("AUTHZ_BENCH_PROJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

fn fixture() -> Fixture {
    let projects = projects();
    let cache = AuthzCache::with_ttl(Duration::from_secs(3600));
    let mut pairs = Vec::with_capacity(projects * USERS_PER_PROJECT);
    let roles = Role::ALL;
    for i in 0..projects {
        let slug = format!("project-{i:05}");
        let project = Arc::new(ProjectRef { id: Uuid::new_v4(), slug: slug.clone(), archived: i % 50 == 0 });
        for j in 0..USERS_PER_PROJECT {
            let user = Uuid::new_v4();
            let role = if j == 0 { None } else { Some(roles[j % roles.len()]) };
            cache.remember(cache.generation(), &slug, user, &Lookup::Found(project.clone(), role));
            pairs.push((slug.clone(), user));
        }
    }
    Fixture { cache, pairs, misses: Default::default() }
}

/// The dispatcher's per-request authorization work on a warm cache.
fn check(f: &Fixture, slug: &str, user: Uuid, action: Action) -> bool {
    match f.cache.cached(slug, user) {
        Some(Lookup::Found(project, role)) => {
            let standing = Standing::of(false, role);
            rbac::decide(standing, None, action, project.archived) == rbac::Decision::Allow
        }
        Some(Lookup::NoProject) => false,
        None => {
            f.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// ns/op for each of `BATCHES` batches of `BATCH` calls of `op`.
fn measure(mut op: impl FnMut(usize) -> bool) -> Vec<f64> {
    for i in 0..BATCH {
        black_box(op(i));
    }
    let mut per_op = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES {
        let start = Instant::now();
        for i in 0..BATCH {
            black_box(op(b * BATCH + i));
        }
        per_op.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    per_op.sort_by(f64::total_cmp);
    per_op
}

fn report(name: &str, per_op: &[f64]) {
    println!(
        "{name:<46} median {:>7.1} ns/op   p90 {:>7.1}   min {:>7.1}   ({BATCHES} batches x {BATCH})",
        percentile(per_op, 0.5),
        percentile(per_op, 0.9),
        per_op[0],
    );
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let n = projects();
    println!("authz_bench: {n} projects, {} cached memberships, {cores} cores", n * USERS_PER_PROJECT);
    let f = fixture();
    let mut rng = rand::rng();
    let order: Vec<usize> = (0..(1 << 20)).map(|_| rng.random_range(0..f.pairs.len())).collect();
    let actions = Action::ALL;

    report(
        "rbac::decide only",
        &measure(|i| {
            let role = Role::ALL[i % 4];
            rbac::decide(Some(Standing::Member(role)), None, actions[i % actions.len()], false) == rbac::Decision::Allow
        }),
    );
    report(
        "cache lookup + decide (warm, 1 thread)",
        &measure(|i| {
            let (slug, user) = &f.pairs[order[i % order.len()]];
            check(&f, slug, *user, actions[i % actions.len()])
        }),
    );

    // Every core at once on the same cache: contention, if any, shows here.
    let shared = Arc::new(f);
    let order = Arc::new(order);
    let start = Instant::now();
    let per_thread = BATCH * 10;
    let handles: Vec<_> = (0..cores)
        .map(|t| {
            let (f, order) = (shared.clone(), order.clone());
            std::thread::spawn(move || {
                let mut allowed = 0usize;
                for i in 0..per_thread {
                    let (slug, user) = &f.pairs[order[(t * 7919 + i) % order.len()]];
                    allowed += usize::from(check(&f, slug, *user, actions[i % actions.len()]));
                }
                black_box(allowed)
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed();
    let total = (per_thread * cores) as f64;
    println!(
        "{:<46} {:>7.1} ns/op per thread, {:.1} M checks/s in total",
        format!("cache lookup + decide (warm, {cores} threads)"),
        elapsed.as_nanos() as f64 * cores as f64 / total,
        total / elapsed.as_secs_f64() / 1e6,
    );

    println!("cache misses during the warm runs: {}", shared.misses.load(std::sync::atomic::Ordering::Relaxed));

    if let Ok(url) = std::env::var("PALISADE_BENCH_DATABASE_URL") {
        match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
            Ok(rt) => rt.block_on(miss_cost(&url)),
            Err(e) => eprintln!("no runtime: {e}"),
        }
    } else {
        println!("(set PALISADE_BENCH_DATABASE_URL to also time the query a cache miss costs)");
    }
}

/// The cold path for comparison: one `projects::access` query per check.
async fn miss_cost(admin_url: &str) {
    use palisade::store::{memberships, migrate, projects, users, Db};
    let name = format!("palisade_bench_{}", Uuid::new_v4().simple());
    let Ok((admin, conn)) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await else {
        eprintln!("cannot connect to PALISADE_BENCH_DATABASE_URL");
        return;
    };
    tokio::spawn(conn);
    if admin.batch_execute(&format!("CREATE DATABASE {name}")).await.is_err() {
        eprintln!("cannot create a scratch database");
        return;
    }
    let result = async {
        let mut url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
        url.set_path(&format!("/{name}"));
        let db = Db::connect(url.as_str(), 4).map_err(|e| e.to_string())?;
        migrate::run(&db).await.map_err(|e| e.to_string())?;
        let c = db.conn().await.map_err(|e| e.to_string())?;
        let now = chrono::Utc::now();
        let new = users::NewUser { email: "bench@x.test", display_name: "", password_hash: "x", is_admin: false };
        let user = users::insert(&c, &new, now).await.map_err(|e| e.to_string())?;
        let p = projects::NewProject { slug: "bench", name: "Bench", description: "", created_by: user.id };
        let project = projects::insert(&c, &p, now).await.map_err(|e| e.to_string())?;
        memberships::insert(&c, project.id, user.id, Role::Operator, now).await.map_err(|e| e.to_string())?;
        for _ in 0..200 {
            projects::access(&c, "bench", user.id).await.map_err(|e| e.to_string())?;
        }
        let n = 2_000;
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            black_box(projects::access(&c, "bench", user.id).await.map_err(|e| e.to_string())?);
            samples.push(start.elapsed());
        }
        samples.sort();
        let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
        println!(
            "{:<46} median {:>7.1} us/op   p90 {:>7.1} us   ({n} queries, local PostgreSQL)",
            "cache miss: projects::access query",
            us(samples[n / 2]),
            us(samples[n * 9 / 10]),
        );
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("miss-cost measurement failed: {e}");
    }
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

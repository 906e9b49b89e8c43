//! Wiring: database (external or embedded), migrations, the supervised
//! actor tree, the HTTP server, first-boot token, and an orderly shutdown
//! (stop accepting, drain connections, stop actors, stop the embedded
//! cluster). Tests start the same server in-process via `start`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::actors::audit_watch::{AuditWatch, WatchArgs};
use crate::actors::audit_writer::{AuditMsg, AuditWriter, AuditWriterArgs};
use crate::actors::dispatcher::{Dispatcher, DispatcherMsg};
use crate::actors::ingest::{Budget, Ingest, IngestArgs, IngestMsg};
use crate::actors::limiter::{Limiter, LimiterArgs, LimiterMsg};
use crate::actors::lockout::{Lockout, LockoutArgs, LockoutMsg};
use crate::actors::notifier::{Notifier, NotifierArgs, NotifierMsg};
use crate::actors::session_registry::{RegistryArgs, RegistryMsg, SessionRegistry};
use crate::actors::supervisor::{ChildSpec, Health, RootSupervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::Slot;
use crate::audit::checkpoint::{CheckpointSink, FileSink};
use crate::audit::keys::AuditKeys;
use crate::authn::{CookieNames, SessionCache};
use crate::authz::AuthzCache;
use crate::bearer::ApiKeyCache;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::notify::cipher::ChannelCipher;
use crate::notify::deliver::Deliverer;
use crate::outbound::mail::{MailError, Mailer};
use crate::outbound::{Outbound, OutboundError};
use crate::routes::reply::SecurityHeaders;
use crate::routes::router::{RouteTableError, Router};
use crate::security::keys::{Keyring, Purpose};
use crate::security::password::PasswordHasher;
use crate::security::password_policy::PasswordPolicy;
use crate::security::ssrf::{Resolve, SystemResolver};
use crate::security::tokens;
use crate::state::{allowed_origins, AppState, Inner};
use crate::store::embedded::{EmbeddedError, EmbeddedPostgres};
use crate::store::{migrate, setup, users, Db, StoreError};

pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3600);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The audit writer's own connections (one batch at a time needs one; the
/// second covers a reconnect while the first is being recycled).
const AUDIT_POOL_SIZE: usize = 2;
/// One connection per ingest lane, plus one to cover a reconnect.
const INGEST_POOL_SIZE: usize = crate::actors::ingest::LANES + 1;
/// The Notifier's own connections (claims, results, trigger checks).
const NOTIFIER_POOL_SIZE: usize = 4;

/// What tests (and embedders) may substitute.
#[derive(Default)]
pub struct Options {
    /// The resolver every notification destination is looked up with
    /// (default: the system's). Tests inject one they control.
    pub resolver: Option<Arc<dyn Resolve>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("could not start the actor tree: {0}")]
    Actors(String),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("route table: {0}")]
    Routes(#[from] RouteTableError),
    #[error("outbound client: {0}")]
    Outbound(#[from] OutboundError),
}

/// The database the server runs on; owns the embedded cluster if any.
pub struct Database {
    pub db: Db,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn open(config: &Config) -> Result<Database, ServerError> {
        match &config.database_url {
            Some(url) => Ok(Database {
                db: Db::connect_with_ca(url, config.db_pool_size, config.database_ca.as_deref())?,
                embedded: None,
            }),
            None => {
                let pg = EmbeddedPostgres::start(&config.data_dir).await?;
                let db = Db::from_config(pg.config(), config.db_pool_size)?;
                Ok(Database { db, embedded: Some(pg) })
            }
        }
    }

    /// For CLI tools: like `open`, but if `serve` is already running the
    /// embedded cluster, use it instead of failing on the lock.
    pub async fn open_shared(config: &Config) -> Result<Database, ServerError> {
        if config.database_url.is_none() {
            if let Some(pg) = crate::store::embedded::running_config(&config.data_dir) {
                return Ok(Database { db: Db::from_config(pg, 4)?, embedded: None });
            }
        }
        Database::open(config).await
    }

    pub async fn close(self) {
        if let Some(pg) = self.embedded {
            pg.stop().await;
        }
    }
}

/// A running server. Dropping it without `shutdown` leaves tasks running
/// until the runtime ends, which is what tests that simulate a crash want.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    /// The first-boot token, when one was minted (also printed on stderr).
    pub setup_token: Option<String>,
    pub supervisor: ActorRef<SupervisorMsg>,
    stop: Option<oneshot::Sender<()>>,
    http: JoinHandle<()>,
    database: Option<Database>,
}

fn child<A, F>(name: &'static str, slot: Slot<A::Msg>, make: F) -> ChildSpec
where
    A: Actor,
    F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    ChildSpec {
        name,
        start: Arc::new(move |sup| {
            let (slot, make) = (slot.clone(), make.clone());
            Box::pin(async move {
                let (actor, args) = make();
                let (r, _) = Actor::spawn_linked(None, actor, args, sup).await?;
                slot.set(Some(r.clone()));
                Ok(r.get_cell())
            })
        }),
    }
}

/// The innermost error of a chain: a child's start-up failure arrives
/// wrapped twice ("actor panicked during startup …"), which hides the
/// sentence the operator needs.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Start everything and return once the server accepts connections.
pub async fn start(config: Config, clock: SharedClock) -> Result<Running, ServerError> {
    start_with(config, clock, Options::default()).await
}

/// `start` with substitutes (see [`Options`]).
pub async fn start_with(mut config: Config, clock: SharedClock, options: Options) -> Result<Running, ServerError> {
    // Refuse a bad mail setting or route table before anything is started.
    let mail = Mailer::from_config(config.smtp_url.as_deref(), config.smtp_from.as_deref(), &config.public_url)?;
    let resolver: Arc<dyn Resolve> = options.resolver.unwrap_or_else(|| Arc::new(SystemResolver));
    let hello = config.public_url.host_str().unwrap_or("localhost").to_string();
    let outbound = Outbound::new(config.outbound.clone(), resolver, config.outbound_timeout, &hello)?;
    let deliverer =
        Deliverer { outbound, cipher: Arc::new(ChannelCipher::new(&config.secret, &config.previous_secrets)) };
    let router = Router::new(crate::routes::table::routes());
    router.check()?;
    let database = Database::open(&config).await?;
    let db = database.db.clone();
    migrate::run(&db).await?;

    let listener = tokio::net::TcpListener::bind(config.bind).await.map_err(|e| ServerError::Bind(config.bind, e))?;
    let addr = listener.local_addr().map_err(|e| ServerError::Bind(config.bind, e))?;
    config.bind = addr;
    // Port 0 in the public URL means "whatever port we bound" (tests).
    if config.public_url.port() == Some(0) {
        let _ = config.public_url.set_port(Some(addr.port()));
    }

    let limiter: Slot<LimiterMsg> = Slot::new("limiter");
    let lockout: Slot<LockoutMsg> = Slot::new("lockout");
    let audit_writer: Slot<AuditMsg> = Slot::new("audit_writer");
    let registry: Slot<RegistryMsg> = Slot::new("session_registry");
    let ingest: Slot<IngestMsg> = Slot::new("ingest");
    let dispatcher: Slot<DispatcherMsg> = Slot::new("dispatcher");
    let longpoll: Slot<crate::actors::longpoll::LongPollMsg> = Slot::new("longpoll");
    let notifier: Slot<NotifierMsg> = Slot::new("notifier");
    let audit_keys = Arc::new(AuditKeys::new(&config.secret, &config.previous_secrets));
    let checkpoint_sink: Arc<dyn CheckpointSink> = Arc::new(FileSink::new(config.audit_checkpoints.clone()));
    let health = Health::default();
    // Start order matters: everything else may audit, so the writer is
    // first (and, on shutdown, last to stop).
    let children = vec![
        child("audit_writer", audit_writer.clone(), {
            let db = db.sibling(AUDIT_POOL_SIZE)?;
            let (clock, keys, sink) = (clock.clone(), audit_keys.clone(), checkpoint_sink.clone());
            let (interval, allow) = (config.audit_checkpoint_interval, config.audit_allow_broken_chain);
            move || {
                let args = AuditWriterArgs {
                    db: db.clone(),
                    keys: keys.clone(),
                    sink: sink.clone(),
                    clock: clock.clone(),
                    checkpoint_interval: interval,
                    allow_broken_chain: allow,
                };
                (AuditWriter, args)
            }
        }),
        child("limiter", limiter.clone(), {
            let (clock, max_keys) = (clock.clone(), config.limiter_max_keys);
            move || (Limiter, LimiterArgs { clock: clock.clone(), max_keys })
        }),
        child("lockout", lockout.clone(), {
            let (db, clock) = (db.clone(), clock.clone());
            let (threshold, duration) = (config.lockout_threshold, config.lockout_duration);
            move || (Lockout, LockoutArgs { db: db.clone(), clock: clock.clone(), threshold, duration })
        }),
        child("session_registry", registry.clone(), {
            let notifier = notifier.clone();
            move || (SessionRegistry, RegistryArgs { notifier: notifier.clone() })
        }),
        child("longpoll", longpoll.clone(), {
            let clock = clock.clone();
            move || (crate::actors::longpoll::LongPoll, clock.clone())
        }),
        child("ingest", ingest.clone(), {
            // Its own connections: a slow ingest must not starve requests,
            // and requests must not starve ingest.
            let db = db.sibling(INGEST_POOL_SIZE)?;
            let (clock, notifier) = (clock.clone(), notifier.clone());
            move || (Ingest, IngestArgs { db: db.clone(), clock: clock.clone(), notifier: notifier.clone() })
        }),
    ];
    let (supervisor, _) = Actor::spawn(None, RootSupervisor, SupervisorArgs { children, health: health.clone() })
        .await
        .map_err(|e| ServerError::Actors(root_cause(&e)))?;
    let supervisor_slot = Slot::new("supervisor");
    supervisor_slot.set(Some(supervisor.clone()));

    let hasher = PasswordHasher::new(config.hash_concurrency);
    hasher.warm_up();
    let state = AppState::new(Inner {
        keys: Keyring::new(config.secret.clone()),
        db: db.clone(),
        clock: clock.clone(),
        hasher,
        policy: PasswordPolicy::default(),
        audit_writer,
        audit_keys,
        checkpoint_sink,
        verify_gate: tokio::sync::Semaphore::new(1),
        limiter,
        lockout,
        registry,
        longpoll,
        ingest,
        dispatcher: dispatcher.clone(),
        notifier: notifier.clone(),
        deliverer,
        ingest_budget: Budget::new(config.ingest_budget),
        redactor: Arc::new(
            crate::security::redaction::Redactor::with_defaults().map_err(|e| ServerError::Actors(e.to_string()))?,
        ),
        supervisor: supervisor_slot,
        health,
        sessions: SessionCache::default(),
        authz: AuthzCache::default(),
        api_keys: ApiKeyCache::default(),
        mail,
        cookies: CookieNames::new(config.secure_cookies()),
        security_headers: SecurityHeaders::new(&config),
        router,
        allowed_hosts: config.allowed_hosts(),
        allowed_origins: allowed_origins(&config),
        started_at: clock.now(),
        config,
    });

    // The dispatcher needs the shared state, so it joins the tree last.
    let dispatcher_spec = child("dispatcher", dispatcher, {
        let st = state.clone();
        move || (Dispatcher, st.clone())
    });
    start_late(&supervisor, dispatcher_spec).await?;
    let notifier_spec = child("notifier", notifier, {
        let (st, db) = (state.clone(), db.sibling(NOTIFIER_POOL_SIZE)?);
        move || (Notifier, NotifierArgs { st: st.clone(), db: db.clone() })
    });
    start_late(&supervisor, notifier_spec).await?;
    if let Some(every) = state.config.audit_verify_interval {
        let watch = child("audit watch", Slot::new("audit watch"), {
            let st = state.clone();
            move || (AuditWatch, WatchArgs { st: st.clone(), every })
        });
        start_late(&supervisor, watch).await?;
    }
    crate::outbound::policy_log::record(&state).await.map_err(ServerError::Actors)?;

    let setup_token = first_boot(&state).await?;

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let http = tokio::spawn(crate::http_server::run(listener, crate::routes::filter(state.clone()), stop_rx));
    tracing::info!(%addr, "palisade is listening");
    Ok(Running { addr, state, setup_token, supervisor, stop: Some(stop_tx), http, database: Some(database) })
}

/// Add a child that needs the shared state to the running tree.
async fn start_late(supervisor: &ActorRef<SupervisorMsg>, spec: ChildSpec) -> Result<(), ServerError> {
    let name = spec.name;
    match supervisor.call(|reply| SupervisorMsg::Start(spec, reply), Some(Duration::from_secs(10))).await {
        Ok(ractor::rpc::CallResult::Success(Ok(()))) => Ok(()),
        Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(ServerError::Actors(e)),
        _ => Err(ServerError::Actors(format!("the supervisor did not start the {name}"))),
    }
}

/// With no user yet, mint the one-time setup token, keep only its HMAC,
/// and print the link on stderr (not the structured log, which may be
/// shipped elsewhere).
async fn first_boot(state: &AppState) -> Result<Option<String>, ServerError> {
    let conn = state.db.conn().await?;
    if users::any_exist(&conn).await? {
        setup::clear(&conn).await?;
        return Ok(None);
    }
    let token = tokens::mint();
    let now = state.clock.now();
    let ttl = chrono::Duration::from_std(SETUP_TOKEN_TTL).unwrap_or(chrono::Duration::hours(1));
    let hash = state.keys.key(Purpose::SetupToken).mac(token.as_bytes());
    setup::replace(&conn, &hash, now + ttl, now).await?;
    let base = state.config.public_url.as_str().trim_end_matches('/');
    eprintln!("\n  Palisade has no administrator yet. Open this link within 1 hour to create one:\n\n    {base}/setup?token={token}\n\n  (single use; a restart prints a new link)\n");
    Ok(Some(token))
}

impl Running {
    /// Stop accepting, drain in-flight requests (bounded), stop actors in
    /// reverse order, then stop the embedded database.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut self.http).await.is_err() {
            tracing::warn!("connections did not drain in {:?}; closing them", DRAIN_TIMEOUT);
            self.http.abort();
        }
        let _ = self.supervisor.call(SupervisorMsg::Shutdown, Some(Duration::from_secs(30))).await;
        self.supervisor.stop(None);
        if let Some(db) = self.database.take() {
            db.close().await;
        }
        tracing::info!("palisade stopped");
    }
}

/// `palisade serve`: run until SIGINT or SIGTERM.
pub async fn serve(config: Config, clock: SharedClock) -> Result<(), ServerError> {
    crate::fd_limit::raise_and_report();
    let running = start(config, clock).await?;
    wait_for_signal().await;
    tracing::info!("shutdown signal received; draining");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

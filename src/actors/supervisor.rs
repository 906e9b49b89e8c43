//! The root supervisor. ractor has no restart strategies of its own (its
//! default is to stop the parent when a child dies), so this actor keeps a
//! spec per child and re-creates a child that fails or stops unexpectedly,
//! with a meltdown limit: more than `MAX_RESTARTS` within `WINDOW` and it
//! gives up on that child, logs loudly, and marks the server unready so an
//! orchestrator restarts the whole process. Everything else keeps serving.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};

pub const MAX_RESTARTS: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);

pub type StartFn =
    Arc<dyn Fn(ActorCell) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>> + Send + Sync>;

/// How to (re)start one child.
pub struct ChildSpec {
    pub name: &'static str,
    pub start: StartFn,
}

/// Shared flag read by the readiness probe.
#[derive(Clone, Default)]
pub struct Health {
    melted: Arc<AtomicBool>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        !self.melted.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ChildStatus {
    pub name: &'static str,
    pub running: bool,
    pub restarts: u64,
    pub gave_up: bool,
}

pub enum SupervisorMsg {
    Status(RpcReplyPort<Vec<ChildStatus>>),
    /// Stop every child without restarting it, then answer.
    Shutdown(RpcReplyPort<()>),
    /// Start (and from now on supervise) one more child: for actors that
    /// need the shared state, which exists only after the first children.
    Start(ChildSpec, RpcReplyPort<Result<(), String>>),
}

pub struct RootSupervisor;

pub struct SupervisorArgs {
    pub children: Vec<ChildSpec>,
    pub health: Health,
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    recent: VecDeque<Instant>,
    restarts: u64,
    gave_up: bool,
}

pub struct SupervisorState {
    children: Vec<Child>,
    by_id: HashMap<ActorId, usize>,
    health: Health,
    stopping: bool,
}

impl SupervisorState {
    async fn start_child(&mut self, idx: usize, me: &ActorCell) -> Result<(), SpawnErr> {
        let Some(child) = self.children.get_mut(idx) else {
            return Ok(());
        };
        let cell = (child.spec.start)(me.clone()).await?;
        self.by_id.insert(cell.get_id(), idx);
        child.cell = Some(cell);
        Ok(())
    }

    async fn on_child_exit(&mut self, id: ActorId, why: String, me: &ActorCell) {
        let Some(idx) = self.by_id.remove(&id) else {
            return;
        };
        let Some(child) = self.children.get_mut(idx) else {
            return;
        };
        child.cell = None;
        if self.stopping {
            return;
        }
        let now = Instant::now();
        while child.recent.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            child.recent.pop_front();
        }
        if child.recent.len() >= MAX_RESTARTS {
            child.gave_up = true;
            self.health.melted.store(true, Ordering::Relaxed);
            tracing::error!(actor = child.spec.name, reason = %why,
                "actor failed {} times within {:?}; not restarting it (readiness now reports unready)",
                MAX_RESTARTS, WINDOW);
            return;
        }
        child.recent.push_back(now);
        child.restarts += 1;
        let name = child.spec.name;
        tracing::error!(actor = name, reason = %why, "supervised actor exited; restarting it");
        if let Err(e) = self.start_child(idx, me).await {
            tracing::error!(actor = name, error = %e, "restart failed");
            if let Some(child) = self.children.get_mut(idx) {
                child.gave_up = true;
            }
            self.health.melted.store(true, Ordering::Relaxed);
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            children: args
                .children
                .into_iter()
                .map(|spec| Child { spec, cell: None, recent: VecDeque::new(), restarts: 0, gave_up: false })
                .collect(),
            by_id: HashMap::new(),
            health: args.health,
            stopping: false,
        };
        let me = myself.get_cell();
        for idx in 0..state.children.len() {
            state.start_child(idx, &me).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Status(reply) => {
                let status = state
                    .children
                    .iter()
                    .map(|c| ChildStatus {
                        name: c.spec.name,
                        running: c.cell.is_some(),
                        restarts: c.restarts,
                        gave_up: c.gave_up,
                    })
                    .collect();
                let _ = reply.send(status);
            }
            SupervisorMsg::Start(spec, reply) => {
                state.children.push(Child { spec, cell: None, recent: VecDeque::new(), restarts: 0, gave_up: false });
                let idx = state.children.len() - 1;
                let r = state.start_child(idx, &myself.get_cell()).await.map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                // Reverse start order: later children may depend on earlier ones.
                for child in state.children.iter_mut().rev() {
                    if let Some(cell) = child.cell.take() {
                        let _ = cell.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10))).await;
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let me = myself.get_cell();
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => state.on_child_exit(cell.get_id(), err.to_string(), &me).await,
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                state.on_child_exit(cell.get_id(), reason.unwrap_or_else(|| "stopped".into()), &me).await
            }
            _ => {}
        }
        Ok(())
    }
}

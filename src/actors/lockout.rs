//! Account lockout: `threshold` failed logins for one normalised email
//! within the lock window lock that email for the window. The counters live
//! in PostgreSQL (`store::lockouts`) so a restart or another replica sees
//! the same lock; this actor serialises this replica's reads and updates and
//! turns them into answers the login route can act on *before* it hashes.
//! Emails are keyed by HMAC, and unknown emails are counted exactly like
//! known ones, so the answers never reveal whether an account exists.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::clock::SharedClock;
use crate::store::{lockouts, Db, StoreError};

pub type EmailKey = [u8; 32];

pub enum LockoutMsg {
    /// Seconds until the lock lifts, if locked.
    Check {
        key: EmailKey,
        reply: RpcReplyPort<Result<Option<u64>, StoreError>>,
    },
    /// Count a failure; answers the lock's remaining seconds if this (or an
    /// earlier) failure locked the account.
    Failure {
        key: EmailKey,
        reply: RpcReplyPort<Result<Option<u64>, StoreError>>,
    },
    Reset {
        key: EmailKey,
        reply: RpcReplyPort<Result<(), StoreError>>,
    },
    /// See `LimiterMsg::InjectPanic`.
    InjectPanic,
}

pub struct Lockout;

pub struct LockoutArgs {
    pub db: Db,
    pub clock: SharedClock,
    pub threshold: u32,
    pub duration: Duration,
}

pub struct LockoutState {
    args: LockoutArgs,
}

fn secs_until(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> u64 {
    let ms = (t - now).num_milliseconds().max(0) as u64;
    ms.div_ceil(1000).max(1)
}

impl LockoutState {
    async fn check(&self, key: &EmailKey) -> Result<Option<u64>, StoreError> {
        let now = self.args.clock.now();
        let conn = self.args.db.conn().await?;
        Ok(lockouts::locked_until(&conn, key, now).await?.map(|t| secs_until(t, now)))
    }

    async fn failure(&self, key: &EmailKey) -> Result<Option<u64>, StoreError> {
        let now = self.args.clock.now();
        let window = chrono::Duration::from_std(self.args.duration).unwrap_or(chrono::Duration::minutes(15));
        let threshold = i32::try_from(self.args.threshold).unwrap_or(i32::MAX);
        let conn = self.args.db.conn().await?;
        let (_, locked) = lockouts::record_failure(&conn, key, now, threshold, window).await?;
        Ok(locked.map(|t| secs_until(t, now)))
    }

    async fn reset(&self, key: &EmailKey) -> Result<(), StoreError> {
        let conn = self.args.db.conn().await?;
        lockouts::reset(&conn, key).await
    }
}

impl Actor for Lockout {
    type Msg = LockoutMsg;
    type State = LockoutState;
    type Arguments = LockoutArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<LockoutMsg>,
        args: LockoutArgs,
    ) -> Result<LockoutState, ActorProcessingErr> {
        Ok(LockoutState { args })
    }

    async fn handle(
        &self,
        _me: ActorRef<LockoutMsg>,
        msg: LockoutMsg,
        st: &mut LockoutState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LockoutMsg::Check { key, reply } => {
                let _ = reply.send(st.check(&key).await);
            }
            LockoutMsg::Failure { key, reply } => {
                let _ = reply.send(st.failure(&key).await);
            }
            LockoutMsg::Reset { key, reply } => {
                let _ = reply.send(st.reset(&key).await);
            }
            LockoutMsg::InjectPanic => panic!("fault injected into the lockout actor by a test"),
        }
        Ok(())
    }
}

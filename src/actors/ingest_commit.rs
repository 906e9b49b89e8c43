//! One ingest commit: every job's events inserted (deduplicated), the new
//! ones folded into tasks, workers and queues, in one transaction.
//!
//! Statements lock rows in one global order — tasks by key, then workers by
//! key, then queues by key — so two commits running at once (one per ingest
//! lane) can wait on each other but never deadlock.

use std::collections::HashMap;

use uuid::Uuid;

use crate::actors::ingest::Job;
use crate::clock::SharedClock;
use crate::fleet::events::{Event, Kind};
use crate::fleet::projection::{self, QueueUpsert};
use crate::notify::triggers::{self, TaskFailure};
use crate::store::ingest::{self as store, Owned, Scoped};
use crate::store::{Db, StoreError};

/// Commit one group of batches; returns how many notifications it enqueued.
pub async fn commit(db: &Db, clock: &SharedClock, jobs: &[Job]) -> Result<u64, StoreError> {
    let now = clock.now();
    let mut conn = db.conn().await?;
    let tx = conn.transaction().await?;
    let scoped: Vec<Scoped<'_>> = jobs
        .iter()
        .flat_map(|j| {
            j.events.iter().map(move |e| Scoped {
                project_id: j.identity.project_id,
                agent_id: j.identity.agent_id,
                event: e,
            })
        })
        .collect();
    let t0 = std::time::Instant::now();
    let fresh = store::insert_events(&tx, &scoped, now).await?;
    let t_insert = t0.elapsed();
    // Fold per (project, agent): only events the insert reported as new.
    let mut groups: HashMap<(Uuid, Uuid), Vec<&Event>> = HashMap::new();
    let mut queues: HashMap<(Uuid, String, String), QueueUpsert> = HashMap::new();
    for j in jobs {
        let (p, a) = (j.identity.project_id, j.identity.agent_id);
        let group = groups.entry((p, a)).or_default();
        group.extend(j.events.iter().filter(|e| fresh.contains(&(p, e.id))));
        for q in &j.queues {
            keep_latest(&mut queues, p, q.clone());
        }
    }
    let projections_input: Vec<((Uuid, Uuid), Vec<&Event>)> = groups.into_iter().collect();
    let projections: Vec<((Uuid, Uuid), projection::Projection)> =
        projections_input.iter().map(|(k, events)| (*k, projection::project(events))).collect();
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    for ((project_id, agent_id), proj) in &projections {
        let (project_id, agent_id) = (*project_id, *agent_id);
        tasks.extend(proj.tasks.iter().map(|row| Owned { project_id, agent_id, row }));
        workers.extend(proj.workers.iter().map(|row| Owned { project_id, agent_id, row }));
        for q in &proj.queues {
            keep_latest(&mut queues, project_id, q.clone());
        }
    }
    // One statement per kind (not one per agent), each row once per
    // statement, in key order: fewer round trips, and concurrent commits
    // take row locks in the same order.
    for round in rounds(tasks, |o| (o.project_id, o.row.engine.clone(), o.row.task_id.clone())) {
        store::upsert_tasks(&tx, &round, now).await?;
    }
    for round in rounds(workers, |o| (o.project_id, o.row.engine.clone(), o.row.name.clone())) {
        store::upsert_workers(&tx, &round).await?;
    }
    let mut queues: Vec<((Uuid, String, String), QueueUpsert)> = queues.into_iter().collect();
    queues.sort_by(|a, b| a.0.cmp(&b.0));
    let queues: Vec<(Uuid, QueueUpsert)> = queues.into_iter().map(|((p, _, _), q)| (p, q)).collect();
    store::upsert_queues(&tx, &queues).await?;
    // Notifications for failures that were newly stored, in this same
    // transaction: a re-sent batch finds nothing new and enqueues nothing,
    // and a rolled-back batch enqueues nothing either. Only rows are
    // written here; delivery is the Notifier's, off this path.
    let failures: Vec<TaskFailure<'_>> = projections_input
        .iter()
        .flat_map(|((project, _), events)| {
            events.iter().filter(|e| e.kind == Kind::TaskFailed).map(move |e| TaskFailure {
                project_id: *project,
                engine: &e.engine,
                task_id: &e.task_id,
                occurred_at: e.occurred_at,
                data: &e.data,
            })
        })
        .collect();
    let enqueued = triggers::task_failures(&tx, &failures, now).await?;
    let t_upsert = t0.elapsed() - t_insert;
    tx.commit().await?;
    tracing::debug!(
        insert_ms = t_insert.as_millis() as u64,
        upsert_ms = t_upsert.as_millis() as u64,
        commit_ms = (t0.elapsed() - t_insert - t_upsert).as_millis() as u64,
        "ingest phases"
    );
    Ok(enqueued)
}

/// One upsert per queue per statement (PostgreSQL refuses to update a row
/// twice in one INSERT … ON CONFLICT); the newest depth wins.
fn keep_latest(map: &mut HashMap<(Uuid, String, String), QueueUpsert>, project: Uuid, q: QueueUpsert) {
    let key = (project, q.engine.clone(), q.name.clone());
    match map.get(&key) {
        Some(old) if old.at > q.at => {}
        _ => {
            map.insert(key, q);
        }
    }
}

/// Split rows so that no key repeats within a round (the same task seen by
/// two agents in one commit goes into a second statement), each round
/// sorted by key.
fn rounds<T, K: Ord + Clone + std::hash::Hash>(rows: Vec<T>, key: impl Fn(&T) -> K) -> Vec<Vec<T>> {
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Vec<(K, T)>> = Vec::new();
    for row in rows {
        let k = key(&row);
        let slot = seen.entry(k.clone()).or_insert(0);
        if out.len() <= *slot {
            out.push(Vec::new());
        }
        out[*slot].push((k, row));
        *slot += 1;
    }
    out.into_iter()
        .map(|mut round| {
            round.sort_by(|a, b| a.0.cmp(&b.0));
            round.into_iter().map(|(_, row)| row).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rounds;

    #[test]
    fn rounds_never_repeat_a_key_and_are_sorted() {
        let rows = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("b", 5), ("a", 6)];
        let out = rounds(rows, |r| r.0);
        assert_eq!(out, vec![vec![("a", 2), ("b", 1), ("c", 4)], vec![("a", 6), ("b", 3)], vec![("b", 5)]]);
        assert!(rounds(Vec::<(&str, i32)>::new(), |r| r.0).is_empty());
    }
}

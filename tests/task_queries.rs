//! The task list stays an index range scan, whatever the filters: this
//! EXPLAINs the exact statements the store prepares, on a seeded table, with
//! the generic plan PostgreSQL caches for a prepared statement.
//! docs/task-queries.md has the same plans measured on 1,000,000 tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use palisade::store::tasks::{list_query, Cursor, TaskFilter};
use serde_json::Value;

fn plan_nodes(v: &Value, out: &mut Vec<String>) {
    if let Some(t) = v.get("Node Type").and_then(Value::as_str) {
        let idx = v.get("Index Name").and_then(Value::as_str).unwrap_or("");
        out.push(format!("{t} {idx}").trim().to_string());
    }
    if let Some(children) = v.get("Plans").and_then(Value::as_array) {
        for c in children {
            plan_nodes(c, out);
        }
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn every_task_list_shape_is_an_index_scan_without_a_sort() {
    let srv = TestServer::start().await;
    let _admin = srv.admin().await;
    let ga: uuid::Uuid = srv.db.client().await.query_one("SELECT id FROM users", &[]).await.unwrap().get(0);
    let project = srv.make_project("big", ga).await;
    let c = srv.db.client().await;
    c.execute(
        "INSERT INTO tasks (project_id, engine, task_id, name, queue, worker, state, last_event_at, updated_at)
         SELECT $1, 'rq', 'task-' || g, 'jobs.t' || (g % 50), 'q' || (g % 3), 'w' || (g % 20),
                (ARRAY['succeeded','failed','started'])[1 + g % 3], now() - (g || ' seconds')::interval, now()
         FROM generate_series(1, 50000) g",
        &[&project],
    )
    .await
    .unwrap();
    c.batch_execute("ANALYZE tasks").await.unwrap();
    let cursor = Cursor {
        at: chrono::Utc::now() - chrono::Duration::seconds(20_000),
        engine: "rq".into(),
        task_id: "task-20000".into(),
    };
    let cases: Vec<(&str, TaskFilter, &str)> = vec![
        ("no filter", TaskFilter::default(), "tasks_recent"),
        ("state", TaskFilter { state: s("failed"), ..Default::default() }, "tasks_state_recent"),
        ("name", TaskFilter { name: s("jobs.t7"), ..Default::default() }, "tasks_name_recent"),
        ("queue", TaskFilter { queue: s("q1"), ..Default::default() }, "tasks_queue_recent"),
        ("worker", TaskFilter { worker: s("w3"), ..Default::default() }, "tasks_worker_recent"),
        ("deep page", TaskFilter { after: Some(cursor.clone()), ..Default::default() }, "tasks_recent"),
        (
            "state, deep page",
            TaskFilter { state: s("failed"), after: Some(cursor), ..Default::default() },
            "tasks_state_recent",
        ),
        (
            "time window",
            TaskFilter { since: Some(chrono::Utc::now() - chrono::Duration::hours(2)), ..Default::default() },
            "tasks_recent",
        ),
    ];
    // What a prepared statement runs once its plan is cached.
    c.batch_execute("SET plan_cache_mode = force_generic_plan").await.unwrap();
    let limit = 50i64;
    for (what, filter, index) in &cases {
        let q = list_query(&project, filter, &None, &limit);
        assert!(q.cacheable, "{what}");
        let stmt = c.prepare(&format!("EXPLAIN (FORMAT JSON) {}", q.sql)).await.unwrap();
        let plan: Value = c.query_one(&stmt, &q.params).await.unwrap().get(0);
        let mut nodes = Vec::new();
        plan_nodes(&plan[0]["Plan"], &mut nodes);
        assert!(nodes.iter().any(|n| n == &format!("Index Scan {index}")), "{what}: {nodes:?}");
        assert!(!nodes.iter().any(|n| n.contains("Sort") || n.contains("Seq Scan")), "{what}: {nodes:?}");
    }
    // Search is never cached: it is planned with its pattern (the plan shows
    // the literal, not `$2`), which is what lets PostgreSQL pick the trigram
    // index when the pattern is selective (docs/task-queries.md, 1M rows).
    c.batch_execute("SET plan_cache_mode = auto").await.unwrap();
    let filter = TaskFilter { search: s("task-4999"), ..Default::default() };
    let pattern = Some("%task-4999%".to_string());
    let q = list_query(&project, &filter, &pattern, &limit);
    assert!(!q.cacheable);
    let plan: Value = c.query_one(&format!("EXPLAIN (FORMAT JSON) {}", q.sql), &q.params).await.unwrap().get(0);
    let text = plan.to_string();
    assert!(text.contains("%task-4999%") && !text.contains("$2"), "search plan is generic: {text}");

    // And the store's own list answers the same pages as the SQL would.
    let conn = srv.running().state.db.conn().await.unwrap();
    let page =
        palisade::store::tasks::list(&conn, project, &TaskFilter { state: s("failed"), ..Default::default() }, 50)
            .await
            .unwrap();
    assert_eq!(page.len(), 50);
    assert!(page.iter().all(|t| t.state == "failed"));
    assert!(page.windows(2).all(|w| w[0].last_event_at >= w[1].last_event_at));
    srv.shutdown().await;
}

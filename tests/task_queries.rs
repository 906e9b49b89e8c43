//! The task list stays an index range scan, whatever the filters: this
//! EXPLAINs the exact query text the store runs, on a seeded table.
//! docs/task-queries.md has the same plans measured on 1,000,000 tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
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

#[tokio::test]
async fn every_task_list_filter_is_an_index_scan_without_a_sort() {
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
    let cases: [(&str, [Option<&str>; 5], &str); 5] = [
        ("no filter", [None, None, None, None, None], "tasks_recent"),
        ("state", [Some("failed"), None, None, None, None], "tasks_state_recent"),
        ("name", [None, Some("jobs.t7"), None, None, None], "tasks_name_recent"),
        ("queue", [None, None, Some("q1"), None, None], "tasks_queue_recent"),
        ("worker", [None, None, None, Some("w3"), None], "tasks_worker_recent"),
    ];
    let sql = format!("EXPLAIN (FORMAT JSON) {}", palisade::store::tasks::LIST_SQL);
    for (what, [state, name, queue, worker, engine], index) in cases {
        let none_ts: Option<chrono::DateTime<chrono::Utc>> = None;
        let none_s: Option<&str> = None;
        let row = c
            .query_one(
                &sql,
                &[
                    &project, &state, &name, &queue, &worker, &engine, &none_ts, &none_ts, &none_s, &none_ts, &none_s,
                    &none_s, &50i64,
                ],
            )
            .await
            .unwrap();
        let plan: Value = row.get(0);
        let mut nodes = Vec::new();
        plan_nodes(&plan[0]["Plan"], &mut nodes);
        assert!(nodes.iter().any(|n| n == &format!("Index Scan {index}")), "{what}: {nodes:?}");
        assert!(!nodes.iter().any(|n| n.contains("Sort") || n.contains("Seq Scan")), "{what}: {nodes:?}");
    }
    srv.shutdown().await;
}

//! Every way a queue ends goes through one store write and one worker function: its tasks are
//! closed in the same commit (each change in the change feed), and its report is written
//! before the end is visible.

use std::time::Duration;

use serde_json::json;
use testarena::model::Status;

use crate::helpers::spawn_app;

#[tokio::test]
async fn aborting_a_waiting_queue_closes_its_tasks_in_the_feed_after_its_report_is_written() {
    let app = spawn_app().await; // paused: the queue stays waiting
    let body = json!({
        "id": "never-ran", "repo": "https://git.example.org/fw.git", "environment": "esp32",
        "scenarios": ["scenarios/a.xml", "scenarios/b.xml"]
    });
    let r = app.post_json("/api/queues", &body).await;
    assert_eq!(r.status(), 201);
    let mut feed = app.state.store.subscribe();
    app.abort("never-ran").await;

    let report = app.root.join("queues/never-ran/report.html");
    let mut task_changes = Vec::new();
    let mut queue_ended = false;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(queue_ended && task_changes.len() == 2) {
            let c = feed.recv().await.expect("change feed");
            match &c.task {
                None if c.to == Some(Status::Aborted) => {
                    assert!(
                        report.exists(),
                        "the report is written before the end is seen"
                    );
                    queue_ended = true;
                }
                Some(task) => task_changes.push((task.to_string(), c.from, c.to)),
                None => {}
            }
        }
    })
    .await
    .expect("the queue and both tasks end in the change feed");
    assert_eq!(
        task_changes,
        [
            ("a".to_owned(), Some(Status::Waiting), Some(Status::Skipped)),
            ("b".to_owned(), Some(Status::Waiting), Some(Status::Skipped)),
        ]
    );
    let (_, q) = app.get_json("/api/queues/never-ran").await;
    assert_eq!(q["status"], "aborted");
    for t in q["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "skipped", "{q:#}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("aborted"),
        "the report shows the final status"
    );
    app.stop().await;
}

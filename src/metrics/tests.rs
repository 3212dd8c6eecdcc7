//! The exposition: every family, in both formats, after what happened.

use super::*;
use crate::model::{QueueId, QueueRequest};

fn queue() -> Queue {
    Queue {
        id: QueueId::parse("q").unwrap(),
        status: Status::Passed,
        request: QueueRequest {
            repo: "r".into(),
            branch: None,
            commit: None,
            environment: "esp32".into(),
            scenarios: vec![],
            priority: 0,
        },
        seq: 1,
        created_at: 500,
        started_at: Some(1_000),
        finished_at: Some(4_000),
        attempt: 1,
        error: None,
        origin: crate::model::Origin::Api,
        resolved_commit: None,
        rerun_of: None,
        reruns: Vec::new(),
    }
}

const LOOSE: SseLimits = SseLimits {
    total: 1000,
    per_queue: 1000,
};

#[test]
fn the_exposition_has_every_family_and_follows_what_happened() {
    let m = Metrics::new();
    m.enqueued(Source::Api);
    m.enqueued(Source::Gitea);
    m.enqueued(Source::Gitea);
    m.claimed(&queue());
    m.finished(&queue());
    m.test(TestStatus::Failed);
    let client = m.sse_client("log", Some("q"), LOOSE).unwrap();
    client.stall_counter().inc();
    m.removed(Removed::Queue, 2);
    m.freed(4096);
    m.request(Some("/api/queues/{id}"), &Method::GET, 200);
    m.request(Some("/api/queues/{id}"), &Method::GET, 200);
    m.request(None, &Method::from_bytes(b"BREW").unwrap(), 404);
    m.store_commits((3, 5));
    m.store_commits((4, 70));
    let counts = [(Status::Waiting, 3), (Status::Passed, 1)];
    let load = Load {
        counts: &counts,
        slots: 2,
        busy: 1,
        boards: 3,
        max_boards: 4,
    };
    m.store_commit_time().observe(0.0003);
    let version = env!("CARGO_PKG_VERSION");
    let lines = [
        "testarena_queues_enqueued_total{source=\"gitea\"} 2",
        "testarena_queues_enqueued_total{source=\"api\"} 1",
        "testarena_queues_finished_total{environment=\"esp32\",status=\"passed\"} 1",
        "testarena_queue_duration_seconds_sum{environment=\"esp32\"} 3.0",
        "testarena_queue_duration_seconds_count{environment=\"esp32\"} 1",
        "testarena_queue_wait_seconds_sum{environment=\"esp32\"} 0.5",
        "testarena_tests_total{status=\"failed\"} 1",
        "testarena_queues{status=\"waiting\"} 3",
        "testarena_slots 2",
        "testarena_slots_busy 1",
        "testarena_boards_busy 3",
        "testarena_boards_max 4",
        "testarena_store_commit_seconds_count 1",
        "testarena_sse_clients{stream=\"log\"} 1",
        "testarena_sse_dropped_total{stream=\"log\"} 1",
        "testarena_retention_removed_total{kind=\"queue\"} 2",
        "testarena_retention_removed_total{kind=\"mirror\"} 0",
        "testarena_retention_freed_bytes_total 4096",
        "testarena_http_requests_total{route=\"/api/queues/{id}\",method=\"GET\",status=\"200\"} 2",
        "testarena_http_requests_total{route=\"other\",method=\"other\",status=\"404\"} 1",
        "testarena_store_commits_total 4",
        "testarena_store_writes_total 70",
        &format!("testarena_build_info{{version=\"{version}\"}} 1"),
    ];
    for format in [Format::Classic, Format::OpenMetrics] {
        let text = m.render(format, &load);
        for line in lines {
            assert!(
                text.lines().any(|l| l == line),
                "{format:?}: missing {line:?} in:\n{text}"
            );
        }
        assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
    }
    // The classic format names a counter's help and type with `_total`, as Prometheus and
    // Grafana look them up; OpenMetrics names the family without it.
    let classic = m.render(Format::Classic, &load);
    for line in [
        "testarena_queue_wait_seconds_bucket{environment=\"esp32\",le=\"0.4\"} 0",
        "testarena_queue_wait_seconds_bucket{environment=\"esp32\",le=\"0.8\"} 1",
        "testarena_store_commit_seconds_bucket{le=\"0.0002\"} 0",
        "testarena_store_commit_seconds_bucket{le=\"0.0004\"} 1",
    ] {
        assert!(
            classic.lines().any(|l| l == line),
            "{line:?} in:\n{classic}"
        );
    }
    assert!(
        classic.contains("# TYPE testarena_tests_total counter\n"),
        "{classic}"
    );
    assert!(
        classic.contains("# HELP testarena_tests_total "),
        "{classic}"
    );
    let open = m.render(Format::OpenMetrics, &load);
    assert!(open.contains("# TYPE testarena_tests counter\n"), "{open}");
    drop(client);
    let text = m.render(Format::Classic, &Load::default());
    assert!(
        text.contains("testarena_sse_clients{stream=\"log\"} 0"),
        "{text}"
    );
}

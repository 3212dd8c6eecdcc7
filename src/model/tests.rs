//! The domain values: ids, statuses and transitions, durations, timestamps.

use super::*;

#[test]
fn status_round_trips_through_str_and_serde() {
    for st in Status::ALL {
        assert_eq!(st.as_str().parse::<Status>().unwrap(), st);
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(json, format!("\"{}\"", st.as_str()));
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
    }
    assert!("done".parse::<Status>().is_err());
}

#[test]
fn queue_transitions() {
    use Status::*;
    assert!(Status::queue_transition(Waiting, Running).is_ok());
    assert!(Status::queue_transition(Waiting, Aborted).is_ok());
    assert!(Status::queue_transition(Running, Passed).is_ok());
    assert!(Status::queue_transition(Running, Waiting).is_ok());
    assert!(Status::queue_transition(Waiting, Passed).is_err());
    assert!(Status::queue_transition(Running, Skipped).is_err());
    for terminal in [Passed, Failed, Error, TimedOut, Aborted] {
        for to in Status::ALL {
            assert!(
                Status::queue_transition(terminal, to).is_err(),
                "{terminal}→{to}"
            );
        }
    }
    assert!(Status::task_transition(Waiting, Skipped).is_ok());
    assert!(Status::task_transition(Skipped, Running).is_err());
}

#[test]
fn ids() {
    for good in ["a", "A1", "queue-1.2_x", &"x".repeat(64)] {
        assert!(QueueId::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "-a",
        ".a",
        "a/b",
        "a..b",
        "a b",
        "é",
        &"x".repeat(65),
        "../x",
    ] {
        assert!(QueueId::parse(bad).is_err(), "{bad}");
    }
    let json = serde_json::from_str::<QueueId>("\"a/b\"");
    assert!(json.is_err());
}

#[test]
fn task_ids_from_scenarios() {
    let ids = TaskId::from_scenarios(&[
        "scenarios/smoke.xml".into(),
        "other/smoke.xml".into(),
        "x/.hidden.xml".into(),
        "a b.xml".into(),
    ]);
    let ids: Vec<_> = ids.iter().map(|t| t.as_str().to_owned()).collect();
    assert_eq!(ids, ["smoke", "smoke-2", "t-hidden", "a-b"]);
}

#[test]
fn durations() {
    use std::time::Duration;
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("20m"), Ok(Duration::from_secs(1200)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["", "s", "1.5s", "-1s", "10x", "1 m", "99999999999999s"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    for d in ["500ms", "30s", "20m", "1h", "0s"] {
        assert_eq!(format_duration(parse_duration(d).unwrap()), d);
    }
}

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
}

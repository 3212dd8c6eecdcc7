//! The domain values: ids, statuses and transitions, durations, timestamps.

use std::collections::HashSet;

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

/// The quadratic algorithm `from_scenarios` had before it kept a set: the reference for the
/// ids it must still give.
fn from_scenarios_by_scanning(scenarios: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in scenarios {
        let base = task_stem(path);
        let mut candidate = base.clone();
        let mut n = 2;
        while out.contains(&candidate) {
            candidate = format!("{base}-{n}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

fn task_ids(scenarios: &[&str]) -> Vec<String> {
    let owned: Vec<String> = scenarios.iter().map(|s| (*s).to_owned()).collect();
    TaskId::from_scenarios(&owned)
        .into_iter()
        .map(|t| t.0)
        .collect()
}

#[test]
fn task_ids_skip_suffixes_that_other_names_took() {
    // An earlier file already spells the suffixed id: it is passed over, as before.
    assert_eq!(
        task_ids(&["a-2.xml", "a.xml", "a.xml"]),
        ["a-2", "a", "a-3"]
    );
    assert_eq!(
        task_ids(&["a.xml", "a.xml", "a-2.xml", "a.xml"]),
        ["a", "a-2", "a-2-2", "a-3"]
    );
    assert_eq!(
        task_ids(&["x/a.xml", "y/a.xml", "a-3.xml", "z/a.xml", "a-2.xml"]),
        ["a", "a-2", "a-3", "a-4", "a-2-2"]
    );
    assert_eq!(task_ids(&["", ".xml", "-.xml"]), ["t", "t-2", "t-"]);
    // Stems are cut at 56 characters, so long names sharing a prefix meet.
    let long = "p".repeat(80);
    let ids = task_ids(&[&format!("{long}1.xml"), &format!("{long}2.xml")]);
    assert_eq!(ids, ["p".repeat(56), format!("{}-2", "p".repeat(56))]);
}

#[test]
fn thousands_of_names_sharing_a_long_stem_get_distinct_valid_ids() {
    // 4,000 names that all cut to one 56-character stem: every one but the first takes a
    // suffix. Scanning from `-2` each time was about 8 million comparisons of long strings.
    let prefix = "s".repeat(60);
    let names: Vec<String> = (0..4000)
        .map(|i| format!("scenarios/{prefix}{i}.xml"))
        .collect();
    let ids = TaskId::from_scenarios(&names);
    assert_eq!(ids.len(), 4000);
    let distinct: HashSet<&str> = ids.iter().map(TaskId::as_str).collect();
    assert_eq!(distinct.len(), 4000);
    for id in &ids {
        assert!(TaskId::parse(id.as_str()).is_ok(), "{id}");
    }
    assert_eq!(ids[3999].as_str(), format!("{}-4000", "s".repeat(56)));
}

proptest::proptest! {
    /// Same ids as the scanning algorithm, on names chosen to collide: stems and stems that
    /// look like suffixed ids.
    #[test]
    fn task_ids_are_those_of_the_scanning_algorithm(
        names in proptest::collection::vec("(dir/)?(a|b|a-2|a-3|a-2-2|b-1|a_2|\\.a)(-[2-4])?(\\.xml)?", 0..40)
    ) {
        let ids: Vec<String> = TaskId::from_scenarios(&names).into_iter().map(|t| t.0).collect();
        proptest::prop_assert_eq!(ids, from_scenarios_by_scanning(&names));
    }
}

#[test]
fn durations() {
    use std::time::Duration;
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("20m"), Ok(Duration::from_secs(1200)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert_eq!(parse_duration("0d"), Ok(Duration::ZERO));
    let longest = Duration::from_secs(999_999_999_999 * 86_400);
    assert_eq!(parse_duration("999999999999d"), Ok(longest));
    for bad in [
        "",
        "s",
        "1.5s",
        "-1s",
        "10x",
        "1 m",
        "99999999999999s",
        "1w",
        "d",
        "1dd",
    ] {
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

//! Parser tests: every fixture under `fixtures/scenarios/` (good ones parse, bad ones give the
//! diagnostics written in their `<!-- expect: LINE:COL: MESSAGE -->` comments), and fuzzing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::parse::check_name;
use super::*;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

fn good(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/scenarios/good")
        .join(name);
    parse_file(&path).unwrap_or_else(|d| panic!("{name}: {d:?}"))
}

/// The `(line, column, message fragment)` triples a bad fixture announces.
fn expectations(bytes: &[u8]) -> Vec<(u32, u32, String)> {
    let text = String::from_utf8_lossy(bytes);
    let re = regex::Regex::new(r"<!-- expect: (\d+):(\d+): (.*?) -->").unwrap();
    re.captures_iter(&text)
        .map(|c| {
            (
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c[3].to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_bad_fixture_gives_exactly_its_expected_diagnostics() {
    let files = fixtures("scenarios/bad");
    assert!(files.len() >= 15, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let expected = expectations(&bytes);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!expected.is_empty(), "{name}: no expect comment");
        let diags = parse(&name, &bytes).expect_err(&name);
        let fits = diags.len() == expected.len()
            && diags
                .iter()
                .zip(&expected)
                .all(|(d, (line, column, fragment))| {
                    d.file == name
                        && (d.line, d.column) == (*line, *column)
                        && d.message.contains(fragment.as_str())
                });
        if !fits {
            let got: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            failures.push(format!("{name}: expected {expected:?}, got {got:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_good_fixture_parses() {
    let mut files = fixtures("scenarios/good");
    files.extend(fixtures("firmware-scenarios"));
    assert!(files.len() >= 5);
    for path in files {
        let s = parse_file(&path).unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()));
        assert!(s.test_count() > 0);
    }
}

#[test]
fn full_fixture_has_every_element() {
    let s = good("full.xml");
    assert_eq!(s.name, "full");
    assert_eq!(s.timeout, Duration::from_secs(20 * 60));
    assert_eq!(
        s.description.as_deref(),
        Some("Boots the board, talks to its shell and checks the image on the host.")
    );
    assert_eq!(s.suites.len(), 2);
    assert_eq!(s.test_count(), 5);

    let shell = &s.suites[0];
    assert_eq!(shell.name, "shell");
    assert_eq!(shell.description.as_deref(), Some("Console commands."));
    let ping = &shell.tests[0];
    assert_eq!(ping.description.as_deref(), Some("The shell answers."));
    assert_eq!(ping.timeout, Duration::from_secs(5));
    assert_eq!(
        ping.steps,
        [
            Step::Send {
                line: "ping".into()
            },
            Step::Expect {
                pattern: Pattern::Substring("pong".into()),
                timeout: DEFAULT_EXPECT_TIMEOUT,
            },
        ]
    );

    let add = &shell.tests[1];
    assert_eq!(add.name, "add numbers");
    assert_eq!(add.timeout, Duration::from_secs(10));
    let Step::Expect { pattern, timeout } = &add.steps[1] else {
        panic!("{:?}", add.steps)
    };
    assert!(matches!(pattern, Pattern::Regex(_)));
    assert!(pattern.matches("42") && !pattern.matches("142"));
    assert_eq!(*timeout, Duration::from_secs(2));
    assert!(
        matches!(&add.steps[2], Step::Expect { pattern: Pattern::Substring(s), .. } if s == "ok")
    );

    let escaped = &shell.tests[2];
    assert_eq!(
        escaped.steps,
        [
            Step::Send {
                line: r#"echo a <b> & "c" AB"#.into()
            },
            Step::Expect {
                pattern: Pattern::Substring(r#"a <b> & "c" AB"#.into()),
                timeout: DEFAULT_EXPECT_TIMEOUT,
            },
        ]
    );
    let empty = &shell.tests[3];
    assert_eq!(
        empty.steps[0],
        Step::Send {
            line: String::new()
        }
    );
    assert!(
        matches!(&empty.steps[1], Step::Expect { timeout, .. } if *timeout == Duration::from_millis(500))
    );

    let host = &s.suites[1];
    assert_eq!(host.name, "host.side_checks-1");
    let image = &host.tests[0];
    assert_eq!(image.timeout, Duration::from_secs(120));
    assert_eq!(
        image.steps,
        [
            Step::Run {
                command: "test -f build/fw.elf &&\n        echo image ok".into(),
                timeout: Duration::from_secs(90),
            },
            // A run without its own timeout gets the test's.
            Step::Run {
                command: "true".into(),
                timeout: Duration::from_secs(120)
            },
        ]
    );
}

#[test]
fn defaults_apply_when_timeouts_are_omitted() {
    let s = good("defaults.xml");
    assert_eq!(s.timeout, DEFAULT_SCENARIO_TIMEOUT);
    assert_eq!(DEFAULT_SCENARIO_TIMEOUT, Duration::from_secs(1800));
    let t = &s.suites[0].tests[0];
    assert_eq!(t.timeout, Duration::from_secs(60));
    assert_eq!(
        t.steps,
        [
            Step::Expect {
                pattern: Pattern::Substring("ready".into()),
                timeout: Duration::from_secs(10),
            },
            Step::Run {
                command: "true".into(),
                timeout: Duration::from_secs(60)
            },
        ]
    );
}

#[test]
fn names_may_repeat_across_suites_and_use_the_whole_alphabet() {
    let s = good("names.xml");
    assert_eq!(s.name, "0 names. with_all-chars");
    assert_eq!(s.suites[0].tests[0].name.len(), MAX_NAME_LEN);
    assert_eq!(s.suites[0].tests[1].name, s.suites[1].tests[0].name);
}

#[test]
fn byte_order_mark_is_skipped() {
    assert_eq!(good("bom.xml").name, "bom");
    let d = parse("b.xml", b"\xef\xbb\xbf<x/>").unwrap_err();
    assert_eq!((d[0].line, d[0].column), (1, 1));
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = "<scenario name=\"é\u{1F600}\" bad=\"1\"><suite name=\"s\"><test name=\"t\"><send/></test></suite></scenario>";
    let d = parse("u.xml", src.as_bytes()).unwrap_err();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (1, 11));
    assert!(d[0].message.contains("invalid scenario name"));
    assert_eq!((d[1].line, d[1].column), (1, 21));
}

#[test]
fn empty_and_blank_input_is_rejected() {
    for src in ["", "  \n", "<!-- only a comment -->"] {
        let d = parse("e.xml", src.as_bytes()).unwrap_err();
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("no root element"), "{d:?}");
    }
    let d = parse("e.xml", b"hello").unwrap_err();
    assert!(
        d[0].message.contains("text outside the root element"),
        "{d:?}"
    );
}

/// Parses on a thread with a small stack: a parser that recursed on depth would overflow it.
fn parse_on_small_stack(name: &'static str, bytes: Vec<u8>) -> Result<Scenario, Vec<Diagnostic>> {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || parse(name, &bytes))
        .unwrap()
        .join()
        .expect("the parser did not overflow its stack")
}

fn depth_error(d: &[Diagnostic]) -> bool {
    d.iter().any(|d| {
        d.message
            .starts_with("elements are nested more than 32 deep")
    })
}

#[test]
fn elements_nest_at_most_32_deep() {
    // 32 levels: other diagnostics, but not the depth.
    let ok = format!(
        "<scenario name=\"s\">{}{}</scenario>",
        "<a>".repeat(31),
        "</a>".repeat(31)
    );
    let d = parse("ok.xml", ok.as_bytes()).unwrap_err();
    assert!(!depth_error(&d), "{d:?}");
    // 33: one diagnostic, at the `<` of the element too deep; its line and column are right.
    let deep = format!(
        "<scenario>\n{}<a>{}</scenario>",
        "<a>".repeat(31),
        "</a>".repeat(32)
    );
    let d = parse("deep.xml", deep.as_bytes()).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(depth_error(&d), "{d:?}");
    assert_eq!(
        d[0].to_string(),
        "deep.xml:2:94: elements are nested more than 32 deep: a scenario nests four (scenario, suite, test, step)"
    );
    // An empty element counts as well.
    let empty = format!(
        "<scenario>{}<b/>{}</scenario>",
        "<a>".repeat(31),
        "</a>".repeat(31)
    );
    let d = parse("empty.xml", empty.as_bytes()).unwrap_err();
    assert_eq!((d.len(), d[0].column), (1, 1 + 10 + 31 * 3), "{d:?}");
    assert!(depth_error(&d), "{d:?}");
}

#[test]
fn a_hostile_depth_is_one_diagnostic_not_a_stack_overflow() {
    // 50,000 levels, never closed.
    let d = parse_on_small_stack("deep.xml", "<a>".repeat(50_000).into_bytes()).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (1, 1 + 32 * 3));
    assert!(depth_error(&d), "{d:?}");
    // 350 KB of nested elements, well-formed, with attributes and text on the way.
    let level = "<e k=\"v\">t";
    let n = 350_000 / (level.len() + 4);
    let well_formed = format!("{}{}", level.repeat(n), "</e>".repeat(n));
    assert!(well_formed.len() > 340_000);
    let d = parse_on_small_stack("wide.xml", well_formed.into_bytes()).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(depth_error(&d), "{d:?}");
}

/// Found by fuzzing (`fixtures/fuzz/scenario/`): 100,000 elements with a diagnostic each on
/// one line took minutes, each diagnostic counting the characters of the line up to it.
#[test]
fn many_diagnostics_on_one_long_line_are_quick() {
    let n = 100_000;
    let text = format!(
        "<scenario name=\"s\"><suite name=\"s\"><test name=\"t\"><send>\u{e9}</send>{}</test></suite></scenario>",
        "<description/>".repeat(n)
    );
    let started = std::time::Instant::now();
    let diags = parse("long.xml", text.as_bytes()).unwrap_err();
    let took = started.elapsed();
    assert_eq!(diags.len(), n - 1, "{:?}", diags.first());
    assert!(
        diags[0].message.contains("a second <description>"),
        "{}",
        diags[0]
    );
    // Columns count characters: the `é` is two bytes.
    let last = text.rfind("<description/>").unwrap();
    assert_eq!(
        diags[n - 2].to_string(),
        format!("long.xml:1:{}: a second <description> in <test>", last)
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn unreadable_file_is_one_diagnostic_at_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.xml");
    let d = parse_file(&path).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].column), (1, 1));
    assert_eq!(d[0].file, path.display().to_string());
    assert!(
        d[0].to_string()
            .starts_with(&format!("{}:1:1: cannot read", path.display()))
    );
}

#[test]
fn name_rules() {
    for ok in ["a", "A b", "9", "a.b-c_d e", &"x".repeat(64)] {
        assert_eq!(check_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        " a",
        ".a",
        "-a",
        "_a",
        "a/b",
        "a\\b",
        "a..b",
        "é",
        "a\tb",
        &"x".repeat(65),
    ] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn pattern_matching_and_display() {
    let sub = Pattern::Substring("po ng".into());
    assert!(sub.matches("-> po ng <-") && !sub.matches("pong"));
    assert_eq!(sub.to_string(), "\"po ng\"");
    let re = Pattern::Regex(regex::Regex::new("^v[0-9]+$").unwrap());
    assert!(re.matches("v12") && !re.matches("v1.2"));
    assert_eq!(re.to_string(), "/^v[0-9]+$/");
    let d = Diagnostic {
        file: "a.xml".into(),
        line: 3,
        column: 5,
        message: "m".into(),
    };
    assert_eq!(d.to_string(), "a.xml:3:5: m");
}

/// A good file to mutate.
fn full_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios/good/full.xml"))
        .unwrap()
}

fn assert_sane(result: Result<Scenario, Vec<Diagnostic>>) {
    if let Err(diags) = result {
        assert!(!diags.is_empty());
        assert!(diags.iter().all(|d| d.line >= 1 && d.column >= 1));
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_sane(parse("fuzz.xml", &bytes));
    }

    #[test]
    fn arbitrary_xmlish_text_never_panics(s in r#"[<>/="'a-z &;#!\[\]?\n-]{0,200}"#) {
        assert_sane(parse("fuzz.xml", s.as_bytes()));
    }

    #[test]
    fn mutated_good_file_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8)
    ) {
        let mut bytes = full_bytes();
        for (at, op, byte) in edits {
            let i = at.index(bytes.len().max(1)).min(bytes.len());
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        assert_sane(parse("mutated.xml", &bytes));
    }
}

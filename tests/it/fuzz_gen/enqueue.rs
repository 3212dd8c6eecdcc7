//! Target `enqueue`: the body of `POST /api/queues`. The JSON is read into `EnqueueBody` with
//! serde (as the endpoint does), then checked by `api::validate::enqueue`.
//!
//! Bodies are objects with the request's members, each the right value (ids, git URLs, ref
//! names, commit hashes, scenario paths with odd Unicode, 0 to 256 scenarios, priorities to
//! ±1000), or (hostile) any JSON value, a value past a limit (257 or 200,000 scenarios, paths
//! over 1,024 bytes, `i32::MAX`, `1e309`, `-0`), left out, given twice, or next to unknown
//! members; or any JSON value at all, deeply nested. A valid body must be accepted as it was
//! written; a refusal must name the field and say why.

use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use testarena::api::validate::{EnqueueBody, enqueue};
use testarena::config::Config;
use testarena::model::QueueRequest;

use super::common::{
    MAX_INPUT, Mutation, WORDS, apply, message, mutations, odd_string, repeat_to, tame_text,
};
use super::json::{self, J, JStr, Members, extra_members, member, object, s, valid_jstr};
use super::runner::{Input, Target, Verdict};

pub struct EnqueueTarget;

#[derive(Clone, Debug)]
pub struct EnqueueCase {
    body: J,
    valid: bool,
    mutations: Vec<Mutation>,
    config: usize,
}

fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            "",
            "[worker]\nallowed_repos = [\"https://gitea.example.invalid/\", \"git@\", \"/srv/fuzz-git/\"]\n[environments.\"fw.v2_x-1\"]\nbuild = [\"make\"]\nsimulate = [\"qemu\"]\nready = \"READY\"\nbuild_timeout = \"1m\"\nboot_timeout = \"1s\"\n",
        ]
        .iter()
        .map(|t| Config::from_toml("fuzz.toml", t).expect("a fuzz configuration"))
        .collect()
    })
}

pub const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"repo\":",
    "\"scenarios\":",
    "\"priority\":",
    "null",
    "\"\\ud800\"",
    "\\u0000",
    "1e309",
    "-0",
    "2147483648",
    "\n",
    " ",
    "\u{feff}",
];

impl Target for EnqueueTarget {
    type Case = EnqueueCase;
    const NAME: &'static str = "enqueue";

    fn strategy() -> BoxedStrategy<EnqueueCase> {
        let body = prop_oneof![
            4 => request(false).prop_map(|b| (b, true, 0usize)),
            5 => (request(true), 0..configs().len()).prop_map(|(b, c)| (b, false, c)),
            1 => json::value().prop_map(|b| (b, false, 0usize)),
            1 => (json::depth(), request(true)).prop_map(|(depth, b)| (J::Deep { depth, object: true, closed: true, inner: Box::new(b) }, false, 0usize)),
        ];
        (body, mutations(TOKENS))
            .prop_map(|((body, valid, config), mutations)| EnqueueCase {
                body,
                valid,
                mutations,
                config,
            })
            .boxed()
    }

    fn render(case: &EnqueueCase) -> Input {
        let mut bytes = json::render(&case.body);
        apply(&mut bytes, &case.mutations);
        Input {
            bytes,
            note: format!("configuration {}", case.config),
        }
    }

    fn check(case: &EnqueueCase, input: &Input) -> Verdict {
        // A rendering cut at `MAX_INPUT` is not the body built.
        let expect = (case.valid && case.mutations.is_empty() && input.bytes.len() <= MAX_INPUT)
            .then(|| expected(&case.body));
        verdict(&input.bytes, &configs()[case.config], expect.as_ref())
    }

    fn replay(bytes: &[u8]) -> Verdict {
        let mut outcome = "";
        for config in configs() {
            outcome = verdict(bytes, config, None)?;
        }
        Ok(outcome)
    }
}

/// The id (if given) and request a valid body must become.
fn expected(body: &J) -> (Option<String>, QueueRequest) {
    let text = |k: &str| -> Option<String> {
        match field(body, k)? {
            J::Str(s) => Some(s.text.clone()),
            _ => None,
        }
    };
    let scenarios = match field(body, "scenarios") {
        Some(J::Arr(items)) => items
            .iter()
            .filter_map(|j| match j {
                J::Str(s) => Some(s.text.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let priority = match field(body, "priority") {
        Some(J::Num(n)) => n.parse().unwrap_or(0),
        _ => 0,
    };
    (
        text("id"),
        QueueRequest {
            repo: text("repo").unwrap_or_default(),
            branch: text("branch"),
            commit: text("commit"),
            environment: text("environment").unwrap_or_default(),
            scenarios,
            priority,
        },
    )
}

fn field<'a>(body: &'a J, name: &str) -> Option<&'a J> {
    match body {
        J::Obj(members) => members.iter().find(|(k, _)| k.text == name).map(|(_, v)| v),
        _ => None,
    }
}

fn verdict(
    bytes: &[u8],
    config: &Config,
    expect: Option<&(Option<String>, QueueRequest)>,
) -> Verdict {
    let body: EnqueueBody = match serde_json::from_slice(bytes) {
        Ok(body) => body,
        Err(e) => {
            message("a JSON error", &e.to_string())?;
            if expect.is_some() {
                return Err(format!("a valid body is not read: {e}"));
            }
            return Ok(match e.classify() {
                serde_json::error::Category::Data => "refused: JSON of the wrong shape",
                _ => "refused: not JSON",
            });
        }
    };
    match enqueue(&body, config) {
        Ok((id, request)) => {
            if !testarena::model::PRIORITIES.contains(&request.priority)
                || request.scenarios.len() > testarena::model::MAX_SCENARIOS
                || request.repo.trim().is_empty()
            {
                return Err(format!("accepted a request out of bounds: {request:?}"));
            }
            if let Some((want_id, want)) = expect
                && (want_id.as_ref().is_some_and(|w| w != id.as_str()) || &request != want)
            {
                return Err(format!(
                    "a valid body became {id} {request:?}, expected {want_id:?} {want:?}"
                ));
            }
            Ok("accepted")
        }
        Err(e) => {
            message("an enqueue refusal", &e.message)?;
            if e.status != axum::http::StatusCode::BAD_REQUEST || e.field.is_none() {
                return Err(format!(
                    "a refusal with status {} and field {:?}: {}",
                    e.status, e.field, e.message
                ));
            }
            if e.message.len() > 4096 {
                return Err(format!(
                    "a refusal of {} bytes: {}…",
                    e.message.len(),
                    &e.message[..e.message.floor_char_boundary(200)]
                ));
            }
            if expect.is_some() {
                return Err(format!("a valid body was refused: {}", e.message));
            }
            Ok(match e.field.as_deref() {
                Some("id") => "refused: id",
                Some("repo") => "refused: repo",
                Some("branch") => "refused: branch",
                Some("commit") => "refused: commit",
                Some("environment") => "refused: environment",
                Some("scenarios") => "refused: scenarios",
                Some("priority") => "refused: priority",
                _ => "refused: other field",
            })
        }
    }
}

// ---- generators -------------------------------------------------------------------------------

fn id() -> BoxedStrategy<String> {
    let first = prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('0', '9'),
        proptest::char::range('A', 'Z')
    ];
    let rest = prop_oneof![6 => proptest::char::range('a', 'z'), 1 => select(&['.', '_', '-', '7', 'Q'][..])];
    (
        first,
        prop_oneof![4 => vec(rest.clone(), 0..12), 1 => vec(rest, 60..64)],
    )
        .prop_map(|(f, r)| {
            let mut s: String = std::iter::once(f).chain(r).collect();
            while s.contains("..") {
                s = s.replace("..", "._");
            }
            s
        })
        .boxed()
}

fn host() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just("gitea.example.invalid".to_owned()),
        1 => (tame_text(1, 10), select(&["", ".org", ":3000", ".example.invalid"][..])).prop_map(|(h, t)| format!("h{h}{t}")),
    ]
    .boxed()
}

fn path_segments(max: usize) -> BoxedStrategy<String> {
    vec(tame_text(1, 12), 1..max)
        .prop_map(|s| s.join("/"))
        .boxed()
}

fn repo() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (host(), path_segments(4)).prop_map(|(h, p)| format!("https://{h}/{p}.git")),
        1 => (host(), path_segments(3)).prop_map(|(h, p)| format!("ssh://git@{h}/{p}")),
        1 => (host(), path_segments(3)).prop_map(|(h, p)| format!("git@{h}:{p}.git")),
        1 => (host(), path_segments(2)).prop_map(|(h, p)| {
            let url = format!("https://{h}/{p}/");
            let mut long = repeat_to(&url, 2000);
            let end = long.floor_char_boundary(2000);
            long.truncate(end);
            long
        }),
    ]
    .boxed()
}

fn branch() -> BoxedStrategy<String> {
    let part = (
        prop_oneof![proptest::char::range('a', 'z'), proptest::char::range('0', '9'), Just('\u{e9}'), Just('\u{65e5}')],
        vec(prop_oneof![6 => proptest::char::range('a', 'z'), 1 => select(&['_', '-', '.', '\u{1f600}', '@', '#', '!'][..])], 0..10),
    )
        .prop_map(|(f, r)| {
            let s: String = std::iter::once(f).chain(r).collect();
            // No part may end in `.` or `.lock`, nor hold `..` or `@{`.
            format!("{}x", s.replace("..", "_"))
        });
    vec(part, 1..4).prop_map(|parts| parts.join("/")).boxed()
}

fn commit() -> BoxedStrategy<String> {
    (4usize..=64, vec(select(&b"0123456789abcdefABCDEF"[..]), 64))
        .prop_map(|(len, d)| String::from_utf8(d[..len].to_vec()).expect("hex"))
        .boxed()
}

fn scenario_path() -> BoxedStrategy<String> {
    prop_oneof![
        6 => path_segments(4).prop_map(|p| format!("scenarios/{p}.xml")),
        1 => tame_text(1, 4).prop_map(|s| {
            // Exactly at the limit of 1,024 bytes.
            let unit = format!("{s}/");
            let mut p = String::new();
            while p.len() + unit.len() <= 1024 {
                p.push_str(&unit);
            }
            let mut p = p.trim_end_matches('/').to_owned();
            let pad = 1024 - p.len();
            p.push_str(&"z".repeat(pad));
            p
        }),
    ]
    .boxed()
}

fn scenarios(hostile: bool) -> BoxedStrategy<J> {
    let list = prop_oneof![
        6 => vec(scenario_path(), 0..5),
        1 => vec(scenario_path(), 250..=256),
    ]
    .prop_map(|items| J::Arr(items.into_iter().map(s).collect()));
    if !hostile {
        return list.boxed();
    }
    let path = prop_oneof![
        4 => scenario_path(),
        1 => select(WORDS).prop_map(str::to_owned),
        1 => odd_string(),
        1 => Just("x".repeat(1025)),
    ];
    prop_oneof![
        12 => list,
        4 => vec(path.prop_map(s), 0..6).prop_map(J::Arr),
        1 => (prop_oneof![4 => Just(257u32), 1 => 257u32..200_000], scenario_path()).prop_map(|(n, p)| J::Repeat { n, item: Box::new(s(p)) }),
    ]
    .boxed()
}

fn priority(hostile: bool) -> BoxedStrategy<J> {
    let good = prop_oneof![
        4 => (-1000i32..=1000).prop_map(|p| J::Num(p.to_string())),
        1 => select(&["-1000", "1000", "0"][..]).prop_map(|p| J::Num(p.to_owned())),
    ];
    if hostile {
        prop_oneof![
            4 => good,
            2 => json::number().prop_map(J::Num),
            1 => select(&["1000", "-0", "0"][..]).prop_map(s),
        ]
        .boxed()
    } else {
        good.boxed()
    }
}

/// A string member: the right values, or (hostile) odd ones.
fn text_member(good: BoxedStrategy<String>, hostile: bool) -> BoxedStrategy<J> {
    if hostile {
        prop_oneof![
            6 => valid_jstr(good),
            1 => valid_jstr(select(WORDS).prop_map(str::to_owned).boxed()),
            2 => json::jstr(odd_string()).prop_map(J::Str),
        ]
        .boxed()
    } else {
        valid_jstr(good)
    }
}

fn optional(name: &'static str, value: BoxedStrategy<J>, hostile: bool) -> BoxedStrategy<Members> {
    prop_oneof![
        1 => Just(vec![(name, None)]),
        2 => member(name, value, hostile),
    ]
    .boxed()
}

fn request(hostile: bool) -> BoxedStrategy<J> {
    let environment = select(&["esp32", "xtensa-sim"][..])
        .prop_map(str::to_owned)
        .boxed();
    let environment = if hostile {
        prop_oneof![4 => environment, 1 => Just("fw.v2_x-1".to_owned()), 1 => select(&["ESP32", "esp32 ", "", "..", "xtensa"][..]).prop_map(str::to_owned)].boxed()
    } else {
        environment
    };
    let members: Vec<BoxedStrategy<Members>> = vec![
        optional("id", text_member(id(), hostile), hostile),
        member("repo", text_member(repo(), hostile), hostile),
        optional("branch", text_member(branch(), hostile), hostile),
        optional("commit", text_member(commit(), hostile), hostile),
        member("environment", text_member(environment, hostile), hostile),
        optional("scenarios", scenarios(hostile), hostile),
        optional("priority", priority(hostile), hostile),
    ];
    let extra = if hostile {
        prop_oneof![
            6 => extra_members(true),
            1 => select(&["Repo", "colour", "repo ", "scenario"][..]).prop_map(|k| vec![(JStr::plain(k), s("x"))]),
        ]
        .boxed()
    } else {
        extra_members(false)
    };
    (members, extra, any::<bool>())
        .prop_map(|(m, extra, reversed)| {
            let mut m = m;
            if reversed {
                m.reverse();
            }
            object(m, extra)
        })
        .boxed()
}

/// `cases` generated bodies (seeded): the bytes, and whether the body is valid as written.
pub fn bodies(cases: usize, seed: u64) -> Vec<(Vec<u8>, bool)> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&(!seed).to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::XorShift, &bytes),
    );
    let strategy = EnqueueTarget::strategy();
    (0..cases)
        .filter_map(|_| strategy.new_tree(&mut runner).ok())
        .map(|tree| {
            let case = tree.current();
            let input = EnqueueTarget::render(&case);
            (
                input.bytes,
                case.valid && case.mutations.is_empty() && case.config == 0,
            )
        })
        .collect()
}

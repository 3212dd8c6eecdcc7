//! Target `webhook`: Gitea deliveries. `hooks::gitea::decide(event, body, &GiteaConfig)` on
//! push and pull-request payloads shaped like Gitea's (every member the right type, or any
//! JSON value, left out, given twice; unknown members; any event name), then what
//! `POST /api/hooks/gitea` does with a queued one (`from_this_gitea`, `[worker] allowed_repos`,
//! `api::validate::enqueue`), and `hooks::signature_matches` on the body with the right
//! signature (also uppercase, padded) and wrong ones (a digit changed, cut, extended, another
//! secret, any string).
//!
//! Valid deliveries (a branch or tag push of a commit, an opened or synchronized pull request)
//! must be queued with their commit, branch and repository, or ignored for a reason the
//! configuration gives (a branch filter, a closed pull request).

use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use testarena::api::validate::{EnqueueBody, enqueue};
use testarena::config::Config;
use testarena::hooks::gitea::{Decision, decide, from_this_gitea};
use testarena::hooks::{sign, signature_matches};

use super::common::{
    MAX_INPUT, Mutation, WORDS, apply, long_len, message, mutations, odd_string, repeat_to,
    tame_text,
};
use super::json::{self, J, Members, extra_members, member, object, s, valid_jstr};
use super::runner::{Input, Target, Verdict};

pub struct WebhookTarget;

#[derive(Clone, Debug)]
pub struct WebhookCase {
    event: String,
    payload: J,
    /// Every member is what Gitea sends: the decision is known.
    valid: bool,
    mutations: Vec<Mutation>,
    config: usize,
    secret: Vec<u8>,
    tweak: Tweak,
}

/// What is done to the right signature before it is checked.
#[derive(Clone, Debug)]
enum Tweak {
    Exact,
    Upper,
    Padded,
    Flip(u32),
    Cut(u32),
    Append(String),
    Replace(String),
    OtherSecret,
}

/// The configurations deliveries are decided under.
fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            "[gitea]\nsecret = \"s\"\n",
            "[gitea]\nsecret = \"s\"\nbranches = [\"main\", \"release/1.x\", \"\u{65e5}\u{672c}\"]\npriority = 5\n",
            "[gitea]\nsecret = \"s\"\nurl = \"https://gitea.example.invalid\"\ntoken = \"t\"\nenvironment = \"xtensa-sim\"\nscenarios = [\"scenarios/a.xml\"]\n",
            "[gitea]\nsecret = \"s\"\nurl = \"https://gitea.example.invalid/\"\ntoken = \"t\"\npriority = -1000\n[worker]\nallowed_repos = [\"https://gitea.example.invalid/\", \"git@gitea.example.invalid:\", \"/srv/fuzz-git/\"]\n",
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
    "\"ref\":",
    "\"after\":",
    "\"repository\":",
    "null",
    "\"\\ud800\"",
    "\\u0000",
    "1e309",
    "-0",
    "\n",
    " ",
    "\u{feff}",
];

impl Target for WebhookTarget {
    type Case = WebhookCase;
    const NAME: &'static str = "webhook";

    fn strategy() -> BoxedStrategy<WebhookCase> {
        let delivery = prop_oneof![
            4 => push(false).prop_map(|p| ("push".to_owned(), p, true)),
            4 => pull_request(false).prop_map(|p| ("pull_request".to_owned(), p, true)),
            4 => push(true).prop_map(|p| ("push".to_owned(), p, false)),
            4 => pull_request(true).prop_map(|p| ("pull_request".to_owned(), p, false)),
            1 => (event(), json::value()).prop_map(|(e, p)| (e, p, false)),
            1 => (event(), push(true)).prop_map(|(e, p)| (e, p, false)),
        ];
        (
            delivery,
            mutations(TOKENS),
            0..configs().len(),
            secret(),
            tweak(),
        )
            .prop_map(
                |((event, payload, valid), mutations, config, secret, tweak)| WebhookCase {
                    event,
                    payload,
                    valid,
                    mutations,
                    config,
                    secret,
                    tweak,
                },
            )
            .boxed()
    }

    fn render(case: &WebhookCase) -> Input {
        let mut bytes = json::render(&case.payload);
        apply(&mut bytes, &case.mutations);
        Input {
            bytes,
            note: format!(
                "event {:?}, configuration {}, secret {:?}, signature {:?}",
                case.event,
                case.config,
                String::from_utf8_lossy(&case.secret),
                case.tweak
            ),
        }
    }

    fn check(case: &WebhookCase, input: &Input) -> Verdict {
        let config = &configs()[case.config];
        // A rendering cut at `MAX_INPUT` is not the payload built.
        let expect = if case.valid && case.mutations.is_empty() && input.bytes.len() <= MAX_INPUT {
            expected(&case.event, &case.payload, config)
        } else {
            None
        };
        let outcome = decision(&case.event, &input.bytes, config, expect.as_ref())?;
        signature(&case.secret, &input.bytes, &case.tweak)?;
        Ok(outcome)
    }

    fn replay(bytes: &[u8]) -> Verdict {
        let mut outcome = "ignored";
        for event in ["push", "pull_request", "issues"] {
            for config in configs() {
                let o = decision(event, bytes, config, None)?;
                if event == "push" {
                    outcome = o;
                }
            }
        }
        for tweak in [
            Tweak::Exact,
            Tweak::Upper,
            Tweak::Flip(7),
            Tweak::OtherSecret,
        ] {
            signature(b"s3cret", bytes, &tweak)?;
        }
        Ok(outcome)
    }
}

/// What a valid delivery must become.
#[derive(Debug)]
enum Expected {
    Queue {
        commit: String,
        branch: Option<String>,
        repo: String,
    },
    Ignore,
}

/// Reads the decision off a valid payload: the oracle.
fn expected(event: &str, payload: &J, config: &Config) -> Option<Expected> {
    let repo = text(get(payload, &["repository", "clone_url"])?)?.to_owned();
    match event {
        "push" => {
            let git_ref = text(get(payload, &["ref"])?)?;
            let commit = text(get(payload, &["after"])?)?.to_owned();
            if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
                let filtered = &config.gitea.branches;
                if !filtered.is_empty() && !filtered.iter().any(|b| b == branch) {
                    return Some(Expected::Ignore);
                }
                Some(Expected::Queue {
                    commit,
                    branch: Some(branch.to_owned()),
                    repo,
                })
            } else if git_ref.starts_with("refs/tags/") {
                Some(Expected::Queue {
                    commit,
                    branch: None,
                    repo,
                })
            } else {
                Some(Expected::Ignore)
            }
        }
        "pull_request" => {
            let action = text(get(payload, &["action"])?)?;
            let commit = text(get(payload, &["pull_request", "head", "sha"])?)?.to_owned();
            if ["opened", "reopened", "synchronized", "synchronize"].contains(&action) {
                Some(Expected::Queue {
                    commit,
                    branch: None,
                    repo,
                })
            } else {
                Some(Expected::Ignore)
            }
        }
        _ => Some(Expected::Ignore),
    }
}

fn get<'a>(j: &'a J, path: &[&str]) -> Option<&'a J> {
    let Some((first, rest)) = path.split_first() else {
        return Some(j);
    };
    match j {
        J::Obj(members) => members
            .iter()
            .find(|(k, _)| k.text == *first)
            .and_then(|(_, v)| get(v, rest)),
        _ => None,
    }
}

fn text(j: &J) -> Option<&str> {
    match j {
        J::Str(s) if s.style <= 1 => Some(&s.text),
        _ => None,
    }
}

/// `decide`, then what the endpoint does with a queued delivery.
fn decision(event: &str, body: &[u8], config: &Config, expect: Option<&Expected>) -> Verdict {
    let decided = decide(event, body, &config.gitea);
    let wanted = match decided {
        Err(e) => {
            message("a malformed delivery", &e.0)?;
            if let Some(x) = expect {
                return Err(format!(
                    "a valid delivery is malformed: {}; expected {x:?}",
                    e.0
                ));
            }
            return Ok("malformed");
        }
        Ok(Decision::Ignore(why)) => {
            message("an ignored delivery", &why)?;
            if let Some(x @ Expected::Queue { .. }) = expect {
                return Err(format!(
                    "a valid delivery was ignored: {why}; expected {x:?}"
                ));
            }
            return Ok("ignored");
        }
        Ok(Decision::Queue(w)) => w,
    };
    let commit_ok = wanted.commit.len() >= 7
        && wanted.commit.chars().all(|c| c.is_ascii_hexdigit())
        && wanted.commit.chars().any(|c| c != '0');
    let environment = &config.gitea.environments[0];
    if !commit_ok || wanted.why.is_empty() || wanted.queue_id(environment).as_str().len() > 64 {
        return Err(format!(
            "a queued delivery with a bad commit, reason or id: {wanted:?}"
        ));
    }
    match expect {
        Some(Expected::Ignore) => {
            return Err(format!("a delivery to ignore was queued: {wanted:?}"));
        }
        Some(Expected::Queue {
            commit,
            branch,
            repo,
        }) if (commit, branch, repo) != (&wanted.commit, &wanted.branch, &wanted.repo) => {
            return Err(format!(
                "queued {wanted:?}, expected commit {commit:?}, branch {branch:?}, repo {repo:?}"
            ));
        }
        _ => {}
    }
    if let Err(m) = from_this_gitea(&wanted.repo, &config.gitea) {
        message("a repository off [gitea] url", &m)?;
        return Ok("queued: not from this gitea");
    }
    if let Err(m) = config.worker.allowed_repos.check(&wanted.repo) {
        message("a repository not allowed", &m)?;
        return Ok("queued: repository not allowed");
    }
    let gitea = &config.gitea;
    let body = EnqueueBody {
        id: Some(wanted.queue_id(environment).to_string()),
        repo: wanted.repo,
        branch: wanted.branch,
        commit: Some(wanted.commit),
        environment: environment.clone(),
        scenarios: Some(gitea.scenarios.clone()),
        priority: Some(gitea.priority),
    };
    match enqueue(&body, config) {
        Ok(_) => Ok("queued: enqueued"),
        Err(e) => {
            message("a refused webhook enqueue", &e.message)?;
            Ok("queued: enqueue refused")
        }
    }
}

/// The right signature verifies (in either case, padded); a wrong one does not.
fn signature(secret: &[u8], body: &[u8], tweak: &Tweak) -> Result<(), String> {
    let right = sign(secret, body);
    if !signature_matches(secret, body, &right) {
        return Err(format!("the signature {right} of the body does not verify"));
    }
    let (sig, key, should_match) = match tweak {
        Tweak::Exact => (right.clone(), secret.to_vec(), true),
        Tweak::Upper => (right.to_uppercase(), secret.to_vec(), true),
        Tweak::Padded => (format!(" {right}\t\n"), secret.to_vec(), true),
        Tweak::Flip(i) => {
            let i = *i as usize % right.len();
            let mut s = right.clone().into_bytes();
            s[i] = if s[i] == b'0' { b'1' } else { b'0' };
            (String::from_utf8(s).expect("hex"), secret.to_vec(), false)
        }
        Tweak::Cut(n) => (
            right[..*n as usize % right.len()].to_owned(),
            secret.to_vec(),
            false,
        ),
        Tweak::Append(more) => (
            format!("{right}{more}"),
            secret.to_vec(),
            more.trim().is_empty(),
        ),
        Tweak::Replace(any) => {
            let same = any.trim().eq_ignore_ascii_case(&right);
            (any.clone(), secret.to_vec(), same)
        }
        Tweak::OtherSecret => {
            // Not a zero byte appended (HMAC pads short keys with zeros): the first byte changed.
            let mut other = secret.to_vec();
            match other.first_mut() {
                Some(b) => *b ^= 1,
                None => other.push(b'x'),
            }
            (right.clone(), other, false)
        }
    };
    if signature_matches(&key, body, &sig) != should_match {
        return Err(format!(
            "signature {:?} ({tweak:?}) {} under secret {:?}",
            super::common::show(sig.as_bytes(), 200),
            if should_match {
                "does not verify"
            } else {
                "verifies"
            },
            String::from_utf8_lossy(&key)
        ));
    }
    Ok(())
}

// ---- generators -------------------------------------------------------------------------------

fn event() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["push", "pull_request", "issues", "create", "delete", "release", "Push", "push ", "pull_request_sync", ""][..]).prop_map(str::to_owned),
        1 => odd_string(),
    ]
    .boxed()
}

fn secret() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => Just(b"s3cret".to_vec()),
        1 => Just(Vec::new()),
        2 => vec(any::<u8>(), 1..80),
        1 => long_len().prop_map(|n| vec![b'k'; n.min(100_000)]),
    ]
    .boxed()
}

fn tweak() -> BoxedStrategy<Tweak> {
    let hexish = prop_oneof![
        select(&["0", "00", "a", "zz", " ", "\u{e9}", "0x", "\u{0}"][..]).prop_map(str::to_owned),
        odd_string(),
    ];
    prop_oneof![
        3 => Just(Tweak::Exact),
        1 => Just(Tweak::Upper),
        1 => Just(Tweak::Padded),
        2 => any::<u32>().prop_map(Tweak::Flip),
        1 => any::<u32>().prop_map(Tweak::Cut),
        1 => hexish.prop_map(Tweak::Append),
        1 => prop_oneof![odd_string(), (select(&["ab", "0"][..]), long_len()).prop_map(|(u, n)| repeat_to(u, n))]
            .prop_map(Tweak::Replace),
        1 => Just(Tweak::OtherSecret),
    ]
    .boxed()
}

/// A commit id as Gitea sends it: 40 (or 64, or 7 to 64) hex digits, not all zeros.
fn commit_id() -> BoxedStrategy<String> {
    let len = prop_oneof![4 => Just(40usize), 1 => Just(64usize), 1 => 7usize..=64];
    let digits = vec(select(&b"0123456789abcdefABCDEF"[..]), 64);
    (len, digits, any::<usize>())
        .prop_map(|(len, digits, at)| {
            let mut s: Vec<u8> = digits[..len].to_vec();
            if s.iter().all(|&d| d == b'0') {
                s[at % len] = b'a';
            }
            String::from_utf8(s).expect("hex")
        })
        .boxed()
}

fn sha(hostile: bool) -> BoxedStrategy<J> {
    let good = valid_jstr(commit_id());
    if !hostile {
        return good;
    }
    prop_oneof![
        6 => good,
        1 => select(&["0000000000000000000000000000000000000000", "3f2a9c", "main", "", "g3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091"][..]).prop_map(s),
        1 => Just(s("0".repeat(64))),
        1 => odd_string().prop_map(s),
    ]
    .boxed()
}

/// Any string, valid JSON.
fn string() -> BoxedStrategy<J> {
    valid_jstr(odd_string())
}

fn branch_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["main", "release/1.x", "\u{65e5}\u{672c}", "feature/x", "main "][..]).prop_map(str::to_owned),
        2 => tame_text(1, 20),
        2 => odd_string(),
    ]
    .boxed()
}

fn git_ref(hostile: bool) -> BoxedStrategy<J> {
    let good = prop_oneof![
        3 => branch_name().prop_map(|b| format!("refs/heads/{b}")),
        1 => branch_name().prop_map(|t| format!("refs/tags/{t}")),
        1 => select(&["refs/notes/commits", "refs/pull/4/head", "refs/heads/", "main", ""][..]).prop_map(str::to_owned),
    ];
    if hostile {
        prop_oneof![6 => valid_jstr(good.boxed()), 1 => odd_string().prop_map(s)].boxed()
    } else {
        valid_jstr(good.boxed())
    }
}

fn number(hostile: bool) -> BoxedStrategy<J> {
    let good = prop_oneof![
        any::<u32>().prop_map(|n| J::Num(n.to_string())),
        any::<u64>().prop_map(|n| J::Num(n.to_string()))
    ];
    if hostile {
        prop_oneof![4 => good, 1 => json::number().prop_map(J::Num)].boxed()
    } else {
        good.boxed()
    }
}

fn clone_url() -> BoxedStrategy<String> {
    prop_oneof![
        4 => tame_text(1, 20).prop_map(|p| format!("https://gitea.example.invalid/team/{p}.git")),
        1 => tame_text(1, 20).prop_map(|p| format!("git@gitea.example.invalid:team/{p}.git")),
        1 => select(WORDS).prop_map(str::to_owned),
        1 => odd_string(),
    ]
    .boxed()
}

fn user(hostile: bool) -> BoxedStrategy<J> {
    (
        member("id", number(hostile), hostile),
        member("login", string(), hostile),
        member("email", string(), hostile),
        extra_members(hostile),
    )
        .prop_map(|(a, b, c, extra)| object(vec![a, b, c], extra))
        .boxed()
}

fn repository(hostile: bool) -> BoxedStrategy<J> {
    let full_name = prop_oneof![
        3 => (tame_text(1, 12), tame_text(1, 12)).prop_map(|(o, n)| format!("{o}/{n}")),
        1 => odd_string(),
    ];
    (
        member("id", number(hostile), hostile),
        member("owner", user(hostile), hostile),
        member("full_name", valid_jstr(full_name.boxed()), hostile),
        member("clone_url", valid_jstr(clone_url()), hostile),
        member("private", any::<bool>().prop_map(J::Bool).boxed(), hostile),
        extra_members(hostile),
    )
        .prop_map(|(a, b, c, d, e, extra)| object(vec![a, b, c, d, e], extra))
        .boxed()
}

fn commits(hostile: bool) -> BoxedStrategy<J> {
    let commit = (
        member("id", sha(hostile), hostile),
        member("message", string(), hostile),
        member("author", user(hostile), hostile),
    )
        .prop_map(|(a, b, c)| object(vec![a, b, c], vec![]));
    prop_oneof![
        4 => vec(commit.clone(), 0..3).prop_map(J::Arr),
        1 => (json::count(), commit).prop_map(|(n, item)| J::Repeat { n, item: Box::new(item) }),
    ]
    .boxed()
}

fn push(hostile: bool) -> BoxedStrategy<J> {
    let members: Vec<BoxedStrategy<Members>> = vec![
        member("ref", git_ref(hostile), hostile),
        member("before", sha(hostile), hostile),
        member("after", sha(hostile), hostile),
        member("compare_url", string(), hostile),
        member("commits", commits(hostile), hostile),
        member("total_commits", number(hostile), hostile),
        member("repository", repository(hostile), hostile),
        member("pusher", user(hostile), hostile),
        member("sender", user(hostile), hostile),
    ];
    (members, extra_members(hostile))
        .prop_map(|(m, extra)| object(m, extra))
        .boxed()
}

fn pull_request(hostile: bool) -> BoxedStrategy<J> {
    let action = prop_oneof![
        4 => select(&["opened", "reopened", "synchronized", "synchronize"][..]).prop_map(s),
        2 => select(&["closed", "edited", "label_updated", "assigned", "Opened", "opened ", ""][..]).prop_map(s),
    ];
    let action = if hostile {
        prop_oneof![6 => action, 1 => string()].boxed()
    } else {
        action.boxed()
    };
    let head = (
        member("sha", sha(hostile), hostile),
        member("ref", string(), hostile),
        member("repo", repository(hostile), hostile),
        extra_members(hostile),
    )
        .prop_map(|(a, b, c, extra)| object(vec![a, b, c], extra));
    let pr = (
        member("id", number(hostile), hostile),
        member("title", string(), hostile),
        member("head", head.boxed(), hostile),
        member("base", repository(hostile), hostile),
        extra_members(hostile),
    )
        .prop_map(|(a, b, c, d, extra)| object(vec![a, b, c, d], extra));
    let members: Vec<BoxedStrategy<Members>> = vec![
        member("action", action, hostile),
        member("number", number(hostile), hostile),
        member("pull_request", pr.boxed(), hostile),
        member("repository", repository(hostile), hostile),
        member("sender", user(hostile), hostile),
    ];
    (members, extra_members(hostile))
        .prop_map(|(m, extra)| object(m, extra))
        .boxed()
}

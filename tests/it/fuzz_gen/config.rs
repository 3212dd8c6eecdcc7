//! Target `config`: `testarena::config::Config::from_toml` on configuration files, and
//! `Config::load` on a file that is not UTF-8 (which `from_toml`, taking `&str`, cannot get).
//!
//! Documents follow the real schema (`config.toml.example`): its sections written as tables,
//! dotted keys or inline tables, each key with a valid value (durations, sizes, addresses, URL
//! prefixes, tokens, environments with consoles and `env` tables), or (hostile) any TOML value
//! in any string form (basic, literal, multi-line, `\u` escapes, invalid escapes), boundary
//! integers and floats (`i64::MIN`, `9223372036854775808`, `-0`, `nan`, `inf`, `1e309`),
//! unknown keys and sections, duplicate keys, arrays and inline tables nested thousands deep,
//! dotted keys of thousands of parts, and thousands of environments. A valid document must be
//! accepted with the values it sets.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use testarena::config::{Config, Overrides};

use super::common::{
    MAX_INPUT, Mutation, NUMBERS, WORDS, apply, message, mutations, odd_string, tame_text,
};
use super::runner::{Input, Target, Verdict};

pub struct ConfigTarget;

#[derive(Clone, Debug)]
pub struct ConfigCase {
    doc: Doc,
    /// For a valid document: what it sets.
    expect: Option<Expected>,
    mutations: Vec<Mutation>,
}

/// Values a valid document sets, compared with the loaded configuration.
#[derive(Clone, Debug, Default)]
struct Expected {
    slots: Option<usize>,
    max_attempts: Option<u32>,
    priority: Option<i32>,
    environments: Vec<String>,
}

/// A TOML value, or something in its place.
#[derive(Clone, Debug)]
pub enum T {
    /// A string and its form: 0 basic, 1 literal, 2 multi-line basic, 3 multi-line literal,
    /// 4 every character escaped, 5 an invalid escape, 6 unterminated, 7 raw control characters.
    Str(String, u8),
    /// Written as is: numbers, booleans, dates, tokens.
    Raw(String),
    Arr(Vec<T>),
    Inline(Vec<(Key, T)>),
    /// `inner` inside `depth` arrays or inline tables `{ a = … }`.
    Deep {
        depth: u32,
        inline: bool,
        closed: bool,
        inner: Box<T>,
    },
    /// An array of `n` copies of `item`.
    Repeat {
        n: u32,
        item: Box<T>,
    },
}

/// A key: its dotted parts.
#[derive(Clone, Debug)]
pub struct Key(Vec<String>);

#[derive(Clone, Copy, Debug)]
enum Form {
    Table,
    ArrayTable,
    Dotted,
    Inline,
}

#[derive(Clone, Debug)]
struct Section {
    path: Vec<String>,
    entries: Vec<(Key, T)>,
    form: Form,
}

#[derive(Clone, Debug)]
pub struct Doc {
    top: Vec<(Key, T)>,
    sections: Vec<Section>,
    /// One section written `n` times, its last path part numbered (`[environments.e0]`, …).
    many: Option<(u32, Section)>,
}

pub const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\\",
    "\\u",
    "\\UFFFFFFFF",
    "\\ud800",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "[worker]",
    "[environments.x]",
    "slots = ",
    "= 1",
    "1979-05-27T07:32:00Z",
    "inf",
    "nan",
    "0x7fffffffffffffff",
    "1e309",
    "-0",
];

impl Target for ConfigTarget {
    type Case = ConfigCase;
    const NAME: &'static str = "config";

    fn strategy() -> BoxedStrategy<ConfigCase> {
        prop_oneof![
            2 => (valid_doc(), mutations(TOKENS)).prop_map(|((doc, expect), mutations)| ConfigCase { doc, expect: Some(expect), mutations }),
            3 => (hostile_doc(), mutations(TOKENS)).prop_map(|(doc, mutations)| ConfigCase { doc, expect: None, mutations }),
        ]
        .boxed()
    }

    fn render(case: &ConfigCase) -> Input {
        let mut bytes = render_doc(&case.doc);
        apply(&mut bytes, &case.mutations);
        Input::bytes(bytes)
    }

    fn check(case: &ConfigCase, input: &Input) -> Verdict {
        // A rendering cut at `MAX_INPUT` is not the document built.
        let expect = if case.mutations.is_empty() && input.bytes.len() <= MAX_INPUT {
            case.expect.as_ref()
        } else {
            None
        };
        verdict(&input.bytes, expect)
    }

    fn replay(bytes: &[u8]) -> Verdict {
        verdict(bytes, None)
    }
}

fn verdict(bytes: &[u8], expect: Option<&Expected>) -> Verdict {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return not_utf8(bytes);
    };
    match Config::from_toml("fuzz.toml", text) {
        Ok(config) => {
            if config.worker.max_attempts == 0
                || config.worker.max_line < 80
                || config.api.max_body == 0
                || config.environments.is_empty()
            {
                return Err(format!(
                    "accepted a configuration out of bounds: {config:?}"
                ));
            }
            if let Some(x) = expect {
                let mut wrong = Vec::new();
                if x.slots.is_some_and(|s| s != config.worker.slots) {
                    wrong.push(format!("slots {} (set {:?})", config.worker.slots, x.slots));
                }
                if x.max_attempts
                    .is_some_and(|m| m != config.worker.max_attempts)
                {
                    wrong.push(format!(
                        "max_attempts {} (set {:?})",
                        config.worker.max_attempts, x.max_attempts
                    ));
                }
                if x.priority.is_some_and(|p| p != config.gitea.priority) {
                    wrong.push(format!(
                        "priority {} (set {:?})",
                        config.gitea.priority, x.priority
                    ));
                }
                for name in &x.environments {
                    if config.environment(name).is_none() {
                        wrong.push(format!("no environment {name:?}"));
                    }
                }
                if !wrong.is_empty() {
                    return Err(format!(
                        "a valid configuration was read wrong: {}",
                        wrong.join("; ")
                    ));
                }
            }
            Ok("accepted")
        }
        Err(e) => {
            let text = e.to_string();
            message("a configuration error", &text)?;
            if !text.starts_with("fuzz.toml: ") {
                return Err(format!("an error that does not name the file: {text}"));
            }
            if expect.is_some() {
                return Err(format!("a valid configuration was refused: {text}"));
            }
            let shape = [
                "unknown field",
                "invalid type",
                "missing field",
                "duplicate",
            ];
            Ok(if shape.iter().any(|s| text.contains(s)) {
                "refused: wrong keys or types"
            } else if text.contains("TOML parse error") {
                "refused: not TOML"
            } else {
                "refused: invalid value"
            })
        }
    }
}

/// A file that is not UTF-8 goes through `Config::load`, as `serve --config` reads it.
fn not_utf8(bytes: &[u8]) -> Verdict {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "testarena-fuzz-config-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let overrides = Overrides {
        config_file: Some(path.clone()),
        ..Overrides::default()
    };
    let result = Config::load(&overrides, Vec::<(String, String)>::new());
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(_) => Err("a file that is not UTF-8 was accepted".into()),
        Err(e) => {
            let text = e.to_string();
            message("a configuration error", &text)?;
            if !text.contains(&path.display().to_string()) {
                return Err(format!("an error that does not name the file: {text}"));
            }
            Ok("refused: not UTF-8")
        }
    }
}

// ---- rendering --------------------------------------------------------------------------------

fn render_doc(doc: &Doc) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &doc.top {
        entry(k, v, &mut out);
    }
    for s in &doc.sections {
        if matches!(s.form, Form::Dotted | Form::Inline) {
            section(s, None, &mut out);
        }
    }
    for s in &doc.sections {
        if matches!(s.form, Form::Table | Form::ArrayTable) {
            section(s, None, &mut out);
        }
    }
    if let Some((n, s)) = &doc.many {
        for i in 0..*n {
            if out.len() > MAX_INPUT {
                break;
            }
            section(s, Some(i), &mut out);
        }
    }
    out
}

fn section(s: &Section, number: Option<u32>, out: &mut Vec<u8>) {
    let mut path = s.path.clone();
    if let (Some(i), Some(last)) = (number, path.last_mut()) {
        last.push_str(&i.to_string());
    }
    match s.form {
        Form::Table | Form::ArrayTable => {
            let (open, close) = if matches!(s.form, Form::Table) {
                ("[", "]")
            } else {
                ("[[", "]]")
            };
            out.extend_from_slice(open.as_bytes());
            key(&path, out);
            out.extend_from_slice(close.as_bytes());
            out.push(b'\n');
            for (k, v) in &s.entries {
                entry(k, v, out);
            }
        }
        Form::Dotted => {
            for (k, v) in &s.entries {
                let mut full = path.clone();
                full.extend(k.0.iter().cloned());
                entry(&Key(full), v, out);
            }
        }
        Form::Inline => {
            key(&path, out);
            out.extend_from_slice(b" = ");
            value(&T::Inline(s.entries.clone()), out);
            out.push(b'\n');
        }
    }
}

fn entry(k: &Key, v: &T, out: &mut Vec<u8>) {
    if out.len() > MAX_INPUT {
        return;
    }
    key(&k.0, out);
    out.extend_from_slice(b" = ");
    value(v, out);
    out.push(b'\n');
}

fn key(parts: &[String], out: &mut Vec<u8>) {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let bare = !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            out.extend_from_slice(p.as_bytes());
        } else {
            basic(p, false, out);
        }
    }
}

fn basic(s: &str, all: bool, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if all || (c.is_control() && c != '\t') => {
                let e = if u32::from(c) > 0xffff {
                    format!("\\U{:08X}", u32::from(c))
                } else {
                    format!("\\u{:04x}", u32::from(c))
                };
                out.extend_from_slice(e.as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn value(v: &T, out: &mut Vec<u8>) {
    if out.len() > MAX_INPUT {
        return;
    }
    match v {
        T::Str(s, form) => {
            let plain = !s.chars().any(|c| c.is_control() && c != '\t');
            match form {
                1 if plain && !s.contains('\'') => {
                    out.push(b'\'');
                    out.extend_from_slice(s.as_bytes());
                    out.push(b'\'');
                }
                2 => {
                    out.extend_from_slice(b"\"\"\"\n");
                    let mut inner = Vec::new();
                    basic(s, false, &mut inner);
                    out.extend_from_slice(&inner[1..inner.len() - 1]);
                    out.extend_from_slice(b"\"\"\"");
                }
                3 if plain && !s.contains("'''") && !s.ends_with('\'') => {
                    out.extend_from_slice(b"'''\n");
                    out.extend_from_slice(s.as_bytes());
                    out.extend_from_slice(b"'''");
                }
                4 => basic(s, true, out),
                5 => {
                    out.push(b'"');
                    out.extend_from_slice(s.replace(['"', '\\'], "").as_bytes());
                    out.extend_from_slice(b"\\q\"");
                }
                6 => {
                    out.push(b'"');
                    out.extend_from_slice(s.replace(['"', '\\'], "").as_bytes());
                }
                7 => {
                    out.push(b'"');
                    out.extend_from_slice(s.replace(['"', '\\'], "").as_bytes());
                    out.push(b'"');
                }
                _ => basic(s, false, out),
            }
        }
        T::Raw(r) => out.extend_from_slice(r.as_bytes()),
        T::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                value(item, out);
            }
            out.push(b']');
        }
        T::Inline(entries) => {
            out.extend_from_slice(b"{ ");
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                key(&k.0, out);
                out.extend_from_slice(b" = ");
                value(v, out);
            }
            out.extend_from_slice(b" }");
        }
        T::Deep {
            depth,
            inline,
            closed,
            inner,
        } => {
            let open: &[u8] = if *inline { b"{ a = " } else { b"[" };
            let close: &[u8] = if *inline { b" }" } else { b"]" };
            for _ in 0..*depth {
                out.extend_from_slice(open);
            }
            value(inner, out);
            if *closed {
                for _ in 0..*depth {
                    out.extend_from_slice(close);
                }
            }
        }
        T::Repeat { n, item } => {
            out.push(b'[');
            for i in 0..*n {
                if out.len() > MAX_INPUT {
                    break;
                }
                if i > 0 {
                    out.push(b',');
                }
                value(item, out);
            }
            out.push(b']');
        }
    }
}

// ---- valid documents --------------------------------------------------------------------------

fn st(s: impl Into<String>) -> T {
    T::Str(s.into(), 0)
}

fn k(name: &str) -> Key {
    Key(vec![name.to_owned()])
}

/// A string in any valid form.
fn vstr(text: BoxedStrategy<String>) -> BoxedStrategy<T> {
    (
        text,
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)],
    )
        .prop_map(|(s, f)| T::Str(s, f))
        .boxed()
}

fn words(list: &'static [&'static str]) -> BoxedStrategy<String> {
    select(list).prop_map(str::to_owned).boxed()
}

fn int(range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<T> {
    let (lo, hi) = (*range.start(), *range.end());
    prop_oneof![
        4 => range.prop_map(|n| T::Raw(n.to_string())),
        1 => select(vec![lo, hi]).prop_map(|n| T::Raw(n.to_string())),
        1 => (lo.max(0)..=hi.min(0xffff)).prop_map(|n| T::Raw(format!("0x{n:x}"))),
        1 => (lo.max(0)..=hi.min(99_999)).prop_map(|n| T::Raw(format!("+{}", thousands_sep(n)))),
    ]
    .boxed()
}

fn thousands_sep(n: i64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// A duration above zero: whole seconds as a number, or text with a unit.
fn duration(max_secs: u64) -> BoxedStrategy<T> {
    let max_secs = max_secs.max(1);
    prop_oneof![
        1 => (1..=max_secs.min(i64::MAX as u64)).prop_map(|n| T::Raw(n.to_string())),
        2 => (1..=max_secs.min(999_999_999_999)).prop_map(|n| st(format!("{n}s"))),
        1 => (1..=(max_secs / 3600).clamp(1, 999_999_999_999)).prop_map(|n| st(format!("{n}h"))),
        1 => (1..=max_secs.saturating_mul(1000).min(999_999_999_999)).prop_map(|n| st(format!(" {n}ms "))),
        1 => Just(st("60s")),
    ]
    .boxed()
}

fn size(min: u64) -> BoxedStrategy<T> {
    prop_oneof![
        2 => (min..=(1u64 << 40)).prop_map(|n| T::Raw(n.to_string())),
        1 => Just(T::Raw(min.to_string())),
        1 => (1u64..=1 << 20, select(&["KiB", "MiB", "GiB"][..])).prop_map(|(n, u)| st(format!("{n}{u}"))),
    ]
    .boxed()
}

fn listen() -> BoxedStrategy<T> {
    let addr = prop_oneof![
        Just("127.0.0.1"),
        Just("[::1]"),
        Just("0.0.0.0"),
        Just("[::]"),
        Just("10.1.2.3")
    ];
    (addr, 0u16..=65535)
        .prop_map(|(a, p)| st(format!("{a}:{p}")))
        .boxed()
}

fn host_entry() -> BoxedStrategy<String> {
    prop_oneof![
        Just("ci.example.org".to_owned()),
        Just("CI.Example.org.".to_owned()),
        (1u16..=65535).prop_map(|p| format!("ci.example.org:{p}")),
        Just("[::1]:80".to_owned()),
        Just("10.0.0.1".to_owned()),
        tame_text(1, 10).prop_map(|t| format!(
            "h{}",
            t.to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        )),
    ]
    .boxed()
}

fn repo_entry() -> BoxedStrategy<String> {
    words(&[
        "https://",
        "https://gitea.example.org/",
        "https://gitea.example.org/team",
        "ssh://",
        "http://x",
        "git://y/",
        "git@",
        "git@gitea.example.org:",
        "/srv/git/",
        "/srv/git",
        "/",
    ])
}

fn scenario_path() -> BoxedStrategy<String> {
    vec(tame_text(1, 10), 1..4)
        .prop_map(|p| format!("scenarios/{}.xml", p.join("/")))
        .boxed()
}

fn env_name() -> BoxedStrategy<String> {
    let first = prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('0', '9')
    ];
    let rest = prop_oneof![5 => proptest::char::range('a', 'z'), 1 => select(&['.', '_', '-', 'X', '1'][..])];
    (first, vec(rest, 0..20))
        .prop_map(|(f, r)| {
            let mut s: String = std::iter::once(f).chain(r).collect();
            while s.contains("..") {
                s = s.replace("..", "._");
            }
            s
        })
        .boxed()
}

/// An access token: printable ASCII without spaces.
fn ascii_token() -> BoxedStrategy<String> {
    vec(proptest::char::range('!', '~'), 1..40)
        .prop_map(String::from_iter)
        .boxed()
}

fn argv() -> BoxedStrategy<T> {
    (tame_text(1, 12), vec(odd_string(), 0..4))
        .prop_map(|(first, rest)| {
            let mut items = vec![st(first)];
            items.extend(rest.into_iter().map(|s| T::Str(s.replace('\0', ""), 0)));
            T::Arr(items)
        })
        .boxed()
}

fn env_table() -> BoxedStrategy<T> {
    let name = (
        prop_oneof![proptest::char::range('A', 'Z'), Just('_')],
        vec(
            prop_oneof![
                proptest::char::range('A', 'Z'),
                proptest::char::range('0', '9'),
                Just('_')
            ],
            0..12,
        ),
    )
        .prop_map(|(f, r)| std::iter::once(f).chain(r).collect::<String>());
    vec((name, odd_string()), 0..4)
        .prop_map(|vars| {
            let mut seen = std::collections::HashSet::new();
            T::Inline(
                vars.into_iter()
                    .filter(|(n, _)| seen.insert(n.clone()))
                    .map(|(n, v)| (k(&n), T::Str(v.replace('\0', ""), 0)))
                    .collect(),
            )
        })
        .boxed()
}

/// Picks some of `entries` (each `Some` kept) in the given order.
fn some(entries: Vec<Option<(Key, T)>>) -> Vec<(Key, T)> {
    entries.into_iter().flatten().collect()
}

fn opt(name: &'static str, v: BoxedStrategy<T>) -> BoxedStrategy<Option<(Key, T)>> {
    prop_oneof![1 => Just(None), 2 => v.prop_map(move |v| Some((k(name), v)))].boxed()
}

fn form() -> BoxedStrategy<Form> {
    prop_oneof![6 => Just(Form::Table), 1 => Just(Form::Dotted), 1 => Just(Form::Inline)].boxed()
}

#[derive(Clone, Debug)]
struct EnvPlan {
    name: String,
    entries: Vec<(Key, T)>,
    form: Form,
}

fn environment() -> BoxedStrategy<EnvPlan> {
    let console = prop_oneof![
        3 => Just((None, None)),
        1 => Just((Some(st("stdio")), None)),
        1 => tame_text(1, 10).prop_map(|p| (Some(st(format!("unix:{p}.sock"))), None)),
        1 => (1u16..=65535).prop_map(|p| (Some(st(format!("tcp:127.0.0.1:{p}"))), Some(T::Raw("1".into())))),
    ];
    (
        env_name(),
        argv(),
        argv(),
        vstr(tame_text(1, 20)),
        duration(1 << 40),
        duration(1 << 40),
        console,
        prop_oneof![
            Just(None),
            (1i64..=64).prop_map(|n| Some(T::Raw(n.to_string())))
        ],
        opt(
            "build_network",
            any::<bool>().prop_map(|b| T::Raw(b.to_string())).boxed(),
        ),
        opt("env", env_table()),
        form(),
    )
        .prop_map(
            |(
                name,
                build,
                simulate,
                ready,
                bt,
                boot,
                (console, forced),
                parallel,
                network,
                env,
                form,
            )| {
                let max_parallel = forced.or(parallel);
                let entries = some(vec![
                    Some((k("build"), build)),
                    Some((k("simulate"), simulate)),
                    Some((k("ready"), ready)),
                    Some((k("build_timeout"), bt)),
                    Some((k("boot_timeout"), boot)),
                    console.map(|c| (k("console"), c)),
                    max_parallel.map(|m| (k("max_parallel"), m)),
                    network,
                    env,
                ]);
                EnvPlan {
                    name,
                    entries,
                    form,
                }
            },
        )
        .boxed()
}

fn tokens() -> BoxedStrategy<T> {
    (0usize..4, select(&["read", "write", "admin"][..]))
        .prop_map(|(n, scope)| {
            T::Arr(
                (0..n)
                    .map(|i| {
                        T::Inline(vec![
                            (k("name"), st(format!("t-{i}.x"))),
                            (k("scope"), st(scope)),
                            (k("hash"), st(format!("sha256:{:064x}", i + 1))),
                        ])
                    })
                    .collect(),
            )
        })
        .boxed()
}

fn valid_doc() -> BoxedStrategy<(Doc, Expected)> {
    let top = (
        opt("listen", listen()),
        opt(
            "root",
            vstr(tame_text(1, 30).prop_map(|p| format!("/srv/{p}")).boxed()),
        ),
    );
    let api = (
        opt("max_body", size(1)),
        opt(
            "hosts",
            vec(host_entry(), 0..3)
                .prop_map(|h| T::Arr(h.into_iter().map(st).collect()))
                .boxed(),
        ),
        opt(
            "public_url",
            vstr(words(&[
                "",
                "https://ci.example.org",
                "http://ci.example.org:8080/",
                "https://[::1]:8443",
            ])),
        ),
        form(),
    );
    let auth = (
        opt("tokens", tokens()),
        vstr(words(&["none", "read", "write"])),
        opt("session_ttl", duration(9600 * 3600)),
        form(),
    );
    let worker = (
        prop_oneof![Just(None), (0usize..=10_000).prop_map(Some)],
        opt("queue_timeout", duration(1 << 40)),
        opt("checkout_timeout", duration(1 << 40)),
        opt(
            "kill_grace",
            prop_oneof![duration(1 << 30), Just(st("0s"))].boxed(),
        ),
        opt(
            "silence_timeout",
            prop_oneof![duration(1 << 30), Just(st("0s"))].boxed(),
        ),
        prop_oneof![Just(None), (1u32..=u32::MAX).prop_map(Some)],
        opt("max_line", size(80)),
        opt(
            "allowed_repos",
            vec(repo_entry(), 1..4)
                .prop_map(|r| T::Arr(r.into_iter().map(st).collect()))
                .boxed(),
        ),
        form(),
    );
    let gitea = (
        opt(
            "secret",
            vstr(odd_string().prop_map(|s| s.replace('\0', "")).boxed()),
        ),
        opt("environment", vstr(words(&["esp32", "xtensa-sim"]))),
        opt(
            "scenarios",
            vec(scenario_path(), 0..3)
                .prop_map(|s| T::Arr(s.into_iter().map(st).collect()))
                .boxed(),
        ),
        opt(
            "branches",
            vec(tame_text(1, 10), 0..3)
                .prop_map(|b| T::Arr(b.into_iter().map(st).collect()))
                .boxed(),
        ),
        prop_oneof![Just(None), any::<i32>().prop_map(Some)],
        prop_oneof![
            2 => Just(None),
            1 => (words(&["https://gitea.example.org", "http://gitea:3000/"]), ascii_token()).prop_map(|(u, t)| Some((u, t))),
        ],
        opt(
            "dashboard_url",
            vstr(words(&["", "https://ci.example.org", "http://x/"])),
        ),
        form(),
    );
    let sandbox = (opt("mode", vstr(words(&["bwrap", "none"]))), form());
    let envs = prop_oneof![3 => vec(environment(), 0..3), 1 => Just(Vec::new())];
    let many = prop_oneof![
        24 => Just(None),
        4 => (1u32..50, environment()).prop_map(Some),
        1 => (50u32..3000, environment()).prop_map(Some),
    ];
    (top, api, auth, worker, gitea, sandbox, envs, many)
        .prop_map(|(top, api, auth, worker, gitea, sandbox, envs, many)| {
            let mut expect = Expected::default();
            let mut sections = Vec::new();
            let section = |name: &str, entries: Vec<(Key, T)>, form: Form| Section {
                path: vec![name.to_owned()],
                entries,
                form,
            };
            sections.push(section("api", some(vec![api.0, api.1, api.2]), api.3));
            sections.push(section(
                "auth",
                some(vec![auth.0, Some((k("anonymous"), auth.1)), auth.2]),
                auth.3,
            ));
            let (slots, qt, ct, kg, silence, attempts, max_line, repos, wform) = worker;
            expect.slots = slots;
            expect.max_attempts = attempts;
            sections.push(section(
                "worker",
                some(vec![
                    slots.map(|s| (k("slots"), T::Raw(s.to_string()))),
                    qt,
                    ct,
                    kg,
                    silence,
                    attempts.map(|a| (k("max_attempts"), T::Raw(a.to_string()))),
                    max_line,
                    repos,
                ]),
                wform,
            ));
            let (secret, environment, scenarios, branches, priority, statuses, dashboard, gform) =
                gitea;
            expect.priority = priority;
            let (url, token) = match statuses {
                Some((u, t)) => (Some((k("url"), st(u))), Some((k("token"), st(t)))),
                None => (None, None),
            };
            sections.push(section(
                "gitea",
                some(vec![
                    secret,
                    environment,
                    scenarios,
                    branches,
                    priority.map(|p| (k("priority"), T::Raw(p.to_string()))),
                    url,
                    token,
                    dashboard,
                ]),
                gform,
            ));
            sections.push(section("sandbox", some(vec![sandbox.0]), sandbox.1));
            let mut names = std::collections::HashSet::new();
            for e in envs {
                if names.insert(e.name.clone()) {
                    expect.environments.push(e.name.clone());
                    sections.push(Section {
                        path: vec!["environments".into(), e.name],
                        entries: e.entries,
                        form: e.form,
                    });
                }
            }
            let many = many.map(|(n, e)| {
                // Numbered: `<name>0`, `<name>1`, …; none may meet a name above.
                let name = format!("{}-many-", e.name);
                expect.environments.push(format!("{name}0"));
                (
                    n,
                    Section {
                        path: vec!["environments".into(), name],
                        entries: e.entries,
                        form: Form::Table,
                    },
                )
            });
            let doc = Doc {
                top: some(vec![top.0, top.1]),
                sections,
                many,
            };
            (doc, expect)
        })
        .boxed()
}

// ---- hostile documents ------------------------------------------------------------------------

fn raw() -> BoxedStrategy<T> {
    prop_oneof![
        6 => select(NUMBERS).prop_map(|n| T::Raw(n.to_owned())),
        2 => any::<i64>().prop_map(|n| T::Raw(n.to_string())),
        1 => any::<f64>().prop_map(|f| T::Raw(format!("{f:?}"))),
        1 => select(&["true", "false", "True", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "1979-05-27 07:32:00.999999-07:00", "9999-12-31T23:59:60Z", "0000-00-00", "''", "\"\"", "[]", "{}", "[,]", "{ , }", "nan", "+nan", "-inf", "0o777", "0b2", "1__0", "_1"][..]).prop_map(|t| T::Raw(t.to_owned())),
    ]
    .boxed()
}

fn tstring() -> BoxedStrategy<T> {
    (odd_string(), prop_oneof![20 => 0u8..=4, 1 => 5u8..=7])
        .prop_map(|(s, f)| T::Str(s, f))
        .boxed()
}

fn any_key() -> BoxedStrategy<Key> {
    prop_oneof![
        4 => select(KEYS).prop_map(|k| Key(vec![k.to_owned()])),
        2 => vec(odd_string(), 1..3).prop_map(Key),
        1 => (1usize..5000).prop_map(|n| Key(vec!["a".to_owned(); n])),
    ]
    .boxed()
}

const KEYS: &[&str] = &[
    "listen",
    "root",
    "max_body",
    "hosts",
    "public_url",
    "tokens",
    "anonymous",
    "session_ttl",
    "slots",
    "queue_timeout",
    "checkout_timeout",
    "kill_grace",
    "silence_timeout",
    "max_attempts",
    "max_line",
    "allowed_repos",
    "secret",
    "environment",
    "scenarios",
    "branches",
    "priority",
    "url",
    "token",
    "dashboard_url",
    "mode",
    "build",
    "simulate",
    "ready",
    "build_timeout",
    "boot_timeout",
    "max_parallel",
    "console",
    "build_network",
    "env",
    "name",
    "scope",
    "hash",
    "api",
    "auth",
    "worker",
    "gitea",
    "sandbox",
    "environments",
    "unknown",
    "",
];

/// Any TOML value (or near-TOML), a few levels deep, with deep and huge parts.
fn any_value() -> BoxedStrategy<T> {
    prop_oneof![3 => raw(), 4 => tstring()]
        .prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                3 => vec(inner.clone(), 0..6).prop_map(T::Arr),
                2 => vec((any_key(), inner.clone()), 0..5).prop_map(T::Inline),
                1 => (super::json::depth(), any::<bool>(), prop_oneof![4 => Just(true), 1 => Just(false)], inner.clone())
                    .prop_map(|(depth, inline, closed, inner)| T::Deep { depth, inline, closed, inner: Box::new(inner) }),
                1 => (super::json::count(), inner).prop_map(|(n, item)| T::Repeat { n, item: Box::new(item) }),
            ]
        })
        .boxed()
}

/// A value for a key of the schema: often of the right kind, with odd content.
fn schema_value() -> BoxedStrategy<T> {
    prop_oneof![
        3 => vstr(words(WORDS)),
        2 => tstring(),
        2 => raw(),
        1 => duration(u64::MAX),
        1 => vec(tstring(), 0..4).prop_map(T::Arr),
        1 => any_value(),
        1 => env_table(),
        1 => tokens(),
    ]
    .boxed()
}

fn hostile_section() -> BoxedStrategy<Section> {
    let path = prop_oneof![
        6 => select(&["api", "auth", "worker", "gitea", "sandbox"][..]).prop_map(|s| vec![s.to_owned()]),
        4 => prop_oneof![env_name(), words(&["esp32", "xtensa-sim"]), odd_string()].prop_map(|n| vec!["environments".to_owned(), n]),
        1 => vec(odd_string(), 1..3),
        1 => Just(vec!["environments".to_owned()]),
        1 => Just(vec!["environments".to_owned(), "esp32".to_owned(), "env".to_owned()]),
    ];
    let entry = prop_oneof![
        6 => (select(KEYS).prop_map(|k| Key(vec![k.to_owned()])), schema_value()),
        1 => (any_key(), any_value()),
    ];
    let form = prop_oneof![6 => Just(Form::Table), 1 => Just(Form::ArrayTable), 1 => Just(Form::Dotted), 1 => Just(Form::Inline)];
    (path, vec(entry, 0..8), form)
        .prop_map(|(path, entries, form)| Section {
            path,
            entries,
            form,
        })
        .boxed()
}

fn hostile_doc() -> BoxedStrategy<Doc> {
    let top_entry = prop_oneof![
        4 => (select(&["listen", "root"][..]).prop_map(|k| Key(vec![k.to_owned()])), schema_value()),
        1 => (any_key(), any_value()),
    ];
    let valid_env = environment().prop_map(|e| Section {
        path: vec!["environments".into(), e.name],
        entries: e.entries,
        form: e.form,
    });
    let many = prop_oneof![
        12 => Just(None),
        1 => (prop_oneof![8 => 2u32..100, 1 => 100u32..20_000], prop_oneof![hostile_section(), valid_env.clone()]).prop_map(Some),
    ];
    (
        vec(top_entry, 0..3),
        vec(prop_oneof![4 => hostile_section(), 1 => valid_env], 0..6),
        many,
    )
        .prop_map(|(top, sections, many)| Doc {
            top,
            sections,
            many,
        })
        .boxed()
}

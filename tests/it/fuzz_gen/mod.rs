//! Structure-aware fuzzing on stable Rust: `proptest` generators and one case runner, shared by
//! the short run in the test suite (`tests/it/fuzz.rs`) and the long run (`benches/fuzz.rs`,
//! which includes this directory with `#[path = "../tests/it/fuzz_gen/mod.rs"]`).
//!
//! Four targets, each a [`Target`]: a generator of structured cases (an XML, JSON or TOML tree
//! shaped like the real input, with its odd corners), how a case becomes the bytes the code
//! under test reads, and the property checked on them:
//!
//! - `scenario`: `testarena::scenario::parse` on scenario files (`scenario.rs`);
//! - `webhook`: `hooks::gitea::decide` on Gitea deliveries, then what the endpoint does with a
//!   queued one, and `hooks::signature_matches` (`webhook.rs`);
//! - `config`: `Config::from_toml`, and `Config::load` for files that are not UTF-8 (`config.rs`);
//! - `enqueue`: the JSON of `EnqueueBody`, then `api::validate::enqueue` (`enqueue.rs`).
//!
//! The generators mix well-formed inputs (which must be accepted, and are compared with what
//! was generated) with deep nesting (thousands of levels), huge counts (elements, attributes,
//! array items, tables), empty and very long strings, odd Unicode, boundary numbers (`i64::MIN`,
//! `u64::MAX + 1`, `-0`, `1e309`, `NaN`) and byte mutations (invalid UTF-8, cut, duplicated or
//! inserted tokens): `common.rs`, `json.rs`. The property everywhere: no panic, no case slower
//! than a bound, every error an `Err` with a non-empty message.
//!
//! Every case has a 64-bit seed: `FUZZ_REPLAY=<seed>` regenerates exactly that case (see
//! `runner.rs` for the other variables). A failing case is shrunk to a minimal input, printed,
//! and saved under `$CARGO_TARGET_TMPDIR/fuzz-failures/<target>/`; copied to
//! `fixtures/fuzz/<target>/`, it is replayed by `tests/it/fuzz.rs` from then on.

// The bench uses the runner, the test suite also the fixture replay; neither uses everything.
#![allow(dead_code)]

mod common;
mod config;
mod enqueue;
mod json;
mod runner;
mod scenario;
mod webhook;

pub use runner::{Options, Report, Target, Verdict, run};

pub use config::ConfigTarget;
pub use enqueue::EnqueueTarget;
pub use scenario::ScenarioTarget;
pub use webhook::WebhookTarget;

/// Every target's name, in the order a long run takes them.
pub const TARGETS: [&str; 4] = [
    ScenarioTarget::NAME,
    WebhookTarget::NAME,
    ConfigTarget::NAME,
    EnqueueTarget::NAME,
];

/// Runs `cases` of the target called `name`; `None` for an unknown name.
pub fn run_named(name: &str, options: &Options) -> Option<Report> {
    Some(match name {
        ScenarioTarget::NAME => run::<ScenarioTarget>(options),
        WebhookTarget::NAME => run::<WebhookTarget>(options),
        ConfigTarget::NAME => run::<ConfigTarget>(options),
        EnqueueTarget::NAME => run::<EnqueueTarget>(options),
        _ => return None,
    })
}

/// Checks the property on a fixture's raw bytes (a scenario file, a delivery body, a config
/// file, an enqueue body); `None` for an unknown target.
pub fn replay_named(name: &str, bytes: &[u8]) -> Option<Verdict> {
    Some(match name {
        ScenarioTarget::NAME => runner::replay::<ScenarioTarget>(bytes),
        WebhookTarget::NAME => runner::replay::<WebhookTarget>(bytes),
        ConfigTarget::NAME => runner::replay::<ConfigTarget>(bytes),
        EnqueueTarget::NAME => runner::replay::<EnqueueTarget>(bytes),
        _ => return None,
    })
}

/// Generated enqueue bodies, for sending through the router (`tests/it/fuzz.rs`): the body
/// bytes and, for a well-formed valid request, that it must be accepted.
pub fn enqueue_bodies(cases: usize, seed: u64) -> Vec<(Vec<u8>, bool)> {
    enqueue::bodies(cases, seed)
}

//! The long fuzz run: at least 1,000,000 generated cases per target, on every core, with
//! progress every 10 s, then cases/s and the outcomes per target, and any failure shrunk to
//! its minimal input (saved under `$CARGO_TARGET_TMPDIR/fuzz-failures/<target>/`).
//!
//! Targets: `scenario` (the scenario parser), `webhook` (Gitea deliveries and their signature),
//! `config` (the configuration file), `enqueue` (the enqueue body). The generators and the
//! runner are the short run's (`tests/it/fuzz_gen/`, included below); see there for what each
//! target generates and checks.
//!
//! Run: `cargo bench --bench fuzz` (every target), `cargo bench --bench fuzz -- scenario config`
//! (some). Variables: `FUZZ_CASES` (default 1,000,000 per target), `FUZZ_SECONDS` (stop each
//! target after this long), `FUZZ_THREADS` (default: every core), `FUZZ_SEED` (default: from
//! the clock, printed), `FUZZ_REPLAY=<seed>` (one case, as printed with a failure),
//! `FUZZ_CASE_MS` and `FUZZ_HANG_MS` (time bounds), `FUZZ_INPUT=<file>` (check a saved input,
//! e.g. a fixture, instead of generating cases). Exits with status 1 when a target failed, 3 on
//! a hang.

#[path = "../tests/it/fuzz_gen/mod.rs"]
mod fuzz_gen;

use std::time::Duration;

use fuzz_gen::{Options, TARGETS, replay_named, run_named};

fn main() {
    // `cargo bench` passes `--bench`; every other argument names a target.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let targets: Vec<&str> = if args.is_empty() {
        TARGETS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(bad) = targets.iter().find(|t| !TARGETS.contains(t)) {
        eprintln!("unknown target {bad:?}: use some of {}", TARGETS.join(", "));
        std::process::exit(2);
    }
    if let Ok(path) = std::env::var("FUZZ_INPUT") {
        replay_file(&targets, &path);
        return;
    }
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut options = match Options::from_env(1_000_000, clock, threads) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    options.progress = Some(Duration::from_secs(10));
    println!(
        "fuzz: {} cases per target on {} threads, base seed {:#018x}{}",
        options.cases,
        options.threads,
        options.seed,
        options
            .deadline
            .map(|d| format!(", at most {} s per target", d.as_secs()))
            .unwrap_or_default()
    );
    let mut failed = false;
    for target in targets {
        let report = run_named(target, &options).expect("a known target");
        println!("{report}");
        failed |= report.failure.is_some();
    }
    if failed {
        std::process::exit(1);
    }
}

/// `FUZZ_INPUT=<file>`: checks the property on a saved input (a failure, a fixture), timed.
fn replay_file(targets: &[&str], path: &str) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2);
    });
    let mut failed = false;
    for target in targets {
        let started = std::time::Instant::now();
        let verdict = replay_named(target, &bytes).expect("a known target");
        let took = started.elapsed().as_secs_f64() * 1e3;
        match verdict {
            Ok(outcome) => println!("{target}: {path}: {outcome} in {took:.1} ms"),
            Err(why) => {
                failed = true;
                println!("{target}: {path}: FAILED in {took:.1} ms: {why}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

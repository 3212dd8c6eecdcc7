//! What the sandbox costs a step: the same short command (`true`) started, supervised and
//! reaped through `exec::run`, unconfined and inside bubblewrap (the executor the server uses
//! for build, simulate and `<run>` steps), alternating so that both see the same machine.
//!
//! Prints the median, the fastest and the slowest of `ROUNDS` runs of each, and their ratio.
//!
//! Run: `cargo bench --bench sandbox` (needs `bwrap`: `apt-get install bubblewrap`).

use std::path::Path;
use std::time::{Duration, Instant};

use testarena::exec::{self, Bwrap, Confinement, Executor, Limits, Spec, Unconfined};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 20;
const WARMUP: usize = 3;

async fn once(executor: &dyn Executor, dir: &Path) -> Duration {
    let spec = Spec::new(vec!["true".into()], dir);
    let confinement = Confinement {
        writable: vec![dir.to_owned()],
        network: false,
    };
    let spec = executor.confine(spec, &confinement).expect("confined");
    let limits = Limits {
        timeout: Some(Duration::from_secs(10)),
        silence: None,
        grace: Duration::from_secs(1),
        max_line: 4096,
    };
    let started = Instant::now();
    let ending = exec::run(&spec, &limits, &CancellationToken::new(), |_| {})
        .await
        .expect("runs");
    let took = started.elapsed();
    assert!(
        matches!(ending, exec::Ending::Exited(e) if e.success()),
        "{ending:?}"
    );
    took
}

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "{name:<12} median {:>8.2} ms   min {:>8.2} ms   max {:>8.2} ms",
        median.as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
    median
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let repo = root.join("queues/bench/repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    let bwrap = Bwrap::detect(Path::new("bwrap"), vec![root]).unwrap_or_else(|e| panic!("{e}"));
    println!("goal: know what confinement adds to each build, simulate and <run> step");
    println!("{ROUNDS} runs of `true` each, alternating, after {WARMUP} warm-up runs");
    let (mut plain, mut boxed) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for i in 0..WARMUP + ROUNDS {
            let p = once(&Unconfined, &repo).await;
            let b = once(&bwrap, &repo).await;
            if i >= WARMUP {
                plain.push(p);
                boxed.push(b);
            }
        }
    });
    let p = summary("unconfined", plain);
    let b = summary("bwrap", boxed);
    println!(
        "bwrap adds {:.2} ms per step ({:.1}x)",
        (b.as_secs_f64() - p.as_secs_f64()) * 1e3,
        b.as_secs_f64() / p.as_secs_f64()
    );
}

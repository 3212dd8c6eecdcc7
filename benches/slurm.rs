//! What a board costs on Slurm against the local executor: the same firmware scenario
//! (`scenarios/pass.xml` of the demo firmware in `qemu-system-xtensa`) run as a queue on
//! `xtensa-sim` (this host) and on the same environment with `executor = "slurm"`, on a real
//! single-node Slurm started for the bench (the tests' cluster), by the real `testarena` binary.
//!
//! Per queue: the task's time (board boot to stop, as recorded) and the queue's (checkout to
//! end, with the allocation and its release on Slurm). Rounds alternate; prints medians and the
//! difference, which is the per-board (task) and per-queue overhead of Slurm.
//!
//! Run: `cargo bench --bench slurm` (`SLURM_BENCH_ROUNDS=N`, default 7). Needs root (the
//! cluster's daemons) and the Slurm packages the tests need.

#[path = "support/server.rs"]
mod server;
#[path = "../tests/it/slurm_cluster.rs"]
#[allow(dead_code)]
mod slurm_cluster;

use std::path::Path;

use serde_json::{Value, json};
use server::{Server, median, millis};

/// Runs one queue to its end; returns (task ms, queue ms).
async fn run(server: &Server, repo: &Path, env: &str, n: usize) -> (f64, f64) {
    let id = format!("{env}-{n}");
    server
        .enqueue(json!({
            "id": id,
            "repo": repo.display().to_string(),
            "environment": env,
            "scenarios": ["scenarios/pass.xml"],
        }))
        .await;
    let q = server.run_to_end(&id).await;
    assert_eq!(q["status"], "passed", "{q:#}");
    let task = &q["tasks"][0];
    let span = |v: &Value| (millis(v, "finished_at") - millis(v, "started_at")) as f64;
    (span(task), span(&q))
}

fn main() {
    let rounds: usize = std::env::var("SLURM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let cluster = slurm_cluster::Cluster::shared();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = server::demo_repo(dir.path());
        let config = format!(
            "[worker]\nslots = 1\nallowed_repos = [\"{allowed}/\"]\n\
             [environments.lab-slurm]\nbuild = [\"make\"]\n\
             simulate = [\"qemu-system-xtensa\", \"-M\", \"sim\", \"-cpu\", \"lx106\", \"-nodefaults\", \"-display\", \"none\", \"-semihosting\", \"-kernel\", \"build/fw.elf\"]\n\
             ready = \"testarena-fw: READY\"\nexecutor = \"slurm\"\npartition = \"{partition}\"\nslurm_conf = \"{conf}\"\n",
            allowed = dir.path().display(),
            partition = slurm_cluster::PARTITION,
            conf = cluster.conf().display(),
        );
        let server = Server::start(&config).await;
        let (mut local, mut slurm) = (Vec::new(), Vec::new());
        for n in 0..rounds {
            let l = run(&server, &repo, "xtensa-sim", n).await;
            let s = run(&server, &repo, "lab-slurm", n).await;
            eprintln!(
                "round {n}: local task {:.0} ms queue {:.0} ms; slurm task {:.0} ms queue {:.0} ms",
                l.0, l.1, s.0, s.1
            );
            local.push(l);
            slurm.push(s);
        }
        let med = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(v.iter().map(f).collect());
        let (lt, lq) = (med(&local, |r| r.0), med(&local, |r| r.1));
        let (st, sq) = (med(&slurm, |r| r.0), med(&slurm, |r| r.1));
        println!("one board (scenarios/pass.xml), medians of {rounds} rounds:");
        println!("  local: task {lt:>7.0} ms   queue {lq:>7.0} ms");
        println!("  slurm: task {st:>7.0} ms   queue {sq:>7.0} ms");
        println!(
            "  slurm overhead: {:+.0} ms per board, {:+.0} ms per queue",
            st - lt,
            sq - lq
        );
        server.stop().await;
    });
    cluster.stop();
}

//! The configuration as the real binary reads it: a relative data root, an environment
//! without its timeouts, and a misspelt `TESTARENA_*` variable.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::cli::{client, start_in};
use crate::worker::{SCENARIO_PASS, UNCONFINED, config, make_repo};

#[test]
fn a_relative_root_and_an_environment_without_timeouts_run_a_queue_to_passed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path(), &[("scenarios/pass.xml", SCENARIO_PASS)]);
    // The environment leaves build_timeout and boot_timeout to their defaults.
    let toml = config("echo built > built.txt", "", "") + UNCONFINED;
    let toml: String = toml
        .lines()
        .filter(|l| !l.starts_with("build_timeout") && !l.starts_with("boot_timeout"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!toml.contains("_timeout = \"20s\""), "{toml}");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, toml).unwrap();
    let server = start_in(
        Some(dir.path()),
        Path::new("./rel/root"),
        Some(&cfg),
        &[],
        Stdio::null(),
        &[],
    );
    let repo_arg = repo.display().to_string();
    let out = client(
        &server,
        &[
            "enqueue", "--repo", &repo_arg, "--env", "sim", "--id", "rel1", "--follow",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("=== queue rel1 passed"), "{text}");
    // The root is where the relative path said, under the directory the server started in.
    assert!(dir.path().join("rel/root/testarena.redb").is_file());
    assert!(dir.path().join("rel/root/queues/rel1/queue.log").is_file());
}

#[test]
fn an_unknown_testarena_variable_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testarena"))
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("root"))
        .env("TESTARENA_WORKER_SLOTZ", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable TESTARENA_WORKER_SLOTZ: unknown variable")
            && err.contains("TESTARENA_WORKER_SLOTS"),
        "{err}"
    );
    assert!(
        !dir.path().join("root").exists(),
        "refused before anything was made"
    );
}

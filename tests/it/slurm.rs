//! The Slurm executor against a real Slurm (the single-node cluster of `slurm_cluster`): a
//! console over a step's stdin and stdout, cancels that confirm nothing is left, a pending
//! allocation's reason, recovery of a dead server's jobs, a controller that does not answer,
//! the shared data root check, and the cost of a step.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use testarena::exec::slurm::{Allocation, JobId, Slurm, SlurmError, Stop, Waiting, srun_error};
use testarena::exec::{Child, Limits, Spec, Stream, run};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::slurm_cluster::Cluster;

/// Upper bound for anything these tests wait for (an allocation may wait for another test's).
const PATIENCE: Duration = Duration::from_secs(60);

/// A name no other test (nor another run of this binary) uses.
fn name(what: &str) -> String {
    format!("testarena/it-{}-{what}", std::process::id())
}

/// Cancels the jobs named `name(what)` for each `what` when dropped, so that a failing test
/// leaves no job holding the node's CPUs for the others.
struct Cleanup(&'static Cluster, &'static [&'static str]);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for what in self.1 {
            let _ = self
                .0
                .command("scancel")
                .arg(format!("--name={}", name(what)))
                .status();
        }
    }
}

async fn allocate(slurm: &Slurm, what: &str) -> Allocation {
    let alloc = tokio::time::timeout(
        PATIENCE,
        slurm.allocate(
            &name(what),
            Duration::from_secs(600),
            &CancellationToken::new(),
            |_| {},
        ),
    )
    .await
    .expect("allocated in time");
    alloc.unwrap_or_else(|e| panic!("allocation {what}: {e}"))
}

async fn release(slurm: &Slurm, alloc: Allocation) {
    let job = alloc.job;
    slurm.release(alloc).await.expect("released");
    assert_eq!(slurm.job_state(job).await.expect("squeue"), None);
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) && !cmdline.starts_with("srun ") {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Receives lines until one on `stream` equals `text`; returns every line received.
async fn until_line(
    lines: &mut mpsc::Receiver<testarena::exec::Line>,
    stream: Stream,
    text: &str,
) -> Vec<testarena::exec::Line> {
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.recv().await {
            let done = line.stream == stream && line.text == text;
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("output ended before {text:?}: {seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {text:?} in time"));
    seen
}

#[tokio::test]
async fn a_step_carries_a_console_over_stdin_and_stdout_without_unbuffered() {
    let cluster = Cluster::shared();
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["console"]);
    let alloc = allocate(&slurm, "console").await;
    let echo = Spec::shell(
        r#"echo "console ready"; while read -r line; do echo "echo: $line"; done; echo "bye" >&2"#,
        std::env::temp_dir(),
    )
    .with_stdin();
    let spec = slurm.step(&alloc, echo, &format!("{}/boot", alloc.name), None);
    assert!(!spec.argv.contains(&"--unbuffered".to_owned()));
    let (mut child, mut lines) = Child::spawn(&spec, 4096).expect("srun starts");
    let mut stdin = child.take_stdin().expect("stdin");
    until_line(&mut lines, Stream::Stdout, "console ready").await;
    let mut round_trips = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        stdin
            .write_all(format!("line {i}\n").as_bytes())
            .await
            .expect("write");
        let seen = until_line(&mut lines, Stream::Stdout, &format!("echo: line {i}")).await;
        round_trips.push(sent.elapsed());
        assert_eq!(seen.len(), 1, "nothing but the echo: {seen:?}");
    }
    drop(stdin);
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits");
    assert!(exit.success(), "{exit}");
    let rest: Vec<_> = std::iter::from_fn(|| lines.try_recv().ok()).collect();
    let stderr: Vec<&str> = rest
        .iter()
        .filter(|l| l.stream == Stream::Stderr)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(stderr, ["bye"], "srun adds nothing with --quiet: {rest:?}");
    eprintln!("slurm console round trips: {round_trips:?}");
    release(&slurm, alloc).await;
}

#[tokio::test]
async fn a_failing_step_keeps_its_exit_code_and_srun_marks_its_own_lines() {
    let cluster = Cluster::shared();
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["exit"]);
    let alloc = allocate(&slurm, "exit").await;
    let failing = Spec::shell("echo out; echo err >&2; exit 3", std::env::temp_dir());
    let spec = slurm.step(&alloc, failing, &format!("{}/build", alloc.name), None);
    let mut lines = Vec::new();
    let ending = run(&spec, &Limits::default(), &CancellationToken::new(), |l| {
        lines.push(l)
    })
    .await
    .expect("srun runs");
    let testarena::exec::Ending::Exited(exit) = ending else {
        panic!("{ending:?}");
    };
    assert_eq!(exit.code, Some(3), "{lines:?}");
    let text = |stream| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect()
    };
    assert_eq!(text(Stream::Stdout), ["out"]);
    let stderr = text(Stream::Stderr);
    assert!(stderr.contains(&"err"), "{stderr:?}");
    let own: Vec<&&str> = stderr
        .iter()
        .filter(|l| testarena::exec::slurm::slurm_message(l))
        .collect();
    assert!(
        own.iter().any(|l| l.contains("Exited with exit code 3")),
        "srun reports the task's exit even with --quiet: {stderr:?}"
    );
    assert!(stderr.iter().all(|l| srun_error(l).is_none()), "{stderr:?}");
    release(&slurm, alloc).await;
}

#[tokio::test]
async fn cancelling_a_step_that_ignores_term_leaves_nothing_within_grace_and_2s() {
    let cluster = Cluster::shared();
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["stubborn"]);
    let alloc = allocate(&slurm, "stubborn").await;
    let marker = format!("stubborn-{}", std::process::id());
    let stubborn = Spec::new(
        vec![
            "sh".into(),
            "-c".into(),
            r#"trap "" TERM; echo ready; while :; do sleep 0.1; done"#.into(),
            marker.clone(),
        ],
        std::env::temp_dir(),
    );
    let step_name = format!("{}/boot", alloc.name);
    let spec = slurm.step(&alloc, stubborn, &step_name, None);
    let (mut child, mut lines) = Child::spawn(&spec, 4096).expect("srun starts");
    until_line(&mut lines, Stream::Stdout, "ready").await;
    assert!(!processes_with(&marker).is_empty(), "the task runs here");

    let started = Instant::now();
    let stop = slurm
        .cancel_step(alloc.job, &step_name)
        .await
        .expect("cancelled");
    let took = started.elapsed();
    assert_eq!(stop, Stop::Killed);
    assert!(took <= slurm.grace + Duration::from_secs(2), "{took:?}");
    assert!(
        slurm
            .step_ids(alloc.job, &step_name)
            .await
            .unwrap()
            .is_empty(),
        "squeue lists the step no more"
    );
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("srun ends with its step");
    eprintln!("slurm: stubborn step killed after {took:?}; srun {exit:?}");

    // A step that honours TERM ends within the grace period.
    let polite = Spec::shell("echo ready; exec sleep 600", std::env::temp_dir());
    let polite_name = format!("{}/polite", alloc.name);
    let spec = slurm.step(&alloc, polite, &polite_name, None);
    let (mut child, mut lines) = Child::spawn(&spec, 4096).expect("srun starts");
    until_line(&mut lines, Stream::Stdout, "ready").await;
    let started = Instant::now();
    let stop = slurm.cancel_step(alloc.job, &polite_name).await.unwrap();
    assert_eq!(stop, Stop::Terminated, "after {:?}", started.elapsed());
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("srun ends");
    assert_eq!(
        slurm.cancel_step(alloc.job, &polite_name).await.unwrap(),
        Stop::NotRunning
    );
    release(&slurm, alloc).await;
}

#[tokio::test]
async fn a_pending_allocation_reports_its_reason_and_is_withdrawn_when_cancelled() {
    let cluster = Cluster::shared();
    let _cleanup = Cleanup(cluster, &["holder", "waiter"]);
    // One allocation holds every CPU of the node, so the next one waits for resources.
    let mut greedy = cluster.slurm();
    greedy.alloc_args = vec![format!("--cpus-per-task={}", cluster.cpus)];
    let holder = allocate(&greedy, "holder").await;

    let slurm = cluster.slurm();
    let cancel = CancellationToken::new();
    let (tx, mut waits) = mpsc::unbounded_channel();
    let waiting = {
        let (slurm, cancel, name) = (slurm.clone(), cancel.clone(), name("waiter"));
        tokio::spawn(async move {
            slurm
                .allocate(&name, Duration::from_secs(60), &cancel, |w| {
                    let _ = tx.send(w.clone());
                })
                .await
        })
    };
    let mut seen = Vec::new();
    let resources = tokio::time::timeout(PATIENCE, async {
        loop {
            let wait = waits.recv().await.expect("allocate reports while it waits");
            seen.push(wait.clone());
            if let Waiting::Pending { reason, .. } = &wait
                && (reason == "Resources" || reason == "Priority")
            {
                return wait;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no pending reason in time: {seen:?}"));
    let job = resources.job();
    assert!(
        resources
            .to_string()
            .starts_with(&format!("job {job} pending (")),
        "{resources}"
    );
    let state = slurm.job_state(job).await.unwrap().expect("listed");
    assert!(state.pending(), "{state:?}");

    cancel.cancel();
    let result = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the wait ends")
        .expect("no panic");
    assert_eq!(result, Err(SlurmError::Cancelled));
    let after = slurm.job_state(job).await.unwrap();
    assert!(after.as_ref().is_none_or(|s| s.ended()), "{after:?}");
    eprintln!("slurm: pending reports {seen:?}");
    release(&greedy, holder).await;
}

#[tokio::test]
async fn recovery_cancels_what_a_dead_server_left_by_job_id_and_by_name() {
    let cluster = Cluster::shared();
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["orphan-by-id", "orphan-by-name"]);
    let marker = format!("orphan-{}", std::process::id());
    // Another process (the server before its crash) allocated two jobs and started a step in
    // each, then its process tree was killed: srun and the helper it forks (which cancels the
    // step when srun alone dies) got SIGKILL.
    let mut orphans = Vec::new();
    for what in ["orphan-by-id", "orphan-by-name"] {
        let out = cluster
            .command("salloc")
            .args([
                "--no-shell",
                "--time=2",
                &format!("--job-name={}", name(what)),
            ])
            .output()
            .expect("salloc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let job: JobId = stderr
            .lines()
            .find_map(|l| l.strip_prefix("salloc: Granted job allocation "))
            .unwrap_or_else(|| panic!("{stderr}"))
            .trim()
            .parse()
            .unwrap();
        let mut srun = cluster
            .command("srun")
            .args([
                &format!("--jobid={job}"),
                "--quiet",
                "--job-name=orphan-step",
                "sh",
                "-c",
                r#"exec </dev/null >/dev/null 2>&1; trap "" TERM; while :; do sleep 0.1; done"#,
                &format!("{marker}-{what}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("srun");
        // Its task runs (a step listed by squeue may still be setting up its I/O with srun).
        let deadline = Instant::now() + PATIENCE;
        while processes_with(&format!("{marker}-{what}")).is_empty() {
            assert!(Instant::now() < deadline, "the task did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let group = libc::pid_t::try_from(srun.id()).unwrap();
        // SAFETY: the group of our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(-group, libc::SIGKILL) }, 0);
        srun.wait().expect("reaped");
        orphans.push((what, job));
    }
    // The step outlives its srun: only Slurm can stop it. Given a second to end (squeue
    // says), it does not.
    let ended = tokio::time::timeout(Duration::from_secs(1), async {
        for (_, job) in &orphans {
            while !slurm
                .step_ids(*job, "orphan-step")
                .await
                .unwrap()
                .is_empty()
            {}
        }
    })
    .await;
    assert!(ended.is_err(), "a step ended with its srun");
    for (what, job) in &orphans {
        assert_eq!(
            slurm.step_ids(*job, "orphan-step").await.unwrap().len(),
            1,
            "{what}: the step still runs without its srun"
        );
    }
    // Both tasks run; a look may catch a shell between fork and exec with its parent's name,
    // so a few looks are taken.
    let tasks = (0..20)
        .map(|_| processes_with(&marker).len())
        .find(|n| *n == 2);
    assert_eq!(tasks, Some(2));

    let started = Instant::now();
    let (_, by_id) = orphans[0];
    assert_eq!(slurm.cancel_job(by_id).await.unwrap(), Stop::Killed);
    let took_by_id = started.elapsed();
    assert_eq!(
        processes_with(&format!("{marker}-orphan-by-id")),
        Vec::<String>::new()
    );
    let started = Instant::now();
    let (_, by_name) = orphans[1];
    assert_eq!(
        slurm.cancel_by_name(&name("orphan-by-name")).await.unwrap(),
        [by_name]
    );
    eprintln!(
        "slurm: orphaned jobs cancelled by id in {took_by_id:?}, by name in {:?}",
        started.elapsed()
    );
    for (what, job) in orphans {
        let state = slurm.job_state(job).await.unwrap();
        assert!(
            state.as_ref().is_none_or(|s| s.ended()),
            "{what}: {state:?}"
        );
    }
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    assert_eq!(slurm.cancel_job(by_id).await.unwrap(), Stop::NotRunning);
    assert_eq!(
        slurm.cancel_by_name(&name("orphan-by-name")).await.unwrap(),
        []
    );
}

#[tokio::test]
async fn a_controller_that_does_not_answer_makes_the_executor_unavailable() {
    let cluster = Cluster::shared();
    let down = cluster.unreachable();
    let unavailable = |what: &str, e: SlurmError| {
        assert!(e.is_unavailable(), "{what}: {e}");
        assert!(
            e.to_string().contains("Unable to contact slurm controller"),
            "{what}: {e}"
        );
    };
    unavailable("squeue", down.job_state(JobId(1)).await.unwrap_err());
    unavailable("scancel", down.cancel_job(JobId(1)).await.unwrap_err());
    let cancel = CancellationToken::new();
    let allocation = down
        .allocate(&name("down"), Duration::from_secs(60), &cancel, |_| {})
        .await;
    unavailable("salloc", allocation.unwrap_err());

    // A step of an allocation the controller no longer answers for: srun fails, and its own
    // line says why, so the queue ends "executor unavailable", not "build failed".
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["down-step"]);
    let alloc = allocate(&slurm, "down-step").await;
    let spec = down.step(
        &alloc,
        Spec::shell("echo built", std::env::temp_dir()),
        "build",
        None,
    );
    let mut lines = Vec::new();
    let ending = run(&spec, &Limits::default(), &cancel, |l| lines.push(l))
        .await
        .expect("srun runs");
    assert!(!ending.success(), "{ending:?}");
    let error = lines
        .iter()
        .filter(|l| l.stream == Stream::Stderr)
        .find_map(|l| srun_error(&l.text))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(error.is_unavailable(), "{error}");
    release(&slurm, alloc).await;
}

#[tokio::test]
async fn the_data_root_check_reads_the_server_s_marker_from_a_step() {
    let cluster = Cluster::shared();
    let root = tempfile::tempdir().unwrap();
    cluster
        .slurm()
        .verify_shared_root(root.path(), &CancellationToken::new())
        .await
        .expect("a single node shares its own disk");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "the marker is removed"
    );
}

#[tokio::test]
async fn a_step_costs_tens_of_milliseconds_more_than_a_local_spawn() {
    const RUNS: usize = 20;
    let cluster = Cluster::shared();
    let slurm = cluster.slurm();
    let _cleanup = Cleanup(cluster, &["overhead"]);
    let alloc = allocate(&slurm, "overhead").await;
    let cancel = CancellationToken::new();
    let timings = |spec: Spec| {
        let cancel = cancel.clone();
        async move {
            let mut took = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let started = Instant::now();
                let ending = run(&spec, &Limits::default(), &cancel, |_| {})
                    .await
                    .unwrap();
                assert!(ending.success(), "{ending:?}");
                took.push(started.elapsed());
            }
            took.sort();
            took[RUNS / 2]
        }
    };
    let local = Spec::new(vec!["true".into()], std::env::temp_dir());
    let stepped = slurm.step(&alloc, local.clone(), &format!("{}/true", alloc.name), None);
    let local = timings(local).await;
    let stepped = timings(stepped).await;
    eprintln!("slurm: median of {RUNS} runs of true: local {local:?}, srun step {stepped:?}");
    assert!(stepped < Duration::from_secs(5), "{stepped:?}");
    release(&slurm, alloc).await;
}

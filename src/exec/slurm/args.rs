//! The command lines of the Slurm client commands, built from values only (pure, tested).

use std::time::Duration;

use super::{JobId, Slurm};

/// `--time` in whole minutes, rounded up, at least one: Slurm keeps time limits in minutes
/// (`0` would mean "no limit").
pub(crate) fn minutes(limit: Duration) -> String {
    limit.as_millis().div_ceil(60_000).max(1).to_string()
}

impl Slurm {
    /// `salloc --no-shell …`: one allocation of one task on one node, with the partition, account,
    /// QoS and the extra allocation arguments. Without `--quiet`: its "Pending job allocation N"
    /// and "Granted job allocation N" lines are what [`super::Slurm::allocate`] reads.
    pub(crate) fn salloc_argv(&self, name: &str, time_limit: Duration) -> Vec<String> {
        let mut argv = vec![
            "salloc".to_owned(),
            "--no-shell".to_owned(),
            format!("--job-name={name}"),
            format!("--partition={}", self.partition),
            format!("--time={}", minutes(time_limit)),
            "--nodes=1".to_owned(),
            "--ntasks=1".to_owned(),
        ];
        if let Some(account) = &self.account {
            argv.push(format!("--account={account}"));
        }
        if let Some(qos) = &self.qos {
            argv.push(format!("--qos={qos}"));
        }
        argv.extend(self.alloc_args.iter().cloned());
        argv
    }

    /// `srun …` for one step of `job`, in front of `command` (run in `cwd` by `env -C`, which
    /// fails where slurmstepd would silently fall back to `/tmp`).
    pub(crate) fn srun_argv(
        &self,
        job: JobId,
        name: &str,
        time_limit: Option<Duration>,
        cwd: &str,
        command: &[String],
    ) -> Vec<String> {
        let mut argv = vec![
            "srun".to_owned(),
            format!("--jobid={job}"),
            format!("--job-name={name}"),
            "--quiet".to_owned(),
            "--overlap".to_owned(),
            "--nodes=1".to_owned(),
            "--ntasks=1".to_owned(),
        ];
        if let Some(limit) = time_limit {
            argv.push(format!("--time={}", minutes(limit)));
        }
        argv.extend(self.srun_args.iter().cloned());
        argv.extend(["--", "env", "-C", cwd, "--"].map(str::to_owned));
        argv.extend(command.iter().cloned());
        argv
    }
}

/// `squeue` for one job's state and pending reason.
pub(crate) fn job_state_argv(job: JobId) -> Vec<String> {
    vec![
        "squeue".into(),
        "--noheader".into(),
        format!("--jobs={job}"),
        "--format=%T|%r".into(),
    ]
}

/// `squeue` for the steps of one job: `<job>.<step>|<name>` per line.
pub(crate) fn steps_argv(job: JobId) -> Vec<String> {
    vec![
        "squeue".into(),
        "--noheader".into(),
        "--steps".into(),
        format!("--jobs={job}"),
        "--format=%i|%j".into(),
    ]
}

/// `squeue` for the live jobs named `name` (Slurm splits `--name` at commas: the caller matches
/// the names it gets back exactly): `<job>|<name>` per line.
pub(crate) fn jobs_named_argv(name: &str) -> Vec<String> {
    vec![
        "squeue".into(),
        "--noheader".into(),
        format!("--name={name}"),
        "--format=%i|%j".into(),
    ]
}

/// `scancel` sending `signal` (`TERM`, `KILL`) to the given jobs or steps without ending them;
/// `None` ends the jobs (Slurm's own `SIGCONT`, `SIGTERM`, `KillWait`, `SIGKILL`).
pub(crate) fn scancel_argv(signal: Option<&str>, targets: &[String]) -> Vec<String> {
    let mut argv = vec!["scancel".to_owned()];
    if let Some(signal) = signal {
        // --full: a batch script too, when a job has one (an allocation of ours has none).
        argv.extend([format!("--signal={signal}"), "--full".to_owned()]);
    }
    argv.extend(targets.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm() -> Slurm {
        let mut s = Slurm::new("debug");
        s.account = Some("lab".into());
        s.qos = Some("short".into());
        s.alloc_args = vec!["--cpus-per-task=4".into()];
        s.srun_args = vec!["--cpu-bind=none".into()];
        s
    }

    #[test]
    fn time_limits_are_whole_minutes_rounded_up() {
        let check = |secs: f64, expected: &str| {
            assert_eq!(minutes(Duration::from_secs_f64(secs)), expected, "{secs}");
        };
        check(0.0, "1");
        check(1.0, "1");
        check(60.0, "1");
        check(60.5, "2");
        check(61.0, "2");
        check(1800.0, "30");
        check(86_400.0 * 2.0, "2880");
    }

    #[test]
    fn salloc_asks_for_one_task_with_the_environment_s_options() {
        let argv = slurm().salloc_argv("testarena/q1", Duration::from_secs(90));
        assert_eq!(
            argv,
            [
                "salloc",
                "--no-shell",
                "--job-name=testarena/q1",
                "--partition=debug",
                "--time=2",
                "--nodes=1",
                "--ntasks=1",
                "--account=lab",
                "--qos=short",
                "--cpus-per-task=4"
            ]
        );
        let plain = Slurm::new("p").salloc_argv("n", Duration::from_secs(60));
        assert!(
            !plain
                .iter()
                .any(|a| a.starts_with("--account") || a.starts_with("--qos"))
        );
    }

    #[test]
    fn srun_puts_the_command_after_dashdash_behind_env_chdir() {
        let argv = slurm().srun_argv(
            JobId(42),
            "testarena/q1/build",
            Some(Duration::from_secs(600)),
            "/data/queues/q1/repo",
            &["--not-an-option".into(), "a b".into()],
        );
        assert_eq!(
            argv,
            [
                "srun",
                "--jobid=42",
                "--job-name=testarena/q1/build",
                "--quiet",
                "--overlap",
                "--nodes=1",
                "--ntasks=1",
                "--time=10",
                "--cpu-bind=none",
                "--",
                "env",
                "-C",
                "/data/queues/q1/repo",
                "--",
                "--not-an-option",
                "a b"
            ]
        );
        let untimed = slurm().srun_argv(JobId(1), "n", None, "/", &["true".into()]);
        assert!(!untimed.iter().any(|a| a.starts_with("--time")));
        assert!(!untimed.iter().any(|a| a == "--unbuffered"));
    }

    #[test]
    fn queries_and_cancels() {
        assert_eq!(
            job_state_argv(JobId(7)),
            ["squeue", "--noheader", "--jobs=7", "--format=%T|%r"]
        );
        assert_eq!(
            steps_argv(JobId(7)),
            [
                "squeue",
                "--noheader",
                "--steps",
                "--jobs=7",
                "--format=%i|%j"
            ]
        );
        assert_eq!(
            jobs_named_argv("testarena/q"),
            [
                "squeue",
                "--noheader",
                "--name=testarena/q",
                "--format=%i|%j"
            ]
        );
        assert_eq!(
            scancel_argv(Some("TERM"), &["7.1".into()]),
            ["scancel", "--signal=TERM", "--full", "7.1"]
        );
        assert_eq!(scancel_argv(None, &["7".into()]), ["scancel", "7"]);
    }
}

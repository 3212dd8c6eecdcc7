//! What the Slurm commands print, read back: salloc's progress lines, squeue's rows, and the
//! error texts that mean "the controller does not answer" or "that job is already gone" (pure,
//! table-tested against the texts Slurm 22.05 prints).

use super::{JobId, SlurmError};

/// What a line of salloc's stderr says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SallocEvent {
    /// `salloc: Pending job allocation N`: submitted, not allocated yet.
    Pending(JobId),
    /// `salloc: Granted job allocation N`.
    Granted(JobId),
    /// The job was cancelled or revoked before it was granted.
    Revoked(String),
}

pub(crate) fn salloc_line(line: &str) -> Option<SallocEvent> {
    let rest = line.strip_prefix("salloc: ")?;
    let job = |prefix: &str| {
        rest.strip_prefix(prefix)
            .and_then(|id| id.trim().parse::<JobId>().ok())
    };
    if let Some(job) = job("Pending job allocation ") {
        return Some(SallocEvent::Pending(job));
    }
    if let Some(job) = job("Granted job allocation ") {
        return Some(SallocEvent::Granted(job));
    }
    if rest.contains("has been revoked") || rest.starts_with("Job has been cancelled") {
        return Some(SallocEvent::Revoked(rest.to_owned()));
    }
    None
}

/// A job's state and the reason Slurm gives for it (`PENDING` / `Resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub state: String,
    pub reason: String,
}

/// States after which a job holds nothing any more: no step, no process, no resource.
const ENDED: &[&str] = &[
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "SPECIAL_EXIT",
    "TIMEOUT",
];

impl JobState {
    /// Slurm has not allocated the job yet.
    pub fn pending(&self) -> bool {
        self.state == "PENDING"
    }

    /// The job has ended; everything else (running, completing, suspended, …) still holds
    /// processes or resources.
    pub fn ended(&self) -> bool {
        ENDED.contains(&self.state.as_str())
    }
}

/// squeue's `%T|%r` row; `None` when it printed none (the job is no longer listed).
pub(crate) fn job_state(stdout: &str) -> Option<JobState> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (state, reason) = line.split_once('|').unwrap_or((line, ""));
    Some(JobState {
        state: state.trim().to_owned(),
        reason: reason.trim().to_owned(),
    })
}

/// From squeue's `%i|%j` rows, the ids whose name is exactly `name` (names may hold `|`: the id
/// never does).
pub(crate) fn ids_named<'a>(stdout: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    stdout.lines().filter_map(move |line| {
        let (id, n) = line.trim_start().split_once('|')?;
        (n.trim_end() == name).then_some(id.trim())
    })
}

/// Texts of the Slurm commands that mean the controller did not answer (down, unreachable,
/// overloaded), or that the client cannot find its cluster at all.
const NO_ANSWER: &[&str] = &[
    "Unable to contact slurm controller",
    "Socket timed out on send/recv",
    "Zero Bytes were transmitted or received",
    "Communication connection failure",
    "Slurm backup controller in standby mode",
    "Could not establish a configuration source",
    "Unable to establish controller machine",
];

pub(crate) fn no_answer(text: &str) -> bool {
    NO_ANSWER.iter().any(|needle| text.contains(needle))
}

/// Texts of squeue and scancel that mean the job or step is already gone.
const GONE: &[&str] = &[
    "Invalid job id specified",
    "already completing or completed",
    "Job/step already completing or completed",
];

pub(crate) fn gone(text: &str) -> bool {
    GONE.iter().any(|needle| text.contains(needle))
}

/// Whether a line of a step's stderr is srun's or slurmstepd's own (`srun: error: …`,
/// `slurmstepd-node1: error: *** STEP 12.3 ON node1 CANCELLED … ***`), not the command's: such
/// lines belong in the log, never in the console.
pub fn slurm_message(line: &str) -> bool {
    line.starts_with("srun: ") || line.starts_with("slurmstepd")
}

/// What a line of srun's stderr says about Slurm itself, if it says the step could not run or
/// was ended by Slurm (rather than by the command): the controller did not answer, or the
/// allocation is gone. The command's own failures ("task 0: Exited with exit code 2") are not
/// errors of Slurm and give `None`.
pub fn srun_error(line: &str) -> Option<SlurmError> {
    if !slurm_message(line) {
        return None;
    }
    if no_answer(line) {
        return Some(SlurmError::Unavailable(line.to_owned()));
    }
    let revoked = [
        "Unable to confirm allocation",
        "Invalid job id specified",
        "Job/step already completing or completed",
        "DUE TO TIME LIMIT",
        "DUE TO PREEMPTION",
        "DUE TO NODE FAILURE",
    ];
    if revoked.iter().any(|needle| line.contains(needle)) {
        return Some(SlurmError::Ended(line.to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salloc_lines() {
        let check = |line: &str, expected: Option<SallocEvent>| {
            assert_eq!(salloc_line(line), expected, "{line}");
        };
        check(
            "salloc: Pending job allocation 12",
            Some(SallocEvent::Pending(JobId(12))),
        );
        check(
            "salloc: Granted job allocation 12",
            Some(SallocEvent::Granted(JobId(12))),
        );
        check("salloc: job 12 queued and waiting for resources", None);
        check(
            "salloc: Job allocation 12 has been revoked.",
            Some(SallocEvent::Revoked(
                "Job allocation 12 has been revoked.".into(),
            )),
        );
        check(
            "salloc: Job has been cancelled",
            Some(SallocEvent::Revoked("Job has been cancelled".into())),
        );
        check("salloc: Granted job allocation x", None);
        check("Granted job allocation 3", None);
        check(
            "salloc: error: Job submit/allocate failed: Invalid partition name specified",
            None,
        );
    }

    #[test]
    fn squeue_rows() {
        let running = job_state("RUNNING|None\n").unwrap();
        assert!(!running.pending() && !running.ended());
        let pending = job_state("PENDING|Resources\n").unwrap();
        assert!(pending.pending());
        assert_eq!(pending.reason, "Resources");
        assert!(job_state("CANCELLED|None").unwrap().ended());
        assert!(!job_state("COMPLETING|None").unwrap().ended());
        assert_eq!(job_state(""), None);
        assert_eq!(job_state("\n  \n"), None);

        let steps = "7.0|testarena/q/build\n7.1|testarena/q/boot|x\n7.2|testarena/q/boot\n";
        assert_eq!(
            ids_named(steps, "testarena/q/boot").collect::<Vec<_>>(),
            ["7.2"]
        );
        assert_eq!(
            ids_named(steps, "testarena/q/boot|x").collect::<Vec<_>>(),
            ["7.1"]
        );
        assert_eq!(ids_named(steps, "testarena/q").count(), 0);
        assert_eq!(
            ids_named("  12|testarena/q  \n", "testarena/q").collect::<Vec<_>>(),
            ["12"]
        );
    }

    #[test]
    fn error_texts() {
        for text in [
            "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
            "scancel: error: Kill job error on job id 1: Unable to contact slurm controller (connect failure)",
            "salloc: error: Job submit/allocate failed: Unable to contact slurm controller (connect failure)",
            "squeue: error: slurm_receive_msg: Socket timed out on send/recv operation",
            "squeue: fatal: Could not establish a configuration source",
        ] {
            assert!(no_answer(text), "{text}");
            assert!(!gone(text), "{text}");
        }
        for text in [
            "slurm_load_jobs error: Invalid job id specified",
            "scancel: error: Kill job error on job id 99: Invalid job id specified",
            "scancel: error: Kill job error on job id 4.2: Job/step already completing or completed",
        ] {
            assert!(gone(text), "{text}");
            assert!(!no_answer(text), "{text}");
        }
    }

    #[test]
    fn srun_lines() {
        let unavailable = "srun: error: Unable to confirm allocation for job 1: Unable to contact slurm controller (connect failure)";
        assert!(matches!(
            srun_error(unavailable),
            Some(SlurmError::Unavailable(_))
        ));
        for ended in [
            "srun: error: Unable to confirm allocation for job 9: Invalid job id specified",
            "slurmstepd-n1: error: *** STEP 3.1 ON n1 CANCELLED AT 2026-12-03T18:56:42 DUE TO TIME LIMIT ***",
        ] {
            assert!(
                matches!(srun_error(ended), Some(SlurmError::Ended(_))),
                "{ended}"
            );
        }
        for not_slurm in [
            "srun: error: vm: task 0: Exited with exit code 2",
            "make: *** [all] Error 2 Unable to contact slurm controller",
            "slurmstepd-vm: error: *** STEP 1.21 ON vm CANCELLED AT 2026-12-03T18:55:24 ***",
        ] {
            assert!(srun_error(not_slurm).is_none(), "{not_slurm}");
        }
        assert!(slurm_message("srun: error: vm: task 0: Killed"));
        assert!(slurm_message(
            "slurmstepd-vm: error: execve(): x: No such file"
        ));
        assert!(!slurm_message("login: "));
    }
}

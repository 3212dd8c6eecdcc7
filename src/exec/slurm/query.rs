//! One Slurm client command (squeue, scancel) run to its end with a time limit, its output
//! collected and its failure typed: not answering is not the same as refusing.

use tokio_util::sync::CancellationToken;

use super::super::{Ending, ExecError, Limits, Stream, run};
use super::{Slurm, SlurmError, parse};

/// What a client command printed, and whether it exited with 0.
#[derive(Debug)]
pub(crate) struct Output {
    pub command: &'static str,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Its stdout, or the refusal it printed.
    pub fn ok(self) -> Result<String, SlurmError> {
        if self.success {
            return Ok(self.stdout);
        }
        Err(SlurmError::Refused {
            command: self.command,
            detail: if self.stderr.is_empty() {
                "failed without a message".to_owned()
            } else {
                self.stderr
            },
        })
    }
}

impl Slurm {
    /// Runs `argv` (its program is `command`); a command that cannot start, does not return
    /// within `command_timeout`, or says the controller did not answer is `Unavailable`.
    pub(crate) async fn query(
        &self,
        command: &'static str,
        argv: Vec<String>,
    ) -> Result<Output, SlurmError> {
        let spec = self.client(argv);
        let limits = Limits {
            timeout: Some(self.command_timeout),
            ..Limits::default()
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let ending = run(&spec, &limits, &CancellationToken::new(), |line| {
            let out = match line.stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&line.text);
        })
        .await
        .map_err(not_installed)?;
        match ending {
            Ending::Exited(exit) if !exit.success() && parse::no_answer(&stderr) => {
                Err(SlurmError::Unavailable(stderr))
            }
            Ending::Exited(exit) => Ok(Output {
                command,
                success: exit.success(),
                stdout,
                stderr,
            }),
            _ => Err(SlurmError::Unavailable(format!(
                "{command} did not return within {:?}",
                self.command_timeout
            ))),
        }
    }
}

/// A client command that cannot be started: Slurm is not usable from here.
pub(crate) fn not_installed(error: ExecError) -> SlurmError {
    SlurmError::Unavailable(format!(
        "{error} (the Slurm client commands: apt-get install slurm-client)"
    ))
}

//! What to run: an argv, a working directory, extra environment, and whether stdin is piped.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use tokio::process::Command;

use super::error::ExecError;

/// Environment variables that belong to this process only and must not leak into children
/// (a child that finds `NOTIFY_SOCKET` could report readiness to systemd in our name; the
/// credentials directory holds secrets). Every `TESTARENA_*` variable of the server is removed
/// too: they carry its configuration and secrets.
const PRIVATE_ENV: &[&str] = &["NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY"];

/// What a child with a clean environment inherits from the server's, when set.
const ALLOWED_ENV: &[&str] = &["PATH", "LANG", "TERM"];

/// `PATH` for a clean environment when the server has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A command to run as a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Program and arguments; the program is looked up in `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// Variables added to the environment.
    pub env: Vec<(String, String)>,
    /// Give the child a stdin pipe ([`super::Child::take_stdin`]); otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// Start from an empty environment plus `PATH`, `LANG`, `TERM` and `env` (repository code);
    /// otherwise the server's environment less its private variables (git).
    pub clean_env: bool,
    /// How to stop the command's real work where it runs (a Slurm step on another node) before
    /// its local process is signalled; `None` for a command that runs here.
    pub stop_first: Option<StopFirst>,
}

/// A graceful stop of work that runs elsewhere: given the grace period, it ends that work
/// (`SIGTERM`, the grace, `SIGKILL`, confirmed gone). [`super::Child::stop`] awaits it before it
/// signals the local process, which only relays (signalling `srun` kills its step at once).
#[derive(Clone)]
pub struct StopFirst(pub Arc<dyn Fn(std::time::Duration) -> StopFuture + Send + Sync>);

/// What a [`StopFirst`] returns: the stop, to await.
pub type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl fmt::Debug for StopFirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StopFirst")
    }
}

impl PartialEq for StopFirst {
    fn eq(&self, other: &StopFirst) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StopFirst {}

impl Spec {
    pub fn new(argv: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        Spec {
            argv,
            cwd: cwd.into(),
            env: Vec::new(),
            stdin: false,
            clean_env: false,
            stop_first: None,
        }
    }

    /// A command line for `sh -c`, passed as a single argument (nothing is interpolated).
    pub fn shell(command: &str, cwd: impl Into<PathBuf>) -> Self {
        Spec::new(vec!["sh".into(), "-c".into(), command.into()], cwd)
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Gives the child a stdin pipe.
    pub fn with_stdin(mut self) -> Self {
        self.stdin = true;
        self
    }

    /// The program name, for messages.
    pub(crate) fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// The command to spawn: own session and process group (no controlling terminal), piped
    /// output, private variables removed.
    pub(crate) fn command(&self) -> Result<Command, ExecError> {
        let (program, args) = self.argv.split_first().ok_or(ExecError::EmptyCommand)?;
        let mut command = Command::new(program);
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
            .args(args)
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if self.clean_env {
            command.env_clear();
            for key in ALLOWED_ENV {
                if let Some(value) = std::env::var_os(key) {
                    command.env(key, value);
                } else if *key == "PATH" {
                    command.env(key, DEFAULT_PATH);
                }
            }
        } else {
            for key in PRIVATE_ENV {
                command.env_remove(key);
            }
            for (key, _) in std::env::vars_os() {
                if key.to_str().is_some_and(|k| k.starts_with("TESTARENA_")) {
                    command.env_remove(key);
                }
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn shell_passes_the_command_as_one_argument() {
        let spec = Spec::shell("echo \"$1\"; rm -rf x; `id`", "/tmp");
        assert_eq!(spec.argv, ["sh", "-c", "echo \"$1\"; rm -rf x; `id`"]);
        assert_eq!(spec.cwd, PathBuf::from("/tmp"));
        assert!(!spec.stdin);
    }

    #[test]
    fn builder_adds_env_and_stdin() {
        let spec = Spec::new(vec!["make".into()], "/src")
            .env("A", "1")
            .env("B", "two words")
            .with_stdin();
        assert_eq!(
            spec.env,
            [("A".into(), "1".into()), ("B".into(), "two words".into())]
        );
        assert!(spec.stdin);
        assert_eq!(spec.program(), "make");
    }

    #[test]
    fn command_removes_notify_socket_and_adds_env() {
        let spec = Spec::new(vec!["true".into()], "/").env("TESTARENA_QUEUE", "q1");
        let command = spec.command().expect("command");
        let envs: Vec<_> = command.as_std().get_envs().collect();
        assert!(
            envs.contains(&(OsStr::new("NOTIFY_SOCKET"), None)),
            "{envs:?}"
        );
        assert!(envs.contains(&(OsStr::new("TESTARENA_QUEUE"), Some(OsStr::new("q1")))));
    }

    #[test]
    fn empty_argv_is_rejected() {
        let spec = Spec::new(Vec::new(), "/");
        assert!(matches!(spec.command(), Err(ExecError::EmptyCommand)));
    }
}

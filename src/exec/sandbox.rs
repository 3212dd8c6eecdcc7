//! The executor seam: what a command from a repository (build, simulate, `<run>`) becomes before
//! it is spawned. An [`Executor`] turns a [`Spec`] and its [`Confinement`] into the `Spec` that is
//! really started; another isolation (a container, a pod) is one more implementation.
//!
//! - [`Bwrap`]       bubblewrap: the system read-only, only the writable directories bound
//!   read-write, a private `/tmp` and `/run`, the data root and the server's secrets hidden, its
//!   own `/proc`, `/dev` and namespaces (network too unless allowed), no capabilities, dies
//!   with the server.
//! - [`Unconfined`]  runs the command as it is (`[sandbox] mode = "none"`).
//! - [`Unavailable`] the sandbox was asked for but cannot run here: every command is refused
//!   with the reason and what to do.
//!
//! Every one of them starts the command from an empty environment (see [`Spec::clean_env`]).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use super::Spec;

/// What a command from a repository may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// Directories it may write (the queue's checkout), at the same paths as outside.
    pub writable: Vec<PathBuf>,
    /// Whether it may reach the network (the host's network namespace).
    pub network: bool,
}

/// Why a command cannot be started in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SandboxError(pub String);

/// Turns a command from a repository into what is spawned.
pub trait Executor: Send + Sync + fmt::Debug {
    /// The command to spawn for `spec`, confined as `confinement` says.
    fn confine(&self, spec: Spec, confinement: &Confinement) -> Result<Spec, SandboxError>;

    /// Why no command can run (shown at start-up, on the dashboard and in each queue), if so.
    fn unavailable(&self) -> Option<&str> {
        None
    }

    /// A short name for logs: `bwrap`, `none`.
    fn name(&self) -> &'static str;
}

/// Commands run as they are, as the server's user, with a clean environment.
#[derive(Debug, Default)]
pub struct Unconfined;

impl Executor for Unconfined {
    fn confine(&self, mut spec: Spec, _: &Confinement) -> Result<Spec, SandboxError> {
        spec.clean_env = true;
        if let Some(home) = std::env::var_os("HOME") {
            spec.env
                .insert(0, ("HOME".into(), home.to_string_lossy().into_owned()));
        }
        Ok(spec)
    }

    fn name(&self) -> &'static str {
        "none"
    }
}

/// The sandbox cannot run here; every command is refused with `reason`.
#[derive(Debug)]
pub struct Unavailable {
    pub reason: String,
}

impl Executor for Unavailable {
    fn confine(&self, _: Spec, _: &Confinement) -> Result<Spec, SandboxError> {
        Err(SandboxError(self.reason.clone()))
    }

    fn unavailable(&self) -> Option<&str> {
        Some(&self.reason)
    }

    fn name(&self) -> &'static str {
        "bwrap (unavailable)"
    }
}

/// Commands run inside bubblewrap.
#[derive(Debug, Clone)]
pub struct Bwrap {
    program: PathBuf,
    /// Paths sandboxed commands must not see: the data root, the configuration's secrets,
    /// the server's credentials. Directories are covered by an empty tmpfs, files by `/dev/null`.
    hidden: Vec<PathBuf>,
}

/// Where `HOME` points inside the sandbox: its private, writable `/tmp`.
const SANDBOX_HOME: &str = "/tmp";

impl Bwrap {
    /// Checks that `program` runs a sandbox here (it exists and may create namespaces), and
    /// returns the executor, or the reason it cannot, saying what to do.
    pub fn detect(program: &Path, hidden: Vec<PathBuf>) -> Result<Bwrap, String> {
        let bwrap = Bwrap {
            program: program.to_owned(),
            hidden,
        };
        let probe = bwrap.argv(
            &Confinement {
                writable: Vec::new(),
                network: false,
            },
            Path::new("/"),
            &["true".to_owned()],
        );
        let fix = "install bubblewrap (apt-get install bubblewrap) or set [sandbox] mode = \"none\" \
                   to run repository code unconfined";
        let output = std::process::Command::new(&probe[0])
            .args(&probe[1..])
            .stdin(std::process::Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() => Ok(bwrap),
            Ok(out) => Err(format!(
                "the sandbox does not work here: {} {}: {}; {fix}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the sandbox is not available: {} was not found; {fix}",
                program.display()
            )),
            Err(e) => Err(format!(
                "the sandbox is not available: cannot run {}: {e}; {fix}",
                program.display()
            )),
        }
    }

    /// bwrap's command line for `command` run in `cwd`.
    fn argv(&self, c: &Confinement, cwd: &Path, command: &[String]) -> Vec<String> {
        let mut a: Vec<String> = vec![self.program.to_string_lossy().into_owned()];
        let mut push = |args: &[&OsStr]| {
            a.extend(args.iter().map(|s| s.to_string_lossy().into_owned()));
        };
        let os = |s: &'static str| OsStr::new(s);
        push(&[os("--unshare-all")]);
        if c.network {
            push(&[os("--share-net")]);
        }
        push(&[
            os("--die-with-parent"),
            // Root inside the sandbox (as when the server runs as root) keeps no capability,
            // so file permissions hold for it too.
            os("--cap-drop"),
            os("ALL"),
            os("--ro-bind"),
            os("/"),
            os("/"),
            os("--dev"),
            os("/dev"),
            os("--proc"),
            os("/proc"),
            os("--tmpfs"),
            os("/tmp"),
        ]);
        if Path::new("/run").is_dir() {
            // Sockets of the host's services (and systemd's credentials) live there.
            push(&[os("--tmpfs"), os("/run")]);
            if c.network {
                // /etc/resolv.conf often points here.
                push(&[
                    os("--ro-bind-try"),
                    os("/run/systemd/resolve"),
                    os("/run/systemd/resolve"),
                ]);
            }
        }
        for path in &self.hidden {
            match std::fs::symlink_metadata(path) {
                // Empty and read-only (the writable directories inside are bound on top).
                Ok(m) if m.is_dir() => {
                    push(&[os("--perms"), os("0555"), os("--tmpfs"), path.as_os_str()])
                }
                Ok(_) => push(&[os("--ro-bind"), os("/dev/null"), path.as_os_str()]),
                Err(_) => {}
            }
        }
        for dir in &c.writable {
            push(&[os("--bind"), dir.as_os_str(), dir.as_os_str()]);
        }
        push(&[os("--chdir"), cwd.as_os_str(), os("--")]);
        a.extend(command.iter().cloned());
        a
    }
}

impl Executor for Bwrap {
    fn confine(&self, spec: Spec, confinement: &Confinement) -> Result<Spec, SandboxError> {
        let argv = self.argv(confinement, &spec.cwd, &spec.argv);
        let mut env = vec![("HOME".to_owned(), SANDBOX_HOME.to_owned())];
        env.extend(spec.env);
        Ok(Spec {
            argv,
            env,
            clean_env: true,
            ..spec
        })
    }

    fn name(&self) -> &'static str {
        "bwrap"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bwrap(hidden: Vec<PathBuf>) -> Bwrap {
        Bwrap {
            program: "bwrap".into(),
            hidden,
        }
    }

    fn pairs(argv: &[String]) -> Vec<(String, String)> {
        argv.windows(2)
            .map(|w| (w[0].clone(), w[1].clone()))
            .collect()
    }

    #[test]
    fn network_is_shared_only_when_allowed() {
        let c = |network| Confinement {
            writable: vec![],
            network,
        };
        let b = bwrap(vec![]);
        let off = b.argv(&c(false), Path::new("/"), &["true".into()]);
        let on = b.argv(&c(true), Path::new("/"), &["true".into()]);
        assert!(off.contains(&"--unshare-all".into()));
        assert!(!off.contains(&"--share-net".into()));
        assert!(on.contains(&"--share-net".into()));
        assert!(off.contains(&"--die-with-parent".into()));
    }

    #[test]
    fn hidden_paths_come_before_writable_ones_and_the_command_after_dashdash() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let secret = dir.path().join("secret");
        let repo = root.join("queues/q/repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(&secret, "s").unwrap();
        let b = bwrap(vec![
            root.clone(),
            secret.clone(),
            dir.path().join("missing"),
        ]);
        let c = Confinement {
            writable: vec![repo.clone()],
            network: false,
        };
        let argv = b.argv(&c, &repo, &["--not-an-option".into(), "x".into()]);
        let p = pairs(&argv);
        let s = |p: &Path| p.display().to_string();
        let hide = p
            .iter()
            .position(|x| *x == ("--tmpfs".into(), s(&root)))
            .expect("root hidden");
        let bind = p
            .iter()
            .position(|x| *x == ("--bind".into(), s(&repo)))
            .expect("repo bound");
        assert!(hide < bind, "{argv:?}");
        assert!(p.contains(&("/dev/null".into(), s(&secret))), "{argv:?}");
        assert!(!argv.iter().any(|a| a.contains("missing")), "{argv:?}");
        let dd = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(argv[dd + 1..], ["--not-an-option", "x"]);
    }

    #[test]
    fn confined_specs_start_from_a_clean_environment_with_a_private_home() {
        let spec = Spec::new(vec!["make".into()], "/src").env("TESTARENA_QUEUE_ID", "q");
        let c = Confinement {
            writable: vec!["/src".into()],
            network: true,
        };
        let out = bwrap(vec![]).confine(spec.clone(), &c).unwrap();
        assert!(out.clean_env);
        assert_eq!(out.env[0], ("HOME".into(), SANDBOX_HOME.into()));
        assert!(out.env.contains(&("TESTARENA_QUEUE_ID".into(), "q".into())));
        assert_eq!(out.argv[0], "bwrap");
        assert!(Unconfined.confine(spec.clone(), &c).unwrap().clean_env);
        let refused = Unavailable {
            reason: "no bwrap".into(),
        };
        assert_eq!(
            refused.confine(spec, &c).unwrap_err(),
            SandboxError("no bwrap".into())
        );
    }

    #[test]
    fn a_missing_program_says_what_to_install() {
        let err = Bwrap::detect(Path::new("/nonexistent/bwrap"), vec![]).unwrap_err();
        assert!(err.contains("apt-get install bubblewrap"), "{err}");
        assert!(err.contains("mode = \"none\""), "{err}");
    }
}

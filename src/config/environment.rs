//! An environment: a board profile (how to build, how to boot, what marks "booted"), from its
//! raw layer to the validated `Environment`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::values::{ConsoleKind, Dur};
use super::{ConfigError, invalid, nonzero};

/// An environment's `build_timeout` when it has none.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// An environment's `boot_timeout` when it has none.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub build: Vec<String>,
    pub simulate: Vec<String>,
    pub ready: String,
    pub build_timeout: Duration,
    pub boot_timeout: Duration,
    pub max_parallel: Option<usize>,
    /// Tasks of one queue that run at once, each on its own board.
    pub boards: usize,
    pub console: ConsoleKind,
    /// Whether the build step may reach the network (simulate and `<run>` never may).
    pub build_network: bool,
    /// Variables every command of this environment gets, on top of the allow-list.
    pub env: BTreeMap<String, String>,
    /// Where its builds and boards run: on this host, or as Slurm job steps.
    pub executor: ExecutorKind,
}

/// Where an environment's builds and boards run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// On the server's host, as its children.
    #[default]
    Local,
    /// As steps of one Slurm allocation per queue.
    Slurm(SlurmEnv),
}

/// `executor = "slurm"` and what the allocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmEnv {
    pub partition: String,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// More `srun` options for every step, e.g. `["--cpus-per-task=2"]`.
    pub srun_args: Vec<String>,
    /// The cluster's `slurm.conf` (`SLURM_CONF` of the Slurm commands); `None`: the server's
    /// `SLURM_CONF`, else Slurm's default.
    pub conf: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnvLayer {
    pub build: Option<Vec<String>>,
    pub simulate: Option<Vec<String>>,
    pub ready: Option<String>,
    pub build_timeout: Option<Dur>,
    pub boot_timeout: Option<Dur>,
    pub max_parallel: Option<usize>,
    pub boards: Option<usize>,
    pub console: Option<String>,
    pub build_network: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    pub executor: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub srun_args: Option<Vec<String>>,
    pub slurm_conf: Option<std::path::PathBuf>,
}

impl EnvLayer {
    /// The environment `name` this layer describes, validated; errors name `origin` and the key.
    pub(super) fn finish(self, origin: &str, name: &str) -> Result<Environment, ConfigError> {
        let e = self;
        let key = |k: &str| format!("environments.{name}.{k}");
        if crate::model::validate_id(name).is_err() {
            return Err(invalid(
                origin,
                format!(
                    "environments.{name}: an environment name may contain only letters, digits, '.', '_' and '-'"
                ),
            ));
        }
        let argv = |k: &str, v: Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
            match v {
                Some(v) if !v.is_empty() && !v[0].is_empty() => Ok(v),
                _ => Err(invalid(
                    origin,
                    format!(
                        "{}: must be a non-empty array of strings, e.g. [\"make\"]",
                        key(k)
                    ),
                )),
            }
        };
        let executor = executor(origin, name, &e)?;
        let ready = e.ready.unwrap_or_default();
        if ready.is_empty() {
            return Err(invalid(
                origin,
                format!("{}: must be a non-empty string", key("ready")),
            ));
        }
        if e.max_parallel == Some(0) {
            return Err(invalid(
                origin,
                format!(
                    "{}: must be at least 1 (leave it out for no limit)",
                    key("max_parallel")
                ),
            ));
        }
        let boards = e.boards.unwrap_or(1);
        if boards == 0 {
            return Err(invalid(
                origin,
                format!(
                    "{}: must be at least 1 (the tasks of a queue that run at once)",
                    key("boards")
                ),
            ));
        }
        if let Some(ConsoleKind::Tcp(addr)) = e.console.as_deref().and_then(|c| c.parse().ok())
            && boards > 1
        {
            return Err(invalid(
                origin,
                format!(
                    "{}: a TCP console ({addr}) is one address for every board of this environment: set boards = 1",
                    key("console")
                ),
            ));
        }
        if let Some(ConsoleKind::Tcp(addr)) = e.console.as_deref().and_then(|c| c.parse().ok())
            && e.max_parallel != Some(1)
        {
            return Err(invalid(
                origin,
                format!(
                    "{}: a TCP console ({addr}) is one address for every board of this environment: set max_parallel = 1",
                    key("console")
                ),
            ));
        }
        Ok(Environment {
            name: name.to_owned(),
            build: argv("build", e.build)?,
            simulate: argv("simulate", e.simulate)?,
            ready,
            build_timeout: nonzero(
                origin,
                &key("build_timeout"),
                e.build_timeout.or(Some(Dur(DEFAULT_BUILD_TIMEOUT))),
            )?,
            boot_timeout: nonzero(
                origin,
                &key("boot_timeout"),
                e.boot_timeout.or(Some(Dur(DEFAULT_BOOT_TIMEOUT))),
            )?,
            max_parallel: e.max_parallel,
            boards,
            console: e
                .console
                .as_deref()
                .unwrap_or("stdio")
                .parse()
                .map_err(|m: String| invalid(origin, format!("{}: {m}", key("console"))))?,
            build_network: e.build_network.unwrap_or(true),
            env: child_env(origin, &key("env"), e.env.unwrap_or_default())?,
            executor,
        })
    }
}

/// Options the Slurm executor sets itself: an environment may not give them in `srun_args`.
const SLURM_OWN: [&str; 7] = [
    "--jobid",
    "--job-name",
    "-J",
    "--time",
    "-t",
    "--partition",
    "-p",
];

/// The environment's `executor` and the keys that go with it.
fn executor(origin: &str, name: &str, e: &EnvLayer) -> Result<ExecutorKind, ConfigError> {
    let key = |k: &str| format!("environments.{name}.{k}");
    let slurm_keys = [
        ("partition", e.partition.is_some()),
        ("account", e.account.is_some()),
        ("qos", e.qos.is_some()),
        ("srun_args", e.srun_args.is_some()),
        ("slurm_conf", e.slurm_conf.is_some()),
    ];
    match e.executor.as_deref().unwrap_or("local") {
        "local" => match slurm_keys.iter().find(|(_, set)| *set) {
            Some((k, _)) => Err(invalid(
                origin,
                format!(
                    "{}: applies only with executor = \"slurm\" (this environment runs on the server's host)",
                    key(k)
                ),
            )),
            None => Ok(ExecutorKind::Local),
        },
        "slurm" => {
            let word = |k: &str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
                match v {
                    Some(v)
                        if v.is_empty()
                            || v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                    {
                        Err(invalid(
                            origin,
                            format!("{}: must be one word, e.g. \"debug\"", key(k)),
                        ))
                    }
                    v => Ok(v.clone()),
                }
            };
            let partition = word("partition", &e.partition)?.ok_or_else(|| {
                invalid(
                    origin,
                    format!(
                        "{}: executor = \"slurm\" needs the partition its boards run in, e.g. partition = \"debug\"",
                        key("partition")
                    ),
                )
            })?;
            let srun_args = e.srun_args.clone().unwrap_or_default();
            for arg in &srun_args {
                let option = arg.split('=').next().unwrap_or_default();
                if SLURM_OWN.contains(&option) {
                    return Err(invalid(
                        origin,
                        format!(
                            "{}: {arg:?} is set by the Slurm executor itself (job id, name, time limit, partition): leave it out",
                            key("srun_args")
                        ),
                    ));
                }
                if arg.contains('\0') {
                    return Err(invalid(
                        origin,
                        format!(
                            "{}: an argument must not contain a NUL character",
                            key("srun_args")
                        ),
                    ));
                }
            }
            Ok(ExecutorKind::Slurm(SlurmEnv {
                partition,
                account: word("account", &e.account)?,
                qos: word("qos", &e.qos)?,
                srun_args,
                conf: e.slurm_conf.clone(),
            }))
        }
        other => Err(invalid(
            origin,
            format!(
                "{}: {other:?} is not an executor: use \"local\" (the default) or \"slurm\"",
                key("executor")
            ),
        )),
    }
}

/// An environment's `env` table: names a child process can be given.
fn child_env(
    origin: &str,
    key: &str,
    env: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for (name, value) in &env {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                origin,
                format!(
                    "{key}: {name:?}: a variable name is letters, digits and '_', not starting with a digit"
                ),
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                origin,
                format!("{key}.{name}: a value must not contain a NUL character"),
            ));
        }
    }
    Ok(env)
}

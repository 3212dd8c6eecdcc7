//! Typed configuration: built-in defaults (`config.toml.example`, embedded), an optional TOML file
//! laid over them, then `TESTARENA_*` environment variables, then command-line flags.
//!
//! Every file is parsed into a raw layer whose fields are all optional and which rejects unknown
//! keys; errors name the file and the key. Layers are applied in order, then the result is validated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Lays the set fields of a layer over the accumulated ones (defined before the submodules,
/// which use it too).
macro_rules! take {
    ($dst:expr, $src:expr, $($field:ident),*) => {
        $( if $src.$field.is_some() { $dst.$field = $src.$field; } )*
    };
}

mod auth;
mod env;
mod environment;
mod gitea;
mod live;
mod repos;
mod retention;
mod values;

pub use auth::{AuthConfig, HostPattern};
pub use env::{CONFIG_VARIABLES, OTHER_VARIABLES};
use environment::EnvLayer;
pub use environment::{
    DEFAULT_BOOT_TIMEOUT, DEFAULT_BUILD_TIMEOUT, Environment, ExecutorKind, SlurmEnv,
};
pub use gitea::{GiteaConfig, Secret, StatusConfig};
pub use live::LiveConfig;
pub use repos::AllowedRepos;
pub use retention::{Checkouts, RetentionConfig};
pub use values::{ConsoleKind, parse_size};
use values::{Dur, Size};

/// The built-in defaults, byte for byte the shipped example file.
pub const DEFAULTS: &str = include_str!("../../config.toml.example");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

fn invalid(origin: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        message: message.into(),
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub api: ApiConfig,
    pub auth: AuthConfig,
    pub worker: WorkerConfig,
    pub environments: BTreeMap<String, Environment>,
    pub gitea: GiteaConfig,
    pub sandbox: SandboxConfig,
    pub retention: RetentionConfig,
    /// Files the configuration or its secrets were read from: hidden from sandboxed commands.
    pub private_files: Vec<PathBuf>,
    /// `serve --echo-logs`: queue log lines also go to the server's stdout (flag only).
    pub echo_logs: bool,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub max_body: usize,
    /// The `Host` names requests may carry; empty: any (see [`ApiConfig::host_allowed`]).
    pub hosts: Vec<HostPattern>,
    /// The server's own address as users reach it, e.g. `https://ci.example.org/`.
    pub public_url: Option<reqwest::Url>,
    /// Open SSE streams (`/api/events` and log streams together) at most; more get 503.
    pub max_sse_clients: usize,
    /// Open log streams of one queue at most; more get 503.
    pub max_sse_per_queue: usize,
    /// A streaming response (SSE, `?tail=`) whose client has not taken the next chunk for this
    /// long is closed; an SSE client resumes from its last event id.
    pub sse_send_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub slots: usize,
    /// Boards (simulators) running at once across every queue; `None` = no limit beyond
    /// `slots` × each environment's `boards`.
    pub max_boards: Option<usize>,
    pub queue_timeout: Duration,
    pub checkout_timeout: Duration,
    pub kill_grace: Duration,
    /// `None` when off.
    pub silence_timeout: Option<Duration>,
    pub max_attempts: u32,
    pub max_line: usize,
    /// Below this much free space on the data root, queues wait instead of starting.
    pub min_free_space: u64,
    /// Where repositories may come from (queues, webhooks, submodules).
    pub allowed_repos: AllowedRepos,
}

/// How repository code (build, simulate, `<run>` steps) is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Inside bubblewrap: read-only system, only the checkout writable, no network but for builds.
    Bwrap,
    /// Unconfined, as the server's user (still with a clean environment).
    None,
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// The bubblewrap program, looked up in `PATH` when it has no `/` (not a file key).
    pub program: PathBuf,
}

// ---- raw layers -------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    listen: Option<String>,
    root: Option<PathBuf>,
    api: Option<ApiLayer>,
    auth: Option<auth::AuthLayer>,
    worker: Option<WorkerLayer>,
    #[serde(default)]
    environments: BTreeMap<String, EnvLayer>,
    gitea: Option<gitea::GiteaLayer>,
    sandbox: Option<SandboxLayer>,
    retention: Option<retention::RetentionLayer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxLayer {
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiLayer {
    max_body: Option<Size>,
    hosts: Option<Vec<String>>,
    public_url: Option<String>,
    max_sse_clients: Option<usize>,
    max_sse_per_queue: Option<usize>,
    sse_send_timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerLayer {
    slots: Option<usize>,
    max_boards: Option<usize>,
    queue_timeout: Option<Dur>,
    checkout_timeout: Option<Dur>,
    kill_grace: Option<Dur>,
    silence_timeout: Option<Dur>,
    max_attempts: Option<u32>,
    max_line: Option<Size>,
    min_free_space: Option<Size>,
    allowed_repos: Option<Vec<String>>,
}

fn parse_layer(origin: &str, text: &str) -> Result<Layer, ConfigError> {
    toml::from_str(text).map_err(|e| invalid(origin, e.to_string().trim_end().to_owned()))
}

// ---- assembling -------------------------------------------------------------------------------

/// What the command line says; `None` leaves the layers below in force.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub listen: Option<String>,
    pub echo_logs: bool,
}

impl Config {
    /// The built-in defaults alone.
    pub fn defaults() -> Config {
        Builder::default()
            .apply(parse_layer("built-in defaults", DEFAULTS).expect("embedded defaults parse"))
            .finish("built-in defaults")
            .expect("embedded defaults are valid")
    }

    /// Defaults, then the file (if any), then `TESTARENA_*` variables from `env`, then flags.
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut b = Builder::default().apply(parse_layer("built-in defaults", DEFAULTS)?);
        let mut origin = "built-in defaults".to_owned();
        if let Some(path) = &overrides.config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            origin = path.display().to_string();
            b = b.apply(parse_layer(&origin, &text)?);
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        if let Some((_, dir)) = env.iter().find(|(k, _)| k == "CREDENTIALS_DIRECTORY") {
            b = b.apply_credentials(Path::new(dir))?;
        }
        b = b.apply_env(env.iter().cloned())?;
        if let Some(root) = &overrides.root {
            b.root = Some(root.clone());
        }
        if let Some(listen) = &overrides.listen {
            b.listen = Some(listen.clone());
        }
        let mut config = b.finish(&origin)?;
        // Resolved once, against the directory the server starts in: git and the repository's
        // commands run elsewhere (a relative root made every checkout fail).
        config.root = std::path::absolute(&config.root).map_err(|e| {
            invalid(
                &origin,
                format!("root: cannot resolve {}: {e}", config.root.display()),
            )
        })?;
        config.echo_logs = overrides.echo_logs;
        config
            .private_files
            .extend(overrides.config_file.iter().cloned());
        config.private_files.extend(
            env.iter()
                .filter(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "CREDENTIALS_DIRECTORY"
                            | "TESTARENA_GITEA_SECRET_FILE"
                            | "TESTARENA_GITEA_TOKEN_FILE"
                    )
                })
                .map(|(_, v)| PathBuf::from(v)),
        );
        Ok(config)
    }

    /// Parses a complete configuration from TOML text laid over the defaults (tests, `--config`).
    pub fn from_toml(origin: &str, text: &str) -> Result<Config, ConfigError> {
        Builder::default()
            .apply(parse_layer("built-in defaults", DEFAULTS)?)
            .apply(parse_layer(origin, text)?)
            .finish(origin)
    }

    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }

    pub fn environment_names(&self) -> Vec<&str> {
        self.environments.keys().map(String::as_str).collect()
    }
}

/// Accumulates layers; the last layer that sets a key wins.
#[derive(Default)]
struct Builder {
    listen: Option<String>,
    root: Option<PathBuf>,
    api: ApiLayer,
    auth: auth::AuthLayer,
    worker: WorkerLayer,
    environments: BTreeMap<String, EnvLayer>,
    gitea: gitea::GiteaLayer,
    sandbox: SandboxLayer,
    retention: retention::RetentionLayer,
}

impl Builder {
    fn apply(mut self, layer: Layer) -> Builder {
        take!(self, layer, listen, root);
        if let Some(api) = layer.api {
            take!(
                self.api,
                api,
                max_body,
                hosts,
                public_url,
                max_sse_clients,
                max_sse_per_queue,
                sse_send_timeout
            );
        }
        if let Some(a) = layer.auth {
            self.auth.apply(a);
        }
        if let Some(w) = layer.worker {
            take!(
                self.worker,
                w,
                slots,
                max_boards,
                queue_timeout,
                checkout_timeout,
                kill_grace,
                silence_timeout,
                max_attempts,
                max_line,
                min_free_space,
                allowed_repos
            );
        }
        if let Some(g) = layer.gitea {
            self.gitea.apply(g);
        }
        if let Some(sb) = layer.sandbox {
            take!(self.sandbox, sb, mode);
        }
        if let Some(r) = layer.retention {
            self.retention.apply(r);
        }
        for (name, env) in layer.environments {
            let slot = self.environments.entry(name).or_default();
            take!(
                slot,
                env,
                build,
                simulate,
                ready,
                build_timeout,
                boot_timeout,
                max_parallel,
                boards,
                console,
                build_network,
                env,
                executor,
                partition,
                account,
                qos,
                srun_args,
                slurm_conf
            );
        }
        self
    }

    /// systemd's `LoadCredential=gitea-secret:…` and `gitea-token:…`: secrets as files in
    /// `$CREDENTIALS_DIRECTORY`, below the `TESTARENA_*` variables.
    fn apply_credentials(mut self, dir: &Path) -> Result<Builder, ConfigError> {
        for (name, slot) in [
            ("gitea-secret", &mut self.gitea.secret),
            ("gitea-token", &mut self.gitea.token),
        ] {
            let path = dir.join(name);
            if path.is_file() {
                let origin = format!("credential {}", path.display());
                *slot = Some(secret_file(&origin, &path.to_string_lossy())?);
            }
        }
        Ok(self)
    }

    fn finish(self, origin: &str) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_default();
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                origin,
                format!("listen: invalid address {listen_text:?}: use HOST:PORT such as \"127.0.0.1:8080\""),
            )
        })?;
        let root = self.root.unwrap_or_default();
        if root.as_os_str().is_empty() {
            return Err(invalid(origin, "root: must not be empty"));
        }
        let max_body = self.api.max_body.map_or(0, |s| s.0);
        if max_body == 0 {
            return Err(invalid(origin, "api.max_body: must be at least 1 byte"));
        }
        let api = ApiConfig {
            max_body,
            hosts: auth::parse_hosts(origin, self.api.hosts.unwrap_or_default())?,
            public_url: auth::parse_public_url(origin, self.api.public_url)?,
            max_sse_clients: at_least_one(origin, "api.max_sse_clients", self.api.max_sse_clients)?,
            max_sse_per_queue: at_least_one(
                origin,
                "api.max_sse_per_queue",
                self.api.max_sse_per_queue,
            )?,
            sse_send_timeout: nonzero(origin, "api.sse_send_timeout", self.api.sse_send_timeout)?,
        };
        let published = !api.hosts.is_empty() || api.public_url.is_some();
        let auth = self.auth.finish(origin, listen, published)?;
        let w = self.worker;
        let max_attempts = w.max_attempts.unwrap_or(0);
        if max_attempts == 0 {
            return Err(invalid(origin, "worker.max_attempts: must be at least 1"));
        }
        let max_line = w.max_line.map_or(0, |s| s.0);
        if max_line < 80 {
            return Err(invalid(
                origin,
                "worker.max_line: must be at least 80 bytes",
            ));
        }
        let worker = WorkerConfig {
            slots: w.slots.unwrap_or(0),
            max_boards: w.max_boards.filter(|n| *n > 0),
            queue_timeout: nonzero(origin, "worker.queue_timeout", w.queue_timeout)?,
            checkout_timeout: nonzero(origin, "worker.checkout_timeout", w.checkout_timeout)?,
            kill_grace: w.kill_grace.map_or(Duration::ZERO, |d| d.0),
            silence_timeout: w.silence_timeout.map(|d| d.0).filter(|d| !d.is_zero()),
            max_attempts,
            max_line,
            min_free_space: w.min_free_space.map_or(0, |s| s.0 as u64),
            allowed_repos: AllowedRepos::parse(&w.allowed_repos.unwrap_or_default())
                .map_err(|m| invalid(origin, format!("worker.allowed_repos: {m}")))?,
        };
        let mut environments = BTreeMap::new();
        for (name, e) in self.environments {
            let env = e.finish(origin, &name)?;
            environments.insert(name, env);
        }
        let names: Vec<&str> = environments.keys().map(String::as_str).collect();
        let gitea = self.gitea.finish(origin, &names)?;
        let sandbox = SandboxConfig {
            mode: match self.sandbox.mode.as_deref().unwrap_or("bwrap") {
                "bwrap" => SandboxMode::Bwrap,
                "none" => SandboxMode::None,
                other => {
                    return Err(invalid(
                        origin,
                        format!("sandbox.mode: unknown mode {other:?}: use \"bwrap\" or \"none\""),
                    ));
                }
            },
            program: PathBuf::from("bwrap"),
        };
        let retention = self.retention.finish(origin)?;
        Ok(Config {
            listen,
            root,
            api,
            auth,
            worker,
            environments,
            gitea,
            sandbox,
            retention,
            private_files: Vec::new(),
            echo_logs: false,
        })
    }
}

fn at_least_one(origin: &str, key: &str, n: Option<usize>) -> Result<usize, ConfigError> {
    n.filter(|n| *n >= 1)
        .ok_or_else(|| invalid(origin, format!("{key}: must be at least 1")))
}

fn nonzero(origin: &str, key: &str, d: Option<Dur>) -> Result<Duration, ConfigError> {
    match d {
        Some(Dur(d)) if !d.is_zero() => Ok(d),
        _ => Err(invalid(
            origin,
            format!("{key}: must be a duration above zero, e.g. \"60s\""),
        )),
    }
}

/// Reads a secret from a file (`TESTARENA_GITEA_SECRET_FILE`, systemd's `LoadCredential=`);
/// one trailing newline is not part of it.
fn secret_file(origin: &str, path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(origin, format!("cannot read {path}: {e}")))?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_owned())
}

#[cfg(test)]
mod tests;

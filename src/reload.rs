//! Reloading the configuration while serving. The server watches its `--config` file (the
//! directory it is in, so an editor that saves by renaming a new file over it is seen too) and
//! listens for `SIGHUP`; either loads the configuration again from the same layers it started
//! with. A valid one replaces the live configuration whole: new requests and new runs use it,
//! running queues keep theirs. An invalid one is logged with the file and key, and the previous
//! configuration stays. What only a restart can change (`listen`, `root`, the sandbox, the
//! files it hides) is kept as it was, and the log says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, LiveConfig, Overrides};

/// Where the configuration comes from: the command line and the environment the server
/// started with (the file is read again at each load).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub overrides: Overrides,
    pub env: Vec<(String, String)>,
}

impl Source {
    /// The command line's overrides and this process's environment.
    pub fn from_process(overrides: Overrides) -> Source {
        Source {
            overrides,
            env: std::env::vars().collect(),
        }
    }

    /// Loads the configuration from these layers.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.overrides, self.env.iter().cloned())
    }

    /// The configuration file, if there is one.
    pub fn file(&self) -> Option<&Path> {
        self.overrides.config_file.as_deref()
    }
}

/// The settings a reload cannot change, by name, that differ between `old` and `new`.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("listen");
    }
    if old.root != new.root {
        keys.push("root");
    }
    if old.sandbox.mode != new.sandbox.mode || old.sandbox.program != new.sandbox.program {
        keys.push("[sandbox]");
    }
    keys
}

/// `new` with what only a restart changes taken from `old`; the names of what differed.
pub fn merge(old: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let kept = needs_restart(old, &new);
    new.listen = old.listen;
    new.root.clone_from(&old.root);
    new.sandbox = old.sandbox.clone();
    new.private_files.clone_from(&old.private_files);
    new.echo_logs = old.echo_logs;
    (new, kept)
}

/// Loads the configuration again and makes it live if it is valid; logs what happened.
/// Returns whether it was applied.
pub async fn reload(source: &Source, live: &LiveConfig, why: &str) -> bool {
    let loaded = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.load()).await
    };
    let new = match loaded {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => {
            tracing::error!(error = %e, why, "configuration not reloaded: fix the error; the previous configuration stays in force");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, why, "configuration not reloaded");
            return false;
        }
    };
    let (new, kept) = merge(&live.get(), new);
    for key in kept {
        tracing::warn!(
            key,
            "this setting changed in the configuration but takes effect only after a restart"
        );
    }
    live.set(new);
    tracing::info!(why, "configuration reloaded");
    true
}

/// The file watcher and the `SIGHUP` handler, installed before the server says it is ready (a
/// `SIGHUP` before that would end the process; an edit would be missed); [`Reloader::run`]
/// then reloads on each, including those that came in between.
pub struct Reloader {
    source: Source,
    rx: mpsc::Receiver<&'static str>,
    _watcher: Option<notify::RecommendedWatcher>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Reloader {
    /// Starts watching the file and catching `SIGHUP`. Needs the tokio runtime.
    pub fn install(source: Source) -> Reloader {
        // Capacity 1: while a reload is pending, more events add nothing.
        let (tx, rx) = mpsc::channel::<&'static str>(1);
        let watcher = source.file().and_then(|file| file_watcher(file, tx));
        let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the file is still watched");
                None
            }
        };
        Reloader {
            source,
            rx,
            _watcher: watcher,
            hup,
        }
    }

    /// Reloads on every change of the configuration file and on `SIGHUP`, until `shutdown`.
    pub async fn run(mut self, live: LiveConfig, shutdown: CancellationToken) {
        let source = Arc::new(self.source.clone());
        loop {
            let hup = async {
                match self.hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                () = shutdown.cancelled() => return,
                Some(why) = self.rx.recv() => why,
                Some(()) = hup => "SIGHUP",
            };
            reload(&source, &live, why).await;
        }
    }
}

/// A watcher of the directory of `file` that sends when `file` itself changes. `None` (logged)
/// when the platform cannot watch it; `SIGHUP` still works then.
fn file_watcher(file: &Path, tx: mpsc::Sender<&'static str>) -> Option<notify::RecommendedWatcher> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let name = file.file_name()?.to_owned();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let relevant = !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str()));
        if relevant {
            // Full: a reload is already pending and will read the file as it is then.
            let _ = tx.try_send("the configuration file changed");
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration file; reload it with SIGHUP");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the configuration file's directory; reload it with SIGHUP");
        return None;
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_only_a_restart_changes_is_kept_and_named() {
        let old = Config::defaults();
        let mut new = Config::from_toml(
            "new.toml",
            "listen = \"127.0.0.1:9999\"\nroot = \"/elsewhere\"\n[worker]\nslots = 3\n",
        )
        .unwrap();
        new.sandbox.mode = crate::config::SandboxMode::None;
        let (merged, kept) = merge(&old, new);
        assert_eq!(kept, ["listen", "root", "[sandbox]"]);
        assert_eq!(merged.listen, old.listen);
        assert_eq!(merged.root, old.root);
        assert_eq!(merged.sandbox.mode, old.sandbox.mode);
        // What a reload may change, it does.
        assert_eq!(merged.worker.slots, 3);
    }

    #[test]
    fn an_unchanged_configuration_needs_no_restart() {
        let old = Config::defaults();
        let (_, kept) = merge(&old, Config::defaults());
        assert!(kept.is_empty());
    }
}

//! TestArena: runs firmware test queues (checkout, build, boot in QEMU, XML scenarios) and
//! streams every line live.
//!
//! - `cli`      the command line: its arguments, the client commands' output and exit codes
//! - `client`   the HTTP client of a running server (enqueue, status, logs -f, …)
//! - `auth`     tokens, scopes, anonymous access, the access decision and sign-in sessions
//! - `config`   typed configuration: built-in defaults, TOML file, `TESTARENA_*` overrides
//! - `layout`   every path under the data root
//! - `model`    queues, tasks, test results, statuses and the state machine (pure)
//! - `store`    the redb store: tables, codec, store actor, change feed
//! - `exec`     subprocess supervision: process groups, line reading, timeouts, kill tree
//! - `hooks`    webhook deliveries (Gitea push and pull_request) into queue requests (pure)
//! - `worker`   event-driven scheduler and the per-queue pipeline
//! - `scenario` XML scenario model, parser and runner
//! - `logs`     the log hub: append to `queue.log`, broadcast, replay from an offset
//! - `metrics`  Prometheus counters, histograms and gauges for `GET /metrics`
//! - `report`   per-test HTML logs, task and queue reports, JUnit XML, summary JSON
//! - `api`      axum router: REST, SSE, dashboard pages, errors
//! - `statuses` Gitea commit statuses, posted as queues change
//! - `wire`     the API's records, shared by the server, the pages and the client
//! - `server`   wiring: open the store, start the worker, serve until shutdown

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod exec;
pub mod hooks;
pub mod layout;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod reload;
pub mod report;
pub mod scenario;
pub mod serve;
pub mod server;
pub mod state;
pub mod statuses;
pub mod store;
pub mod wire;
pub mod worker;

/// An HTTP client builder with TLS ready: rustls with the ring provider, installed once per
/// process (the client of the CLI commands and the Gitea status notifier both use it).
pub fn http_client() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which then serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

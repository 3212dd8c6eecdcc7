//! The `testarena` command: parse the CLI, load the config, set up tracing, bind, run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use testarena::config::{Config, Overrides};

/// TestArena: runs firmware test queues (checkout, build, boot in QEMU, XML scenarios) and
/// streams every line live to a dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (dashboard, REST API, worker). Without --config it runs on the built-in
    /// defaults, which are those of config.toml.example.
    Serve {
        /// A TOML file laid over the built-in defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The data root (store, checkouts, logs, reports) [default: /testarena]; also TESTARENA_ROOT.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// The address to listen on [default: 127.0.0.1:8080]; also TESTARENA_LISTEN.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Validate scenario files: prints file:line:column: message for each error and exits 1,
    /// or a one-line summary per file and exits 0.
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => {
            let (text, ok) = testarena::scenario::check_files(&files);
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Serve {
            config,
            root,
            listen,
        } => {
            init_tracing();
            let overrides = Overrides {
                config_file: config,
                root,
                listen,
            };
            match serve(overrides) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("testarena: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load(&overrides, std::env::vars())?;
    // Orphaned grandchildren of a run are reparented here, so their process group can be reaped.
    if let Err(e) = testarena::exec::become_subreaper() {
        tracing::warn!(error = %e, "cannot become the child subreaper");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: choose another address with --listen or TESTARENA_LISTEN",
                    config.listen
                )
            })?;
        testarena::server::run(config, listener, shutdown_signal()).await
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

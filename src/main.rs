//! The `testarena` command: parse the CLI, load the config, set up tracing, bind, run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use testarena::auth::Scope;
use testarena::client::Client;
use testarena::config::Overrides;

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
        /// Also print every queue log line to stdout, prefixed with the queue id.
        #[arg(long)]
        echo_logs: bool,
        /// The server log on stderr: `text` for people, `json` for one JSON object per line;
        /// also TESTARENA_LOG_FORMAT. RUST_LOG filters it (default: info).
        #[arg(
            long,
            value_enum,
            value_name = "FORMAT",
            env = "TESTARENA_LOG_FORMAT",
            default_value_t = LogFormat::Text
        )]
        log_format: LogFormat,
    },
    /// Enqueue a queue on a running server and print it (or follow its log with --follow).
    Enqueue {
        #[command(flatten)]
        server: ServerArg,
        /// Git URL or local path of the repository.
        #[arg(long)]
        repo: String,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        commit: Option<String>,
        /// Environment (board profile) name, e.g. esp32.
        #[arg(long = "env", value_name = "ENVIRONMENT")]
        environment: String,
        /// Scenario file in the repository; repeat for several (default: scenarios/*.xml).
        #[arg(long = "scenario", value_name = "PATH")]
        scenarios: Vec<String>,
        #[arg(long)]
        priority: Option<i32>,
        /// Queue id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Follow the live log until the queue ends; exit 0 only if it passed.
        #[arg(long, short)]
        follow: bool,
    },
    /// Show one queue, or list queues (newest first).
    Status {
        #[command(flatten)]
        server: ServerArg,
        id: Option<String>,
        /// Only queues in this status (with no id).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Print a queue's log; with -f follow it live until the queue ends.
    Logs {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Abort a waiting or running queue.
    Abort {
        #[command(flatten)]
        server: ServerArg,
        id: String,
    },
    /// Re-run a finished queue at the commit it ran, as a new queue; print it (or follow its log).
    Rerun {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Only the tasks that did not pass.
        #[arg(long)]
        failed: bool,
        /// Follow the new queue's live log until it ends; exit 0 only if it passed.
        #[arg(long, short)]
        follow: bool,
    },
    /// Delete a queue (aborting it first) and its files.
    Delete {
        #[command(flatten)]
        server: ServerArg,
        id: String,
    },
    /// Save a queue's log and reports (never its checkout) as a .tar.gz.
    Download {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Where to save it [default: ID.tar.gz in the current directory].
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Validate scenario files: prints file:line:column: message for each error and exits 1,
    /// or a one-line summary per file and exits 0.
    Check {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// How the server writes its log.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new random token: prints it, once, and the line to paste under [auth] tokens.
    New {
        /// The token's name (1 to 64 letters, digits, '-', '_' and '.'), e.g. ci.
        #[arg(value_parser = token_name)]
        name: String,
        /// What it may do: read, write or admin.
        #[arg(long, default_value = "write")]
        scope: Scope,
    },
}

fn token_name(name: &str) -> Result<String, String> {
    testarena::auth::check_token_name(name).map(|()| name.to_owned())
}

#[derive(clap::Args)]
struct ServerArg {
    /// The server to talk to.
    #[arg(
        long,
        env = "TESTARENA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// A file holding the API token (else the TESTARENA_TOKEN variable, if set).
    #[arg(long, env = "TESTARENA_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
}

impl ServerArg {
    /// A client of the server, with the token from --token-file or TESTARENA_TOKEN.
    fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("TESTARENA_TOKEN")
                .ok()
                .map(|t| t.trim().to_owned()),
        }
        .filter(|t| !t.is_empty());
        Client::new(&self.server, token.as_deref())
    }
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
            echo_logs,
            log_format,
        } => {
            init_tracing(log_format);
            let overrides = Overrides {
                config_file: config,
                root,
                listen,
                echo_logs,
            };
            report(serve(overrides).map(|()| ExitCode::SUCCESS))
        }
        Command::Token {
            command: TokenCommand::New { name, scope },
        } => report(new_token(&name, scope)),
        client => report(run_client(client)),
    }
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        // The reader of our output went away (`| head`): nothing to complain about.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("testarena: {e:#}");
        ExitCode::FAILURE
    })
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The client commands: one request (or one followed stream) against a running server.
fn run_client(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let passed = |status: Option<String>| {
            if status.as_deref() == Some("passed") {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "testarena: queue ended {}",
                    status.as_deref().unwrap_or("unknown")
                );
                ExitCode::FAILURE
            }
        };
        match command {
            Command::Enqueue {
                server,
                repo,
                branch,
                commit,
                environment,
                scenarios,
                priority,
                id,
                follow,
            } => {
                let client = server.client()?;
                let mut body = serde_json::json!({"repo": repo, "environment": environment});
                for (key, value) in [("branch", branch), ("commit", commit), ("id", id)] {
                    if let Some(v) = value {
                        body[key] = v.into();
                    }
                }
                if !scenarios.is_empty() {
                    body["scenarios"] = scenarios.into();
                }
                if let Some(p) = priority {
                    body["priority"] = p.into();
                }
                let queue = client.enqueue(&body).await?;
                let id = queue["id"].as_str().unwrap_or_default().to_owned();
                if !follow {
                    print_json(&queue);
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("enqueued {id}; following its log");
                Ok(passed(
                    client.logs(&id, true, &mut std::io::stdout()).await?,
                ))
            }
            Command::Status {
                server,
                id,
                status,
                limit,
            } => {
                let client = server.client()?;
                match id {
                    Some(id) => print_json(&client.get(&id).await?),
                    None => print_json(&client.list(status.as_deref(), limit).await?),
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Logs { server, id, follow } => {
                let client = server.client()?;
                let end = client.logs(&id, follow, &mut std::io::stdout()).await?;
                Ok(if follow {
                    passed(end)
                } else {
                    ExitCode::SUCCESS
                })
            }
            Command::Abort { server, id } => {
                print_json(&server.client()?.abort(&id).await?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Rerun {
                server,
                id,
                failed,
                follow,
            } => {
                let client = server.client()?;
                let queue = client.rerun(&id, failed).await?;
                let new = queue["id"].as_str().unwrap_or_default().to_owned();
                if !follow {
                    print_json(&queue);
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("re-running {id} as {new}; following its log");
                Ok(passed(
                    client.logs(&new, true, &mut std::io::stdout()).await?,
                ))
            }
            Command::Delete { server, id } => {
                server.client()?.delete(&id).await?;
                eprintln!("deleted {id}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Download { server, id, output } => {
                let path = output.unwrap_or_else(|| PathBuf::from(format!("{id}.tar.gz")));
                let len = server.client()?.download(&id, &path).await?;
                eprintln!("saved {} ({len} bytes)", path.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::Serve { .. } | Command::Check { .. } | Command::Token { .. } => {
                unreachable!("handled in main")
            }
        }
    })
}

/// `token new`: the token and the TOML line on stdout, what to do with them on stderr.
fn new_token(name: &str, scope: Scope) -> anyhow::Result<ExitCode> {
    let new = testarena::auth::NewToken::generate(name, scope).map_err(anyhow::Error::msg)?;
    eprintln!("# The token, shown only this once: give it to the client (TESTARENA_TOKEN).");
    println!("{}", new.token);
    eprintln!("# Paste this line into `tokens = [ … ]` under [auth] in the server's config file:");
    println!("{}", new.entry);
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => log.init(),
        // An event's fields at the top level beside `timestamp`, `level`, `target` and
        // `message`; the request's `method` and `route` in `span`.
        LogFormat::Json => log.json().flatten_event(true).with_span_list(false).init(),
    }
}

fn serve(overrides: Overrides) -> anyhow::Result<()> {
    let source = testarena::reload::Source::from_process(overrides);
    let config = source.load()?;
    // Orphaned grandchildren of a run are reparented here, so their process group can be reaped.
    if let Err(e) = testarena::exec::become_subreaper() {
        tracing::warn!(error = %e, "cannot become the child subreaper");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Before anything can announce readiness: a SIGTERM right after it is a graceful stop.
        let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: choose another address with --listen or TESTARENA_LISTEN",
                    config.listen
                )
            })?;
        testarena::server::run(config, Some(source), listener, shutdown).await
    })
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on either signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// The store's writer thread allocates for every record it encodes; mimalloc measured faster
/// than the system allocator for that pattern (benches/enqueue).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

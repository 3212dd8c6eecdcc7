//! The `testarena` command: parse the CLI, load the config, set up tracing, bind, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use testarena::auth::Scope;
use testarena::cli::{Cli, Command, LogFormat, TokenCommand};
use testarena::config::Overrides;

/// jemalloc instead of glibc's malloc: about 12% fewer instructions per enqueue (glibc's
/// malloc and free were a fifth of them: the runtime threads allocate what the store's writer
/// frees, and back), measured with `benches/wrk.rs` under callgrind; see ARCHITECTURE.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (`malloc_conf`; `_RJEM_MALLOC_CONF` in the
/// environment still adds to them): a background thread gives memory unused for a second back
/// to the system, so a burst of clients does not leave the server holding what it took
/// (`benches/memory.rs`: 5 MiB over idle once 2,000 stream clients have gone, not 47).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&std::ffi::c_char> = Some(
    // SAFETY: a pointer to the first byte of a NUL-terminated static string, as C reads it.
    unsafe {
        &*c"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0"
            .as_ptr()
    },
);

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
            report(serve(overrides))
        }
        Command::Token {
            command: TokenCommand::New { name, scope },
        } => report(new_token(&name, scope)),
        Command::Completions { shell } => testarena::cli::completions(shell),
        Command::Client(command) => testarena::cli::run_client(command),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testarena: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `token new`: the token and the TOML line on stdout, what to do with them on stderr.
fn new_token(name: &str, scope: Scope) -> anyhow::Result<()> {
    let new = testarena::auth::NewToken::generate(name, scope).map_err(anyhow::Error::msg)?;
    eprintln!("# The token, shown only this once: give it to the client (TESTARENA_TOKEN).");
    println!("{}", new.token);
    eprintln!("# Paste this line into `tokens = [ … ]` under [auth] in the server's config file:");
    println!("{}", new.entry);
    Ok(())
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

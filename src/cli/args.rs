//! The command line, declared with clap: the server's commands and the client's.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::Scope;

/// What `--help` says about exit codes (the README says the same).
pub const EXIT_CODES: &str = "\
Exit codes of the client commands (enqueue, status, logs, abort, rerun, delete):
  0  the queue passed, or the command did what it was asked
  1  the queue failed: a test failed
  2  a usage error, or the server refused the request (4xx: unknown queue or
     environment, bad input, no or too small a token)
  3  the queue ended error, timed_out or aborted
  4  the server could not be reached, or it failed (5xx)
The queue's outcome (1 and 3) is known only when it is followed: enqueue --follow,
rerun --follow, logs --follow. `serve` exits 1 when it cannot start, `check` 1 when a
file has mistakes.";

/// TestArena: runs firmware test queues (checkout, build, boot in QEMU, XML scenarios) and
/// streams every line live to a dashboard.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the server (dashboard, REST API, worker). Without --config it runs on the built-in
    /// defaults, which are those of config.toml.example.
    Serve {
        /// A TOML file laid over the built-in defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The data root (store, checkouts, logs, reports) [default: /testarena]; also
        /// TESTARENA_ROOT. A relative path is resolved against the current directory.
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
    #[command(flatten)]
    Client(ClientCommand),
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
    /// Print a shell completion script: e.g. `testarena completions bash >
    /// /etc/bash_completion.d/testarena`.
    Completions { shell: clap_complete::Shell },
}

/// The commands that talk to a running server.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Enqueue a queue on a running server and print it (or follow its log with --follow).
    #[command(after_help = EXIT_CODES)]
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
        /// Follow the live log until the queue ends; the exit code says how it ended.
        #[arg(long, short, conflicts_with = "json")]
        follow: bool,
        /// Print the queue as the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one queue, or list queues (newest first).
    #[command(after_help = EXIT_CODES)]
    Status {
        #[command(flatten)]
        server: ServerArg,
        id: Option<String>,
        /// Only queues in this status (with no id).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a queue's log; with -f follow it live until the queue ends.
    #[command(after_help = EXIT_CODES)]
    Logs {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Follow the live log until the queue ends; the exit code says how it ended.
        #[arg(long, short)]
        follow: bool,
    },
    /// Abort a waiting or running queue.
    #[command(after_help = EXIT_CODES)]
    Abort {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Print the queue as the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a finished queue at the commit it ran, as a new queue; print it (or follow its log).
    #[command(after_help = EXIT_CODES)]
    Rerun {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Only the tasks that did not pass.
        #[arg(long)]
        failed: bool,
        /// Follow the new queue's live log until it ends; the exit code says how it ended.
        #[arg(long, short, conflicts_with = "json")]
        follow: bool,
        /// Print the new queue as the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a queue (aborting it first) and its files.
    #[command(after_help = EXIT_CODES)]
    Delete {
        #[command(flatten)]
        server: ServerArg,
        id: String,
    },
    /// Save a queue's log and reports (never its checkout) as a .tar.gz.
    #[command(after_help = EXIT_CODES)]
    Download {
        #[command(flatten)]
        server: ServerArg,
        id: String,
        /// Where to save it [default: ID.tar.gz in the current directory].
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// How the server writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum TokenCommand {
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
    crate::auth::check_token_name(name).map(|()| name.to_owned())
}

#[derive(clap::Args)]
pub struct ServerArg {
    /// The server to talk to.
    #[arg(
        long,
        env = "TESTARENA_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A file holding the API token (else the TESTARENA_TOKEN variable, if set).
    #[arg(long, env = "TESTARENA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn follow_and_json_do_not_go_together() {
        let parsed = Cli::try_parse_from([
            "testarena",
            "enqueue",
            "--repo",
            "r",
            "--env",
            "e",
            "--follow",
            "--json",
        ]);
        assert!(parsed.is_err());
    }
}

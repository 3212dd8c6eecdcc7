//! The command line's client side: the commands that talk to a running server, what they
//! print (a readable summary, or the API's JSON with `--json`) and how they exit.
//!
//! - `args`   the whole command line, declared with clap (the server's commands too)
//! - `render` the human output: a queue's summary, a table, one-line confirmations
//!
//! Exit codes (also in `--help`): 0 passed or done, 1 failed, 2 usage error or refused (4xx),
//! 3 ended `error`, `timed_out` or `aborted`, 4 unreachable or a server failure (5xx).

pub mod args;
pub mod render;

use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::model::Status;
pub use args::{Cli, ClientCommand, Command, LogFormat, ServerArg, TokenCommand};

/// How a client command ended, as its exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the queue passed, or the command did what it was asked.
    Done = 0,
    /// 1: the queue failed (a test failed).
    Failed = 1,
    /// 2: a usage error, or the server refused the request (4xx).
    Refused = 2,
    /// 3: the queue ended `error`, `timed_out` or `aborted`.
    Ended = 3,
    /// 4: the server could not be reached, or failed (5xx).
    Unreachable = 4,
}

impl Exit {
    /// A followed queue's final status.
    pub fn of_status(status: Status) -> Exit {
        match status {
            Status::Passed => Exit::Done,
            Status::Failed => Exit::Failed,
            _ => Exit::Ended,
        }
    }

    pub fn of_error(e: &ClientError) -> Exit {
        match e {
            ClientError::Refused { .. } | ClientError::Local(_) => Exit::Refused,
            ClientError::Unreachable { .. } | ClientError::Server { .. } => Exit::Unreachable,
            // The reader of our output went away (`| head`): nothing to complain about.
            ClientError::Output(io) if io.kind() == std::io::ErrorKind::BrokenPipe => Exit::Done,
            ClientError::Output(_) => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Runs one client command against its server; says what went wrong on stderr.
pub fn run_client(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("testarena: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exit = runtime.block_on(run(command)).unwrap_or_else(|e| {
        let exit = Exit::of_error(&e);
        if exit != Exit::Done {
            eprintln!("testarena: {e}");
        }
        exit
    });
    exit.into()
}

async fn run(command: ClientCommand) -> Result<Exit, ClientError> {
    match command {
        ClientCommand::Enqueue {
            server,
            repo,
            branch,
            commit,
            environment,
            scenarios,
            priority,
            id,
            follow,
            json,
        } => {
            let client = client(&server)?;
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
            let answer = client.enqueue(&body).await?;
            if !follow {
                return print(&answer, json, |q| render::done("enqueued", q));
            }
            let q: crate::wire::QueueRecord = record(&answer)?;
            eprintln!("enqueued {}; following its log", q.id);
            follow_log(&client, &q.id).await
        }
        ClientCommand::Status {
            server,
            id,
            status,
            limit,
            json,
        } => {
            let client = client(&server)?;
            match id {
                Some(id) => print(&client.get(&id).await?, json, render::queue),
                None => print(
                    &client.list(status.as_deref(), limit).await?,
                    json,
                    render::table,
                ),
            }
        }
        ClientCommand::Logs { server, id, follow } => {
            let client = client(&server)?;
            if follow {
                return follow_log(&client, &id).await;
            }
            client.logs(&id, false, &mut std::io::stdout()).await?;
            Ok(Exit::Done)
        }
        ClientCommand::Abort { server, id, json } => {
            let answer = client(&server)?.abort(&id).await?;
            print(&answer, json, |q| render::done("aborted", q))
        }
        ClientCommand::Rerun {
            server,
            id,
            failed,
            follow,
            json,
        } => {
            let client = client(&server)?;
            let answer = client.rerun(&id, failed).await?;
            let verb = format!("re-running {id} as");
            if !follow {
                return print(&answer, json, |q| render::done(&verb, q));
            }
            let q: crate::wire::QueueRecord = record(&answer)?;
            eprintln!("re-running {id} as {}; following its log", q.id);
            follow_log(&client, &q.id).await
        }
        ClientCommand::Delete { server, id } => {
            client(&server)?.delete(&id).await?;
            println!("deleted {id}");
            Ok(Exit::Done)
        }
        ClientCommand::Download { server, id, output } => {
            let path = output.unwrap_or_else(|| std::path::PathBuf::from(format!("{id}.tar.gz")));
            let len = client(&server)?.download(&id, &path).await?;
            eprintln!("saved {} ({len} bytes)", path.display());
            Ok(Exit::Done)
        }
    }
}

/// Follows the queue's log to its end; the exit code is its outcome.
async fn follow_log(client: &Client, id: &str) -> Result<Exit, ClientError> {
    let end = client.logs(id, true, &mut std::io::stdout()).await?;
    let status = end.ok_or_else(|| ClientError::Local("the log stream did not end".into()))?;
    if status != Status::Passed {
        eprintln!("testarena: queue {id} ended {status}");
    }
    Ok(Exit::of_status(status))
}

/// The answer as the API's JSON (`--json`), or rendered for a reader.
fn print<T: DeserializeOwned>(
    answer: &Value,
    json: bool,
    human: impl FnOnce(&T) -> String,
) -> Result<Exit, ClientError> {
    use std::io::Write;
    let text = if json {
        serde_json::to_string_pretty(answer).unwrap_or_default()
    } else {
        human(&record(answer)?)
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.trim_end())?;
    out.flush()?;
    Ok(Exit::Done)
}

/// One of the API's records from an answer; anything else is the server's fault.
fn record<T: DeserializeOwned>(answer: &Value) -> Result<T, ClientError> {
    T::deserialize(answer).map_err(|e| ClientError::Server {
        status: 200,
        message: format!("the answer is not the API's record: {e}"),
    })
}

/// A client of `--server`, with the token from `--token-file` or `TESTARENA_TOKEN`.
fn client(arg: &ServerArg) -> Result<Client, ClientError> {
    let token = match &arg.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    ClientError::Local(format!(
                        "cannot read the token file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("TESTARENA_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned()),
    }
    .filter(|t| !t.is_empty());
    Client::new(&arg.server, token.as_deref())
}

/// `completions SHELL`: the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write;
    let mut command = Cli::command();
    // Into memory first: `generate` panics when it cannot write (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "testarena", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("testarena: cannot write the script: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_outcome() {
        let codes: Vec<(Status, u8)> = Status::ALL
            .into_iter()
            .map(|s| (s, Exit::of_status(s) as u8))
            .collect();
        for (status, code) in codes {
            let want = match status {
                Status::Passed => 0,
                Status::Failed => 1,
                _ => 3,
            };
            assert_eq!(code, want, "{status}");
        }
        let refused = ClientError::Refused {
            status: 404,
            message: "not found".into(),
        };
        let failed = ClientError::Server {
            status: 500,
            message: "internal error".into(),
        };
        let pipe = ClientError::Output(std::io::ErrorKind::BrokenPipe.into());
        assert_eq!(Exit::of_error(&refused), Exit::Refused);
        assert_eq!(Exit::of_error(&failed), Exit::Unreachable);
        assert_eq!(
            Exit::of_error(&ClientError::Local("x".into())),
            Exit::Refused
        );
        assert_eq!(Exit::of_error(&pipe), Exit::Done);
    }
}

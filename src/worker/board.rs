//! A board: the environment's simulator as a supervised child, booted until its ready marker,
//! and the scenario runner's `Console` over its stdin/stdout or the socket the environment names. Also the runner's `Host` for
//! `<run>` steps, over supervised `sh -c` children.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::site::Site;
use crate::config::ConsoleKind;
use crate::exec::{self, Child, Ending, Limits, Line, Spec};
use crate::logs::LogWriter;
use crate::scenario::{Console, ConsoleEvent, Host, HostOutcome};

/// A running simulator whose console the runner drives.
pub struct Board {
    child: Child,
    /// Its executor's own messages (srun's) on stderr: log lines, never the console.
    relay: bool,
    /// The simulator's own output; it is the console when the console is stdio.
    output: mpsc::Receiver<Line>,
    console: ConsoleIo,
    log: LogWriter,
    exited: Option<String>,
}

enum ConsoleIo {
    Stdio(Option<ChildStdin>),
    Socket {
        writer: Option<Box<dyn AsyncWrite + Send + Unpin>>,
        lines: mpsc::Receiver<String>,
    },
}

/// Why a board did not come up.
pub enum BootError {
    Spawn(String),
    Exited(String),
    Timeout(Duration),
    Cancelled,
    Console(String),
}

/// Everything `Board::boot` needs to know.
pub struct BootSpec<'a> {
    pub spec: &'a Spec,
    pub console: &'a ConsoleKind,
    pub ready: &'a str,
    pub boot_timeout: Duration,
    pub max_line: usize,
    pub grace: Duration,
    /// Where the board runs (its executor's own messages are kept out of the console).
    pub site: &'a Site,
}

impl Board {
    /// Starts the simulator, connects to its console and waits for `ready`; every line until
    /// then goes to the log.
    pub async fn boot(
        b: BootSpec<'_>,
        log: &LogWriter,
        cancel: &CancellationToken,
    ) -> Result<Board, BootError> {
        let (mut child, output) =
            Child::spawn(b.spec, b.max_line).map_err(|e| BootError::Spawn(e.to_string()))?;
        let stdin = child.take_stdin();
        let mut board = Board {
            child,
            relay: !matches!(b.site, Site::Local),
            output,
            console: ConsoleIo::Stdio(stdin),
            log: log.clone(),
            exited: None,
        };
        let deadline = tokio::time::sleep(b.boot_timeout);
        tokio::pin!(deadline);
        if *b.console != ConsoleKind::Stdio {
            let connect = connect(b.console, &b.spec.cwd, b.max_line);
            let connected = tokio::select! {
                _ = cancel.cancelled() => Err(BootError::Cancelled),
                _ = &mut deadline => Err(BootError::Timeout(b.boot_timeout)),
                c = connect => c.map_err(BootError::Console),
            };
            match connected {
                Ok(io) => board.console = io,
                Err(e) => {
                    board.stop(b.grace).await;
                    return Err(e);
                }
            }
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    board.stop(b.grace).await;
                    return Err(BootError::Cancelled);
                }
                _ = &mut deadline => {
                    board.stop(b.grace).await;
                    return Err(BootError::Timeout(b.boot_timeout));
                }
                event = board.next_event() => match event {
                    ConsoleEvent::Line(line) => {
                        log.line(&line);
                        if line.contains(b.ready) {
                            return Ok(board);
                        }
                    }
                    ConsoleEvent::Exited(how) => return Err(BootError::Exited(how)),
                },
            }
        }
    }

    /// Closes the console (a board on stdio ends on end of input), then stops the group.
    pub async fn stop(&mut self, grace: Duration) -> exec::Exit {
        match &mut self.console {
            ConsoleIo::Stdio(stdin) => *stdin = None,
            ConsoleIo::Socket { writer, .. } => *writer = None,
        }
        self.child.stop(grace).await
    }

    async fn board_gone(&mut self) -> ConsoleEvent {
        let exit = self.child.wait().await;
        let how = format!("board exited ({exit})");
        self.exited = Some(how.clone());
        ConsoleEvent::Exited(how)
    }
}

/// Connects to the simulator's console socket, retrying while the simulator creates it.
async fn connect(kind: &ConsoleKind, cwd: &Path, max_line: usize) -> Result<ConsoleIo, String> {
    let mut delay = Duration::from_millis(5);
    loop {
        let attempt: std::io::Result<(
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        )> = match kind {
            ConsoleKind::Unix(path) => connect_unix_inside(cwd, path).await.map(|s| {
                let (r, w) = s.into_split();
                (Box::new(r) as _, Box::new(w) as _)
            }),
            ConsoleKind::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.map(|s| {
                let (r, w) = s.into_split();
                (Box::new(r) as _, Box::new(w) as _)
            }),
            ConsoleKind::Stdio => return Err("stdio is not a socket".into()),
        };
        match attempt {
            Ok((reader, writer)) => {
                let (tx, lines) = mpsc::channel(1024);
                tokio::spawn(read_lines(reader, max_line, tx));
                return Ok(ConsoleIo::Socket {
                    writer: Some(writer),
                    lines,
                });
            }
            // Not there yet: the simulator is still starting (the boot deadline bounds this).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("cannot connect to the console: {e}")),
        }
    }
}

/// Connects to the socket at `rel` inside `dir` without following a symbolic link: the
/// checkout is the repository's to shape, and a link there must not point this server at
/// another socket of the host. Each component is opened with `O_NOFOLLOW`; the socket is
/// then reached through its descriptor in `/proc/self/fd`.
async fn connect_unix_inside(dir: &Path, rel: &Path) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let open_at = |at: libc::c_int, name: &std::ffi::OsStr, flags| -> std::io::Result<OwnedFd> {
        let name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| std::io::Error::other("NUL in the console path"))?;
        // SAFETY: openat with a valid descriptor, a NUL-terminated path and plain flags.
        let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut names: Vec<&std::ffi::OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => names.push(n),
            std::path::Component::CurDir => {}
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the console path must stay inside the checkout",
                ));
            }
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty console path",
        ));
    };
    let mut at = open_at(
        libc::AT_FDCWD,
        dir.as_os_str(),
        libc::O_PATH | libc::O_DIRECTORY,
    )?;
    for name in parents {
        at = open_at(
            at.as_raw_fd(),
            name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )?;
    }
    let socket = open_at(at.as_raw_fd(), last, libc::O_PATH | libc::O_NOFOLLOW)?;
    let file_type = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))?;
    if !std::os::unix::fs::FileTypeExt::is_socket(&file_type.file_type()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a socket (symbolic links are not followed)",
                rel.display()
            ),
        ));
    }
    let stream =
        tokio::net::UnixStream::connect(format!("/proc/self/fd/{}", socket.as_raw_fd())).await;
    drop(socket);
    stream
}

/// Splits a socket's bytes into lines (lossy UTF-8, at most `max_line` bytes a piece).
async fn read_lines(mut reader: impl AsyncRead + Unpin, max_line: usize, tx: mpsc::Sender<String>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf
            .iter()
            .position(|b| *b == b'\n')
            .or((buf.len() >= max_line).then_some(max_line))
        {
            let mut piece: Vec<u8> = buf.drain(..pos.min(buf.len())).collect();
            if buf.first() == Some(&b'\n') {
                buf.remove(0);
            }
            if piece.last() == Some(&b'\r') {
                piece.pop();
            }
            if tx
                .send(String::from_utf8_lossy(&piece).into_owned())
                .await
                .is_err()
            {
                return;
            }
        }
    }
    if !buf.is_empty() {
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned()).await;
    }
}

impl Console for Board {
    async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let closed = || std::io::Error::other("the console is closed");
        match &mut self.console {
            ConsoleIo::Stdio(stdin) => {
                let stdin = stdin.as_mut().ok_or_else(closed)?;
                stdin.write_all(&bytes).await?;
                stdin.flush().await
            }
            ConsoleIo::Socket { writer, .. } => {
                let writer = writer.as_mut().ok_or_else(closed)?;
                writer.write_all(&bytes).await?;
                writer.flush().await
            }
        }
    }

    async fn next_event(&mut self) -> ConsoleEvent {
        if let Some(how) = &self.exited {
            return ConsoleEvent::Exited(how.clone());
        }
        match &mut self.console {
            ConsoleIo::Stdio(_) => loop {
                match self.output.recv().await {
                    // srun's own messages: the log's, not the console's.
                    Some(line)
                        if self.relay
                            && line.stream == exec::Stream::Stderr
                            && exec::slurm::slurm_message(&line.text) =>
                    {
                        self.log.line(&line.text);
                    }
                    Some(line) => return ConsoleEvent::Line(line.text),
                    // Output ended: the board is gone (wait() is cancel-safe).
                    None => return self.board_gone().await,
                }
            },
            ConsoleIo::Socket { lines, .. } => loop {
                tokio::select! {
                    line = lines.recv() => match line {
                        Some(line) => return ConsoleEvent::Line(line),
                        None => return self.board_gone().await,
                    },
                    // The simulator's own output is not the console: it goes to the log.
                    Some(out) = self.output.recv() => self.log.line(&out.text),
                }
            },
        }
    }
}

/// `<run>` steps: `sh -c COMMAND` in the checkout, supervised like every other child.
pub struct ShellHost {
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// `<run>` steps are repository code: confined, without network, only `cwd` writable.
    pub sandbox: std::sync::Arc<dyn exec::Executor>,
    pub grace: Duration,
    pub max_line: usize,
    pub cancel: CancellationToken,
}

impl Host for ShellHost {
    async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> HostOutcome {
        let mut spec = Spec::shell(command, &self.cwd);
        spec.env = self.env.clone();
        let spec = match super::step::repo_command(&*self.sandbox, spec, &self.cwd, false) {
            Ok(spec) => spec,
            Err(e) => return HostOutcome::Error(e.to_string()),
        };
        let limits = Limits {
            timeout: Some(timeout),
            silence: None,
            grace: self.grace,
            max_line: self.max_line,
        };
        match exec::run(&spec, &limits, &self.cancel, |line| on_line(line.text)).await {
            Ok(Ending::Exited(exit)) => match (exit.code, exit.signal) {
                (Some(code), _) => HostOutcome::Exited(code),
                (None, Some(sig)) => HostOutcome::Signalled(sig),
                (None, None) => HostOutcome::Error(format!("ended without a status ({exit})")),
            },
            Ok(Ending::TimedOut(_)) => HostOutcome::TimedOut,
            Ok(Ending::Silent(_)) => HostOutcome::TimedOut,
            Ok(Ending::Cancelled(_)) => HostOutcome::Cancelled,
            Err(e) => HostOutcome::Error(e.to_string()),
        }
    }
}

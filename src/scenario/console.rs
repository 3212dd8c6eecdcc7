//! The board's serial console as the runner sees it: lines in, lines out, and its end.

use std::future::Future;

/// What the console produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// One line of output, without its line ending.
    Line(String),
    /// The board is gone; a human description, e.g. "board exited with status 99".
    Exited(String),
}

/// A board's console: the pipeline plugs in the simulator's stdio or a socket.
pub trait Console: Send {
    /// Writes `line` and a newline.
    fn send_line(&mut self, line: &str) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Cancel-safe: may be dropped inside select! without losing a line. After Exited, keeps returning Exited.
    fn next_event(&mut self) -> impl Future<Output = ConsoleEvent> + Send;
}

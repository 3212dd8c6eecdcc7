//! How a child ended: its exit code or signal, and whether we stopped it.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// The end of a child's leader process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when the leader exited by itself (`exit(n)`).
    pub code: Option<i32>,
    /// The signal that killed the leader.
    pub signal: Option<i32>,
    /// We signalled the child to stop it: its status says nothing about success (QEMU, for one,
    /// exits 0 on `SIGTERM`).
    pub stopped: bool,
}

impl Exit {
    /// A child that was stopped before it was started.
    pub(crate) const NEVER_STARTED: Exit = Exit {
        code: None,
        signal: None,
        stopped: true,
    };

    pub(crate) fn from_status(status: ExitStatus, stopped: bool) -> Self {
        Exit {
            code: status.code(),
            signal: status.signal(),
            stopped,
        }
    }

    /// The child exited with code 0 by itself.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.stopped
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.stopped, self.code, self.signal) {
            (true, _, _) => f.write_str("stopped"),
            (false, Some(code), _) => write!(f, "exit status {code}"),
            (false, None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (false, None, None) => f.write_str("exit status unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_success() {
        let check = |exit: Exit, text: &str, success: bool| {
            assert_eq!(exit.to_string(), text);
            assert_eq!(exit.success(), success, "{text}");
        };
        let exit = |code, signal, stopped| Exit {
            code,
            signal,
            stopped,
        };
        check(exit(Some(0), None, false), "exit status 0", true);
        check(exit(Some(3), None, false), "exit status 3", false);
        check(exit(None, Some(9), false), "killed by signal 9", false);
        check(exit(Some(0), None, true), "stopped", false);
        check(exit(None, Some(15), true), "stopped", false);
        check(exit(None, None, false), "exit status unknown", false);
    }

    #[test]
    fn from_raw_wait_status() {
        // Raw wait statuses: exit code in the high byte, terminating signal in the low bits.
        let exited = Exit::from_status(ExitStatus::from_raw(3 << 8), false);
        assert_eq!((exited.code, exited.signal), (Some(3), None));
        let killed = Exit::from_status(ExitStatus::from_raw(9), false);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
    }
}

//! The error of starting a child. Everything after the start is reported as an [`super::Exit`].

use std::io;
use std::path::PathBuf;

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The argv was empty: there is no program to run.
    #[error("empty command: no program to run")]
    EmptyCommand,
    /// The working directory does not exist or is not a directory.
    #[error("working directory {} is not usable: {source}", path.display())]
    Cwd { path: PathBuf, source: io::Error },
    /// The OS refused to start the program (not found, not executable, ...).
    #[error("{}", spawn_message(program, source))]
    Spawn { program: String, source: io::Error },
}

fn spawn_message(program: &str, source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::NotFound => format!("program not found: {program}"),
        io::ErrorKind::PermissionDenied => format!("program not executable: {program}"),
        _ => format!("cannot start {program}: {source}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_name_the_program() {
        let check = |kind: io::ErrorKind, expected: &str| {
            let error = ExecError::Spawn {
                program: "idf.py".into(),
                source: io::Error::from(kind),
            };
            assert_eq!(error.to_string(), expected);
        };
        check(io::ErrorKind::NotFound, "program not found: idf.py");
        check(
            io::ErrorKind::PermissionDenied,
            "program not executable: idf.py",
        );
        let other = ExecError::Spawn {
            program: "qemu".into(),
            source: io::Error::other("out of memory"),
        };
        assert_eq!(other.to_string(), "cannot start qemu: out of memory");
    }
}

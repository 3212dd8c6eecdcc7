//! Reading scenario files without trusting them: regular files only, at most
//! [`MAX_FILE_SIZE`] bytes, and inside a checkout no symbolic link anywhere on the way.
//!
//! Whoever can push to a repository chooses what `scenarios/x.xml` is: a link to `/etc/passwd`,
//! a FIFO that blocks its reader, a gigabyte of XML. A path in a checkout is walked one
//! component at a time from a descriptor of the checkout (`openat` with `O_NOFOLLOW`), so a link
//! is refused wherever it is, even one put there while we walk. The kind of file is checked on
//! the open descriptor (a FIFO is opened `O_NONBLOCK`, so opening it does not wait for a
//! writer), and at most `MAX_FILE_SIZE + 1` bytes are ever read. An error names what is wrong,
//! never what the file holds.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::model::MAX_SCENARIOS;

/// Largest scenario file read, in bytes (1 MiB).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Where scenario files must be; the end of every refusal.
const RULE: &str = "scenario files must be regular files inside the repository";

/// Reads `path` (the `check` command: a path the user typed). The last component must not be
/// a symbolic link; the directories on the way are the user's choice.
pub(super) fn read_path(path: &Path) -> Result<Vec<u8>, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_error(&e))?;
    read_regular(file)
}

/// Reads `rel`, a `/`-separated path inside `checkout`. No component may be a symbolic link,
/// `.`, `..` or empty; the checkout's own path is ours and trusted.
pub(super) fn read_in_checkout(checkout: &Path, rel: &str) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return Err(
            "the path must be relative to the repository, without '.', '..' or empty parts".into(),
        );
    }
    let (name, dirs) = parts.split_last().expect("split gives at least one part");
    let mut dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(checkout)
        .map_err(|e| format!("cannot open the checkout: {e}"))?;
    let mut walked = PathBuf::new();
    for part in dirs {
        walked.push(part);
        dir = open_at(&dir, part, libc::O_DIRECTORY).map_err(|e| {
            let what = match std::fs::symlink_metadata(checkout.join(&walked)) {
                Ok(m) if m.file_type().is_symlink() => format!("is a symbolic link; {RULE}"),
                Ok(m) if !m.is_dir() => "is not a directory".to_owned(),
                _ => format!("cannot be opened: {e}"),
            };
            format!("{} {what}", walked.display())
        })?;
    }
    let file =
        open_at(&dir, name, libc::O_NONBLOCK | libc::O_NOCTTY).map_err(|e| open_error(&e))?;
    read_regular(file)
}

/// The `scenarios/*.xml` of a checkout, sorted: every entry but directories, so that a link or
/// a FIFO named `x.xml` is refused by name when it is read rather than silently left out.
/// `scenarios` itself must be a directory, not a link; more than [`MAX_SCENARIOS`] is refused.
pub fn discover(checkout: &Path) -> Result<Vec<String>, String> {
    let dir = checkout.join("scenarios");
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("scenarios: cannot be read: {e}")),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("scenarios is a symbolic link; {RULE}"));
        }
        Ok(m) if !m.is_dir() => return Ok(Vec::new()),
        Ok(_) => {}
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("scenarios: cannot be read: {e}"))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("scenarios: cannot be read: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // `file_type` does not follow links.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !name.ends_with(".xml") || is_dir {
            continue;
        }
        if found.len() == MAX_SCENARIOS {
            return Err(format!(
                "scenarios holds more than {MAX_SCENARIOS} .xml files: a queue runs at most \
                 {MAX_SCENARIOS}; name the ones to run in the request"
            ));
        }
        found.push(format!("scenarios/{name}"));
    }
    found.sort();
    Ok(found)
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | flags)`.
fn open_at(dir: &File, name: &str, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | flags;
    // SAFETY: `dir` is an open descriptor for the duration of the call and `name` a valid C
    // string; the descriptor returned is new and owned by nobody else.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened above and is not used anywhere else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Why the last component could not be opened (`ELOOP`: `O_NOFOLLOW` met a link).
fn open_error(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ELOOP) {
        format!("is a symbolic link; {RULE}")
    } else {
        format!("cannot read the file: {e}")
    }
}

/// The content of an open file, provided it is a regular file of at most `MAX_FILE_SIZE`.
fn read_regular(file: File) -> Result<Vec<u8>, String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return Err(format!("is {what}; {RULE}"));
    }
    let too_big = || {
        format!(
            "is larger than 1 MiB ({MAX_FILE_SIZE} bytes); scenario files must be at most 1 MiB"
        )
    };
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_big());
    }
    // The file may grow after the check: never read more than one byte past the limit.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A checkout with `scenarios/ok.xml` and a file outside it that must never be read.
    fn checkout() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret.xml");
        std::fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let co = dir.path().join("checkout");
        std::fs::create_dir_all(co.join("scenarios")).unwrap();
        std::fs::write(co.join("scenarios/ok.xml"), "<scenario/>").unwrap();
        (dir, co, secret)
    }

    fn refused(co: &Path, rel: &str) -> String {
        let e = read_in_checkout(co, rel).expect_err(rel);
        assert!(!e.contains("root:x"), "{e}");
        e
    }

    #[test]
    fn reads_a_regular_file_in_the_checkout() {
        let (_d, co, _) = checkout();
        assert_eq!(
            read_in_checkout(&co, "scenarios/ok.xml").unwrap(),
            b"<scenario/>"
        );
    }

    #[test]
    fn refuses_a_link_as_the_file_or_on_the_way() {
        let (d, co, secret) = checkout();
        symlink(&secret, co.join("scenarios/abs.xml")).unwrap();
        symlink("../../secret.xml", co.join("scenarios/rel.xml")).unwrap();
        // Even a link that stays inside the checkout: the rule is simple and holds.
        symlink("ok.xml", co.join("scenarios/inside.xml")).unwrap();
        for rel in [
            "scenarios/abs.xml",
            "scenarios/rel.xml",
            "scenarios/inside.xml",
        ] {
            let e = refused(&co, rel);
            assert_eq!(e, format!("is a symbolic link; {RULE}"), "{rel}");
        }
        // A linked directory on the way.
        symlink(d.path(), co.join("up")).unwrap();
        let e = refused(&co, "up/secret.xml");
        assert_eq!(e, format!("up is a symbolic link; {RULE}"));
        std::fs::create_dir_all(co.join("a")).unwrap();
        symlink(d.path(), co.join("a/b")).unwrap();
        assert_eq!(
            refused(&co, "a/b/secret.xml"),
            format!("a/b is a symbolic link; {RULE}")
        );
        // The `check` command refuses a link given as the file.
        let e = read_path(&co.join("scenarios/abs.xml")).unwrap_err();
        assert_eq!(e, format!("is a symbolic link; {RULE}"));
    }

    #[test]
    fn refuses_dot_dot_and_empty_parts() {
        let (_d, co, _) = checkout();
        for rel in [
            "../secret.xml",
            "scenarios/../../secret.xml",
            "/etc/passwd",
            "a//b",
            "./x",
        ] {
            refused(&co, rel);
        }
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let (_d, co, _) = checkout();
        std::fs::create_dir(co.join("scenarios/dir.xml")).unwrap();
        assert_eq!(
            refused(&co, "scenarios/dir.xml"),
            format!("is a directory; {RULE}")
        );
        // A FIFO: opening must not wait for a writer.
        let fifo = CString::new(
            co.join("scenarios/fifo.xml")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(
            refused(&co, "scenarios/fifo.xml"),
            format!("is a FIFO; {RULE}")
        );
        std::fs::write(co.join("file"), "x").unwrap();
        assert_eq!(refused(&co, "file/x.xml"), "file is not a directory");
        assert!(refused(&co, "scenarios/missing.xml").starts_with("cannot read the file: "));
        // Outside a checkout too (`check`): no following, no waiting.
        let e = read_path(&co.join("scenarios/fifo.xml")).unwrap_err();
        assert_eq!(e, format!("is a FIFO; {RULE}"));
        let e = read_path(Path::new("/dev/null")).unwrap_err();
        assert_eq!(e, format!("is a device; {RULE}"));
    }

    #[test]
    fn reads_at_most_1_mib() {
        let (_d, co, _) = checkout();
        let limit = MAX_FILE_SIZE as usize;
        std::fs::write(co.join("scenarios/full.xml"), vec![b' '; limit]).unwrap();
        assert_eq!(
            read_in_checkout(&co, "scenarios/full.xml").unwrap().len(),
            limit
        );
        std::fs::write(co.join("scenarios/big.xml"), vec![b'r'; limit + 1]).unwrap();
        let e = refused(&co, "scenarios/big.xml");
        assert!(e.starts_with("is larger than 1 MiB"), "{e}");
        let e = read_path(&co.join("scenarios/big.xml")).unwrap_err();
        assert!(e.starts_with("is larger than 1 MiB"), "{e}");
    }

    #[test]
    fn discovery_lists_xml_entries_but_not_directories() {
        let (d, co, secret) = checkout();
        symlink(&secret, co.join("scenarios/link.xml")).unwrap();
        std::fs::create_dir(co.join("scenarios/dir.xml")).unwrap();
        std::fs::write(co.join("scenarios/notes.txt"), "").unwrap();
        assert_eq!(
            discover(&co).unwrap(),
            ["scenarios/link.xml", "scenarios/ok.xml"]
        );
        // No scenarios directory: nothing found.
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(discover(&empty).unwrap(), Vec::<String>::new());
        // A linked scenarios directory is refused, without listing what it leads to.
        let linked = d.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        symlink(co.join("scenarios"), linked.join("scenarios")).unwrap();
        let e = discover(&linked).unwrap_err();
        assert_eq!(e, format!("scenarios is a symbolic link; {RULE}"));
    }

    #[test]
    fn discovery_refuses_more_than_256_files() {
        let (_d, co, _) = checkout();
        for i in 1..MAX_SCENARIOS {
            std::fs::write(co.join(format!("scenarios/{i}.xml")), "").unwrap();
        }
        assert_eq!(discover(&co).unwrap().len(), MAX_SCENARIOS);
        std::fs::write(co.join("scenarios/one-more.xml"), "").unwrap();
        let e = discover(&co).unwrap_err();
        assert!(e.contains("more than 256"), "{e}");
    }
}

//! Reading `queue.log` at an offset: whole lines only, positional reads, no handle kept open.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Complete lines read from the file: `bytes` ends with `\n` and spans `start..end`.
pub(crate) struct Lines {
    pub(crate) bytes: Vec<u8>,
    pub(crate) end: u64,
}

/// The file's length, `0` when it does not exist yet.
pub(crate) fn len(path: &Path) -> io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Whether `offset` starts a line: `0`, or the byte before it is `\n`.
pub(crate) fn is_line_start(path: &Path, offset: u64) -> io::Result<bool> {
    if offset == 0 {
        return Ok(true);
    }
    let file = File::open(path)?;
    let mut byte = [0u8; 1];
    let n = file.read_at(&mut byte, offset - 1)?;
    Ok(n == 1 && byte[0] == b'\n')
}

/// Reads the complete lines after `offset`, about `max` bytes of them (more when one line is
/// longer than `max`: a line is never split). `None` when no complete line follows `offset`: the
/// file ends there, ends in a partial line, or does not exist.
pub(crate) fn read_lines(path: &Path, offset: u64, max: usize) -> io::Result<Option<Lines>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if offset >= len {
        return Ok(None);
    }
    let available = len - offset;
    let mut bytes = Vec::new();
    let mut scanned = 0;
    loop {
        let want = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .saturating_sub(bytes.len())
            .min(max.max(bytes.len()));
        if want == 0 {
            return Ok(None);
        }
        let got = read_more(&file, offset, &mut bytes, want)?;
        let mut fresh = bytes[scanned..].iter();
        // Within `max`, as many lines as fit; past it, the end of the one long line.
        let newline = if scanned == 0 {
            fresh.rposition(|&b| b == b'\n')
        } else {
            fresh.position(|&b| b == b'\n')
        };
        if let Some(at) = newline {
            bytes.truncate(scanned + at + 1);
            let end = offset + bytes.len() as u64;
            return Ok(Some(Lines { bytes, end }));
        }
        if got < want {
            // The file ends in a partial line (a writer is mid-chunk, or the file was cut).
            return Ok(None);
        }
        // One line longer than what was read so far: keep reading until it ends.
        scanned = bytes.len();
    }
}

/// The last `n` complete lines of the file (a partial last line is left out); empty when the
/// file does not exist.
pub(crate) fn tail(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Scan backwards: the first `\n` found ends the last complete line, the `n + 1`-th one
    // ends the line before the first wanted.
    const BLOCK: u64 = 64 * 1024;
    let mut block = Vec::new();
    let mut pos = len;
    let mut end = None;
    let mut seen = 0;
    let mut start = 0;
    'scan: while pos > 0 {
        let from = pos.saturating_sub(BLOCK);
        block.clear();
        read_more(&file, from, &mut block, (pos - from) as usize)?;
        for (i, &b) in block.iter().enumerate().rev() {
            if b != b'\n' {
                continue;
            }
            let after = from + i as u64 + 1;
            end.get_or_insert(after);
            seen += 1;
            if seen == n + 1 {
                start = after;
                break 'scan;
            }
        }
        pos = from;
    }
    let Some(end) = end else {
        return Ok(Vec::new());
    };
    let mut bytes = Vec::new();
    read_more(&file, start, &mut bytes, (end - start) as usize)?;
    Ok(bytes)
}

/// Appends up to `want` bytes read at `offset + bytes.len()`; returns how many were read (fewer
/// only at the end of the file).
fn read_more(file: &File, offset: u64, bytes: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let start = bytes.len();
    bytes.resize(start + want, 0);
    let mut filled = 0;
    while filled < want {
        let at = offset + (start + filled) as u64;
        match file.read_at(&mut bytes[start + filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(start + filled);
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.log");
        std::fs::write(&path, content).expect("write");
        (dir, path)
    }

    #[test]
    fn reads_whole_lines_only() {
        let (_dir, path) = file_with(b"one\ntwo\nthr");
        let lines = read_lines(&path, 0, 1024).unwrap().unwrap();
        assert_eq!(lines.bytes, b"one\ntwo\n");
        assert_eq!(lines.end, 8);
        assert!(read_lines(&path, 8, 1024).unwrap().is_none());
    }

    #[test]
    fn stops_near_max_but_never_splits_a_line() {
        let (_dir, path) = file_with(b"aaaa\nbbbb\ncccc\n");
        let lines = read_lines(&path, 0, 7).unwrap().unwrap();
        assert_eq!(lines.bytes, b"aaaa\n");
        let long = format!("{}\nz\n", "x".repeat(5000));
        let (_dir, path) = file_with(long.as_bytes());
        let lines = read_lines(&path, 0, 100).unwrap().unwrap();
        assert_eq!(lines.bytes.len(), 5001);
        assert_eq!(lines.end, 5001);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.log");
        assert!(read_lines(&path, 0, 10).unwrap().is_none());
        assert_eq!(len(&path).unwrap(), 0);
    }

    #[test]
    fn tail_takes_the_last_complete_lines() {
        let check = |content: &[u8], n: usize, expected: &str| {
            let (_dir, path) = file_with(content);
            let got = tail(&path, n).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                expected,
                "{content:?} n={n}"
            );
        };
        check(b"a\nb\nc\n", 2, "b\nc\n");
        check(b"a\nb\nc\n", 3, "a\nb\nc\n");
        check(b"a\nb\nc\n", 10, "a\nb\nc\n");
        check(b"a\nb\nc\n", 0, "");
        check(b"a\nb\npart", 1, "b\n");
        check(b"\n\n", 1, "\n");
        check(b"", 5, "");
        let many: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        check(many.as_bytes(), 3, "99997\n99998\n99999\n");
    }

    #[test]
    fn line_starts() {
        let (_dir, path) = file_with(b"ab\ncd\n");
        let starts: Vec<u64> = (0..=6)
            .filter(|&o| is_line_start(&path, o).unwrap())
            .collect();
        assert_eq!(starts, [0, 3, 6]);
    }
}

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
/// longer than `max`: a line is never split), into `buf` (emptied first: the caller allocates
/// it, so that a blocking thread that runs this allocates nothing that outlives it). `None`
/// when no complete line follows `offset`: the file ends there, ends in a partial line, or does
/// not exist.
pub(crate) fn read_lines(
    path: &Path,
    offset: u64,
    max: usize,
    mut buf: Vec<u8>,
) -> io::Result<Option<Lines>> {
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
    buf.clear();
    let mut bytes = buf;
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

/// How much of the file [`tail`] reads at a time, going backwards.
const TAIL_BLOCK: usize = 64 * 1024;

/// The last `n` complete lines of a file, as a byte range of an open handle on it.
#[derive(Debug)]
pub struct Tail {
    /// `None` when the file does not exist.
    pub file: Option<File>,
    /// From the start of the first line wanted to just after the last `\n` (a partial last
    /// line is left out); empty when there is nothing to send.
    pub range: std::ops::Range<u64>,
}

/// Where the last `n` complete lines of the file are. The file is read backwards in blocks of
/// 64 KiB, counting newlines, so memory stays one block whatever the file's size, its line
/// lengths and `n`; the caller streams the range from the returned handle (the same file even if
/// it is replaced meanwhile).
pub(crate) fn tail(path: &Path, n: usize) -> io::Result<Tail> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Tail {
                file: None,
                range: 0..0,
            });
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let range = tail_range(&file, len, n, TAIL_BLOCK)?;
    Ok(Tail {
        file: Some(file),
        range,
    })
}

/// [`tail`]'s scan over the first `len` bytes of `file`, `block` bytes at a time.
fn tail_range(file: &File, len: u64, n: usize, block: usize) -> io::Result<std::ops::Range<u64>> {
    if n == 0 || len == 0 {
        return Ok(0..0);
    }
    // Scan backwards: the first `\n` found ends the last complete line, the `n + 1`-th one
    // ends the line before the first wanted.
    let mut buf = vec![0u8; block.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut pos = len;
    let mut end = None;
    let mut seen = 0;
    while pos > 0 {
        let from = pos.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(pos - from) as usize];
        file.read_exact_at(chunk, from)?;
        for i in memrchr_iter(chunk) {
            let after = from + i as u64 + 1;
            end.get_or_insert(after);
            seen += 1;
            if seen == n + 1 {
                return Ok(after..end.unwrap_or(after));
            }
        }
        pos = from;
    }
    // Fewer than `n + 1` newlines: every complete line, from the start.
    Ok(0..end.unwrap_or(0))
}

/// Positions of `\n` in `bytes`, last first.
fn memrchr_iter(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(i, &b)| (b == b'\n').then_some(i))
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
    use proptest::prelude::*;

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
        let lines = read_lines(&path, 0, 1024, Vec::new()).unwrap().unwrap();
        assert_eq!(lines.bytes, b"one\ntwo\n");
        assert_eq!(lines.end, 8);
        assert!(read_lines(&path, 8, 1024, Vec::new()).unwrap().is_none());
    }

    #[test]
    fn stops_near_max_but_never_splits_a_line() {
        let (_dir, path) = file_with(b"aaaa\nbbbb\ncccc\n");
        let lines = read_lines(&path, 0, 7, Vec::new()).unwrap().unwrap();
        assert_eq!(lines.bytes, b"aaaa\n");
        let long = format!("{}\nz\n", "x".repeat(5000));
        let (_dir, path) = file_with(long.as_bytes());
        let lines = read_lines(&path, 0, 100, Vec::new()).unwrap().unwrap();
        assert_eq!(lines.bytes.len(), 5001);
        assert_eq!(lines.end, 5001);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.log");
        assert!(read_lines(&path, 0, 10, Vec::new()).unwrap().is_none());
        assert_eq!(len(&path).unwrap(), 0);
    }

    /// The last `n` complete lines, the plain way.
    fn naive_tail(content: &[u8], n: usize) -> Vec<u8> {
        let complete = match content.iter().rposition(|&b| b == b'\n') {
            Some(i) => &content[..=i],
            None => return Vec::new(),
        };
        let lines: Vec<&[u8]> = complete.split_inclusive(|&b| b == b'\n').collect();
        lines[lines.len().saturating_sub(n)..].concat()
    }

    fn read_tail(path: &Path, n: usize) -> Vec<u8> {
        let Tail { file, range } = tail(path, n).unwrap();
        let mut bytes = vec![0u8; (range.end - range.start) as usize];
        if let Some(file) = file {
            file.read_exact_at(&mut bytes, range.start).unwrap();
        } else {
            assert!(range.is_empty());
        }
        bytes
    }

    #[test]
    fn tail_takes_the_last_complete_lines() {
        let check = |content: &[u8], n: usize, expected: &str| {
            let (_dir, path) = file_with(content);
            let got = read_tail(&path, n);
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
        check(b"part", 1, "");
        check(b"\n\n", 1, "\n");
        check(b"", 5, "");
        let many: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        check(many.as_bytes(), 3, "99997\n99998\n99999\n");
        let dir = tempfile::tempdir().unwrap();
        assert!(read_tail(&dir.path().join("none.log"), 3).is_empty());
    }

    proptest! {
        /// Any content, any `n`, blocks small enough to cut lines and newlines anywhere.
        #[test]
        fn tail_matches_the_naive_tail(
            content in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'x'), Just(0xffu8)], 0..400),
            n in 0usize..50,
            block in 1usize..70,
        ) {
            let (_dir, path) = file_with(&content);
            let file = File::open(&path).unwrap();
            let range = tail_range(&file, content.len() as u64, n, block).unwrap();
            let got = &content[range.start as usize..range.end as usize];
            prop_assert_eq!(got, &naive_tail(&content, n)[..]);
        }
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

//! A test's transcript as plain text (`tests/<suite>/<test>.txt` beside its HTML log): one line
//! per transcript line, `+1.500s match   pong`, the console's text as it came (escape sequences
//! included, as in `queue.log`). JUnit's `<system-out>` is read back from it, cleaned.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::text;
use crate::model::{LineKind, TranscriptLine};

/// The most of a transcript that goes into one `<system-out>`: its end, where a failure is.
pub const MAX_SYSTEM_OUT: u64 = 256 * 1024;

/// The kind of a line, as the HTML log names it.
pub fn kind(k: LineKind) -> &'static str {
    match k {
        LineKind::Send => "send",
        LineKind::Console => "console",
        LineKind::Match => "match",
        LineKind::Command => "command",
        LineKind::Output => "output",
        LineKind::Info => "info",
    }
}

/// The transcript as text, one line per transcript line.
pub fn text(lines: &[TranscriptLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let line = format!("{} {:<7} {}\n", text::offset(l.at_ms), kind(l.kind), l.text);
        out.push_str(&line);
    }
    out
}

/// The transcript at `path` for `<system-out>`: escape sequences stripped, characters XML
/// forbids replaced; only its last [`MAX_SYSTEM_OUT`] bytes (from a line start) when it is
/// longer, after a line saying so. `None` when there is no such file.
pub fn system_out(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let skip = len.saturating_sub(MAX_SYSTEM_OUT);
    let mut bytes = Vec::new();
    if skip > 0 {
        file.seek(SeekFrom::Start(skip)).ok()?;
    }
    file.read_to_end(&mut bytes).ok()?;
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if skip > 0 {
        let start = s.find('\n').map_or(s.len(), |i| i + 1);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let kept = s.len() - start;
        s.replace_range(
            ..start,
            &format!("[the first {} bytes are in {name}]\n", len - kept as u64),
        );
    }
    Some(text::cleaned(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_one_line_per_transcript_line() {
        let line = |at_ms, kind, text: &str| TranscriptLine {
            at_ms,
            kind,
            text: text.into(),
        };
        let t = text(&[
            line(3, LineKind::Send, "ping"),
            line(1500, LineKind::Match, "\u{1b}[32mpong\u{1b}[0m"),
        ]);
        assert_eq!(
            t,
            "+0.003s send    ping\n+1.500s match   \u{1b}[32mpong\u{1b}[0m\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, &t).unwrap();
        assert_eq!(
            system_out(&path).unwrap(),
            "+0.003s send    ping\n+1.500s match   pong\n"
        );
        assert_eq!(system_out(&dir.path().join("none.txt")), None);
    }

    #[test]
    fn a_long_transcript_keeps_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.txt");
        let line = "x".repeat(99) + "\n";
        let lines = (MAX_SYSTEM_OUT / 100 + 50) as usize;
        std::fs::write(&path, line.repeat(lines - 1) + "the end\n").unwrap();
        let out = system_out(&path).unwrap();
        assert!(out.len() as u64 <= MAX_SYSTEM_OUT + 100, "{}", out.len());
        assert!(out.ends_with("the end\n"));
        let (first, rest) = out.split_once('\n').unwrap();
        assert!(first.starts_with("[the first ") && first.ends_with(" bytes are in long.txt]"));
        assert!(rest.starts_with(&line), "cut at a line start");
    }
}

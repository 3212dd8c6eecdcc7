//! Output lines: the splitter that cuts a byte stream into lines of bounded length, and the
//! readers that pump a child's pipes into the line channel.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a reader keeps reading once the child's process group is gone. Only a process that
/// left the group (`setsid`) can still hold the pipe then; it must not hold the run open.
pub(crate) const DRAIN: Duration = Duration::from_millis(500);

const CHUNK: usize = 16 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output, without its line ending; a line longer than the maximum arrives as
/// several `Line`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
}

/// Cuts bytes into lines at `\n`, strips one trailing `\r`, and cuts lines longer than `max`
/// bytes into pieces of at most `max` bytes (before a UTF-8 character rather than inside it).
/// The result does not depend on how the input is chunked.
#[derive(Debug)]
pub(crate) struct Splitter {
    buf: Vec<u8>,
    max: usize,
}

impl Splitter {
    pub(crate) fn new(max: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            max: max.max(1),
        }
    }

    /// Consumes `data`, calling `emit` for each complete line or piece.
    pub(crate) fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(Vec<u8>)) {
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&data[..newline]);
            data = &data[newline + 1..];
            let mut line = std::mem::take(&mut self.buf);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.emit_line(line, emit);
        }
        self.buf.extend_from_slice(data);
        // A line already longer than `max` is cut now, so memory stays bounded. A last byte
        // `\r` that may be the start of `\r\n` is held back until the next byte shows.
        while self.buf.len() > self.max
            && !(self.buf.len() == self.max + 1 && self.buf.last() == Some(&b'\r'))
        {
            let cut = cut_point(&self.buf, self.max);
            let rest = self.buf.split_off(cut);
            emit(std::mem::replace(&mut self.buf, rest));
        }
    }

    /// Delivers a final line that had no newline.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(Vec<u8>)) {
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.is_empty() {
            self.emit_line(line, emit);
        }
    }

    fn emit_line(&self, mut line: Vec<u8>, emit: &mut impl FnMut(Vec<u8>)) {
        while line.len() > self.max {
            let rest = line.split_off(cut_point(&line, self.max));
            emit(std::mem::replace(&mut line, rest));
        }
        emit(line);
    }
}

/// Where to cut `buf` (longer than `max`): at `max`, or earlier at the start of a UTF-8
/// character that would straddle the cut. Never at 0.
fn cut_point(buf: &[u8], max: usize) -> usize {
    let continuation = |b: u8| b & 0xC0 == 0x80;
    if !continuation(buf[max]) {
        return max;
    }
    for back in 1..=3.min(max - 1) {
        let byte = buf[max - back];
        if byte >= 0xC0 {
            return max - back;
        }
        if !continuation(byte) {
            break;
        }
    }
    max
}

/// Text of a line; invalid UTF-8 becomes U+FFFD.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// Reads one pipe until end of file, or until [`DRAIN`] after `drain` is cancelled, sending
/// every line to `tx`. A full channel makes it wait (no line is dropped); a closed channel
/// makes it read on and discard, so the child never blocks on a full pipe.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    max_line: usize,
    tx: mpsc::Sender<Line>,
    drain: CancellationToken,
) {
    let mut splitter = Splitter::new(max_line);
    let mut chunk = vec![0; CHUNK];
    let mut deadline = None;
    let mut lines = Vec::new();
    loop {
        let read = tokio::select! {
            read = reader.read(&mut chunk) => read,
            () = drain_over(&drain, &mut deadline) => break,
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::debug!(?stream, %error, "reading child output failed");
                break;
            }
        };
        splitter.push(&chunk[..n], &mut |line| lines.push(line));
        send(&tx, stream, &mut lines).await;
    }
    splitter.finish(&mut |line| lines.push(line));
    send(&tx, stream, &mut lines).await;
}

async fn send(tx: &mpsc::Sender<Line>, stream: Stream, lines: &mut Vec<Vec<u8>>) {
    for bytes in lines.drain(..) {
        if tx.is_closed() {
            continue;
        }
        // An error means the receiver is gone: the line is discarded, like all that follow.
        let _ = tx
            .send(Line {
                stream,
                text: text(bytes),
            })
            .await;
    }
}

/// Completes [`DRAIN`] after `drain` is cancelled; the deadline survives re-creation.
async fn drain_over(drain: &CancellationToken, deadline: &mut Option<Instant>) {
    let at = match *deadline {
        Some(at) => at,
        None => {
            drain.cancelled().await;
            *deadline.insert(Instant::now() + DRAIN)
        }
    };
    tokio::time::sleep_until(at).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(input: &[u8], max: usize, chunk: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut splitter = Splitter::new(max);
        for piece in input.chunks(chunk.max(1)) {
            splitter.push(piece, &mut |line| out.push(line));
        }
        splitter.finish(&mut |line| out.push(line));
        out
    }

    fn check(input: &str, max: usize, expected: &[&str]) {
        for chunk in [1, 2, 3, 7, input.len().max(1)] {
            let lines: Vec<String> = split(input.as_bytes(), max, chunk)
                .into_iter()
                .map(text)
                .collect();
            assert_eq!(lines, expected, "input {input:?}, max {max}, chunk {chunk}");
        }
    }

    #[test]
    fn splits_lines() {
        check("", 8, &[]);
        check("a\nb\n", 8, &["a", "b"]);
        check("a\r\nb\r\n", 8, &["a", "b"]);
        check("\n\n", 8, &["", ""]);
        check("last without newline", 64, &["last without newline"]);
        check("a\nlast\r", 8, &["a", "last"]);
        check("in\rside\n", 8, &["in\rside"]);
        check("a\r\r\n", 8, &["a\r"]);
    }

    #[test]
    fn cuts_long_lines_into_pieces_without_losing_bytes() {
        check("abcdefghij\n", 4, &["abcd", "efgh", "ij"]);
        check("abcdefgh\n", 4, &["abcd", "efgh"]);
        check("abcd\r\nx\n", 4, &["abcd", "x"]);
        check("abcd\rx\n", 4, &["abcd", "\rx"]);
        check("abcdefgh", 4, &["abcd", "efgh"]);
    }

    #[test]
    fn cuts_before_a_multibyte_character() {
        check("abcé\n", 4, &["abc", "é"]);
        check("ab€x\n", 4, &["ab", "€x"]);
        check("€€\n", 4, &["€", "€"]);
    }

    #[test]
    fn keeps_invalid_utf8_lossily() {
        let lines: Vec<String> = split(b"ok\xff\xfe\nnext\n", 64, 3)
            .into_iter()
            .map(text)
            .collect();
        assert_eq!(lines, ["ok\u{fffd}\u{fffd}", "next"]);
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_lines(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            max in 1usize..20,
            chunk in 1usize..50,
        ) {
            let whole = split(&input, max, input.len().max(1));
            prop_assert_eq!(split(&input, max, chunk), whole.clone());
            for line in &whole {
                prop_assert!(line.len() <= max);
            }
            if !input.contains(&b'\r') {
                let kept: Vec<u8> = input.iter().copied().filter(|&b| b != b'\n').collect();
                prop_assert_eq!(whole.concat(), kept);
            }
        }
    }

    #[tokio::test]
    async fn pump_delivers_every_line_through_a_small_channel() {
        let input: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let (tx, mut rx) = mpsc::channel(4);
        let reader = tokio::spawn(pump(
            std::io::Cursor::new(input.into_bytes()),
            Stream::Stderr,
            64,
            tx,
            CancellationToken::new(),
        ));
        let mut count = 0;
        while let Some(line) = rx.recv().await {
            assert_eq!(
                line,
                Line {
                    stream: Stream::Stderr,
                    text: format!("line {count}")
                }
            );
            count += 1;
        }
        assert_eq!(count, 500);
        reader.await.expect("reader");
    }

    #[tokio::test]
    async fn pump_stops_after_drain_when_the_pipe_stays_open() {
        let (mut writer, reader) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"held open\npartial")
            .await
            .expect("write");
        let (tx, mut rx) = mpsc::channel(4);
        let drain = CancellationToken::new();
        let task = tokio::spawn(pump(reader, Stream::Stdout, 64, tx, drain.clone()));
        assert_eq!(
            rx.recv().await.map(|l| l.text).as_deref(),
            Some("held open")
        );
        drain.cancel();
        let rest = tokio::time::timeout(DRAIN * 4, async {
            let mut rest = Vec::new();
            while let Some(line) = rx.recv().await {
                rest.push(line.text);
            }
            rest
        })
        .await
        .expect("channel closes after the drain period");
        assert_eq!(rest, ["partial"]);
        task.await.expect("reader");
        drop(writer);
    }
}

//! The one writer of a queue's log: appends lines, writes them in chunks, broadcasts each chunk
//! after it is in the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Chunk, QueueLog};

/// Pending bytes that make `line` write a chunk at once instead of waiting for the flush task.
const CHUNK_BYTES: usize = 32 * 1024;
/// Chunks up to this size travel on the channel; bigger ones are read from the file.
const INLINE_BYTES: usize = 64 * 1024;
/// How long the flush task lets lines gather before it writes them: the live latency.
const FLUSH_DELAY: Duration = Duration::from_millis(5);

/// Appends lines to a queue's (or a task's) log. Clones share one file and one order; the log
/// stops being live when [`LogWriter::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct LogWriter {
    inner: Arc<Inner>,
    /// Where every line also goes (a task's lines into its queue's log), and with what in front.
    copy: Option<Arc<CopyTo>>,
}

struct CopyTo {
    to: LogWriter,
    /// Put before every line but the engine's markers (`=== …`, which name their task already).
    prefix: Option<String>,
}

struct Inner {
    log: Arc<QueueLog>,
    /// The prefix of echoed lines (`serve --echo-logs`), if echoing.
    echo: Option<String>,
    /// `std` mutex: held for a memcpy or one `write` of one chunk, never across `.await`.
    state: Mutex<State>,
    /// A second handle on the file, for `fsync` without holding the lock.
    sync_file: Arc<File>,
    /// Wakes the flush task when the first line lands in an empty buffer, and when it is done.
    wake: Arc<Notify>,
}

struct State {
    file: File,
    /// Bytes in the file: the offset of the next chunk.
    end: u64,
    pending: Vec<u8>,
    closed: bool,
    /// The first write error, reported by every later `sync` and by `close`: a log that lost
    /// lines stays failed.
    error: Option<io::Error>,
}

impl LogWriter {
    pub(super) fn open(label: &str, log: Arc<QueueLog>, echo: bool) -> io::Result<LogWriter> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let claimed = log
            .live
            .send_if_modified(|live| !std::mem::replace(live, true));
        if !claimed {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("log {label} already has an open writer: close it first"),
            ));
        }
        let (file, end) = match open_for_append(&log) {
            Ok(opened) => opened,
            Err(e) => {
                log.live.send_replace(false);
                return Err(e);
            }
        };
        let sync_file = match file.try_clone() {
            Ok(f) => Arc::new(f),
            Err(e) => {
                log.live.send_replace(false);
                return Err(e);
            }
        };
        let inner = Arc::new(Inner {
            log,
            echo: echo.then(|| format!("{label} | ")),
            state: Mutex::new(State {
                file,
                end,
                pending: Vec::new(),
                closed: false,
                error: None,
            }),
            sync_file,
            wake: Arc::new(Notify::new()),
        });
        runtime.spawn(flush_task(Arc::downgrade(&inner), Arc::clone(&inner.wake)));
        Ok(LogWriter { inner, copy: None })
    }

    /// This writer, also copying every line into `to` (a task's log into its queue's), with
    /// `prefix` before each line that is not an engine marker.
    pub fn copying_to(self, to: LogWriter, prefix: Option<String>) -> LogWriter {
        LogWriter {
            inner: self.inner,
            copy: Some(Arc::new(CopyTo { to, prefix })),
        }
    }

    /// Appends `text` as one line (several if it contains `\n`; one trailing `\n` is ignored and
    /// `\r` is dropped). Never waits for readers; readers see the line within a few milliseconds.
    pub fn line(&self, text: &str) {
        let text = text.strip_suffix('\n').unwrap_or(text);
        if let Some(copy) = &self.copy {
            match &copy.prefix {
                Some(prefix) => {
                    let mut lines = String::with_capacity(text.len() + prefix.len());
                    for (i, l) in text.split('\n').enumerate() {
                        if i > 0 {
                            lines.push('\n');
                        }
                        if !l.starts_with("=== ") {
                            lines.push_str(prefix);
                        }
                        lines.push_str(l);
                    }
                    copy.to.line(&lines);
                }
                None => copy.to.line(text),
            }
        }
        let mut st = self.inner.lock();
        if st.closed {
            tracing::debug!(path = %self.inner.log.path.display(), "line after close dropped");
            return;
        }
        let was_empty = st.pending.is_empty();
        for part in text.split('\n') {
            if part.contains('\r') {
                st.pending.extend(part.bytes().filter(|&b| b != b'\r'));
            } else {
                st.pending.extend_from_slice(part.as_bytes());
            }
            st.pending.push(b'\n');
        }
        if let Some(prefix) = &self.inner.echo {
            echo_lines(prefix, text);
        }
        if st.pending.len() >= CHUNK_BYTES {
            self.inner.write_pending(&mut st);
        } else if was_empty {
            self.inner.wake.notify_one();
        }
    }

    /// Writes what is pending and `fsync`s the file (at the end of a step); the copy's too.
    pub async fn sync(&self) -> io::Result<()> {
        if let Some(copy) = &self.copy {
            Box::pin(copy.to.sync()).await?;
        }
        let error = {
            let mut st = self.inner.lock();
            self.inner.write_pending(&mut st);
            st.error
                .as_ref()
                .map(|e| io::Error::new(e.kind(), e.to_string()))
        };
        if let Some(e) = error {
            return Err(e);
        }
        let file = Arc::clone(&self.inner.sync_file);
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(io::Error::other)?
    }

    /// Writes what is pending, `fsync`s, and marks the log not live: followers finish reading
    /// and learn it. Lines given to other clones afterwards are dropped.
    pub async fn close(self) -> io::Result<()> {
        let result = self.sync().await;
        self.inner.finish();
        result
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic mid-line leaves at worst a partial buffer: keep logging.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the pending bytes as one chunk, then broadcasts it.
    fn write_pending(&self, st: &mut State) {
        if st.pending.is_empty() {
            return;
        }
        if let Err(e) = st.file.write_all(&st.pending) {
            tracing::error!(path = %self.log.path.display(), error = %e, "writing the log failed");
            st.pending.clear();
            // Part of the chunk may be in the file: carry on from where the file ends.
            if let Ok(meta) = st.file.metadata() {
                st.end = meta.len();
            }
            st.error.get_or_insert(e);
            return;
        }
        let start = st.end;
        st.end += st.pending.len() as u64;
        if self.log.tx.receiver_count() == 0 {
            st.pending.clear();
            return;
        }
        let data = if st.pending.len() <= INLINE_BYTES {
            let next = Vec::with_capacity(st.pending.len().min(CHUNK_BYTES));
            Some(std::mem::replace(&mut st.pending, next))
        } else {
            st.pending.clear();
            None
        };
        let chunk = Chunk {
            start,
            end: st.end,
            data,
        };
        // No receiver left between the check and here: nobody to tell.
        let _ = self.log.tx.send(Arc::new(chunk));
    }

    /// Writes what is pending and marks the log not live, once.
    fn finish(&self) {
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            self.write_pending(&mut st);
            st.closed = true;
            st.pending = Vec::new();
        }
        // After the last chunk was broadcast: a follower that sees `false` has everything.
        self.log.live.send_replace(false);
        self.wake.notify_one();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Opens the log for appending; a last line cut short (a crash mid-write) is ended first so
/// that new lines do not run into it. Returns the file and its length.
fn open_for_append(log: &QueueLog) -> io::Result<(File, u64)> {
    if let Some(dir) = log.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&log.path)?;
    let mut len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            len += 1;
        }
    }
    Ok((file, len))
}

/// Writes lines that have waited [`FLUSH_DELAY`]; ends with the writer (`finish` wakes it, and a
/// wake-up that comes before the wait is kept as a permit by `Notify`).
async fn flush_task(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        tokio::time::sleep(FLUSH_DELAY).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let mut st = strong.lock();
        if st.closed {
            return;
        }
        strong.write_pending(&mut st);
    }
}

/// Prints lines to stdout with the queue's prefix; a closed stdout is not the log's problem.
fn echo_lines(prefix: &str, text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for part in text.split('\n') {
        let _ = writeln!(out, "{prefix}{}", part.trim_end_matches('\r'));
    }
}

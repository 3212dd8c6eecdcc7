//! Following a queue's log from an offset: replay from the file, then the live channel, back to
//! the file whenever the channel cannot say what comes next.

use std::io;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use super::{Chunk, QueueLog, file};

/// About how many bytes one batch carries: from the file, a single longer line is still one
/// batch; from the channel, the last chunk taken is taken whole (at most 64 KiB). An SSE client
/// that does not read holds about one batch, so this stays small; a chunk the writer broadcasts
/// is about 32 KiB.
const BATCH_BYTES: usize = 16 * 1024;

/// Why a follower could not start.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(
        "offset {0} is not the start of a line: resume from 0 or from the id of an event received"
    )]
    NotLineBoundary(u64),
    #[error("offset {0} is past the end of the log ({1} bytes): resume from {1} or less")]
    PastEnd(u64, u64),
    #[error("reading the log failed: {0}")]
    Io(#[from] io::Error),
}

/// Complete lines, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The lines joined with `\n`, without a final `\n`; bytes that are not UTF-8 are replaced.
    pub text: String,
    /// The byte offset in `queue.log` just after the last line.
    pub end_offset: u64,
}

impl Batch {
    /// The lines of this batch.
    pub fn lines(&self) -> std::str::Split<'_, char> {
        self.text.split('\n')
    }
}

/// What [`LogFollower::next`] yields.
#[derive(Debug)]
pub enum FollowItem {
    Batch(Batch),
    /// Everything in the file is delivered and no writer is open. Reported once per idle spell;
    /// the next call waits for a writer to open (a re-run) and goes on from there.
    Idle,
    /// The file could not be read; the follower can be dropped.
    Failed(io::Error),
}

/// Follows one queue's log. Holds no buffer while idle.
pub struct LogFollower {
    log: Arc<QueueLog>,
    rx: broadcast::Receiver<Arc<Chunk>>,
    live: watch::Receiver<bool>,
    offset: u64,
    /// Read the file before looking at the channel again.
    from_file: bool,
    idle_reported: bool,
    /// A chunk just received from the channel, for [`LogFollower::take_from_channel`]; never
    /// kept from one call of `next` to the next.
    carry: Option<Arc<Chunk>>,
}

/// What the channel had to offer without waiting.
enum Taken {
    Batch(Batch),
    /// Something is missing between the offset and the channel: read the file.
    Gap,
    Nothing,
}

impl LogFollower {
    pub(super) fn new(log: Arc<QueueLog>, from: u64) -> Result<LogFollower, FollowError> {
        // Subscribe before looking at the file: every chunk written after this point is on the
        // channel, every chunk before it is in the file.
        let rx = log.tx.subscribe();
        let live = log.live.subscribe();
        let len = file::len(&log.path)?;
        if from > len {
            return Err(FollowError::PastEnd(from, len));
        }
        if !file::is_line_start(&log.path, from)? {
            return Err(FollowError::NotLineBoundary(from));
        }
        Ok(LogFollower {
            log,
            rx,
            live,
            offset: from,
            from_file: true,
            idle_reported: false,
            carry: None,
        })
    }

    /// The offset of the next line to deliver.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether everything is delivered and no writer has opened since `Idle` was reported:
    /// nothing more can come until one does.
    pub fn is_idle(&self) -> bool {
        self.idle_reported && !self.live.has_changed().unwrap_or(false)
    }

    /// The next complete lines after the offset: the file first, then live. Cancel-safe: every
    /// change of state happens between two awaits, after the awaited value is in hand.
    pub async fn next(&mut self) -> FollowItem {
        loop {
            if self.from_file {
                match self.read_file().await {
                    Ok(Some(batch)) => return self.deliver(batch),
                    Ok(None) => self.from_file = false,
                    Err(e) => return FollowItem::Failed(e),
                }
            }
            // Read the flag before the channel: once a follower sees `false`, the writer's last
            // chunk is already on the channel.
            let live = *self.live.borrow_and_update();
            match self.take_from_channel() {
                Taken::Batch(batch) => return self.deliver(batch),
                Taken::Gap => continue,
                Taken::Nothing => {}
            }
            if !live {
                if !self.idle_reported {
                    self.idle_reported = true;
                    return FollowItem::Idle;
                }
                if self.live.changed().await.is_err() {
                    // The hub's side is gone: nothing can be written any more.
                    std::future::pending::<()>().await;
                }
                // A writer opened (and maybe already closed): look at the file again, and say
                // `Idle` again once everything it wrote is delivered.
                self.idle_reported = false;
                self.from_file = true;
                continue;
            }
            // Neither channel can close: `self.log` holds both senders.
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(chunk) => self.carry = Some(chunk),
                    Err(RecvError::Lagged(_)) => self.from_file = true,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                },
                _ = self.live.changed() => {}
            }
        }
    }

    fn deliver(&mut self, batch: Batch) -> FollowItem {
        self.offset = batch.end_offset;
        self.idle_reported = false;
        FollowItem::Batch(batch)
    }

    async fn read_file(&mut self) -> io::Result<Option<Batch>> {
        let path = self.log.path.clone();
        let offset = self.offset;
        // A turn first, then the buffer: followers waiting for a turn hold none. The buffer is
        // allocated here, on a runtime thread: what a short-lived blocking thread allocates can
        // stay with the allocator after the thread is gone. The semaphore is never closed.
        let _turn = self.log.reads.acquire().await.map_err(io::Error::other)?;
        let buf = Vec::with_capacity(BATCH_BYTES);
        let read =
            tokio::task::spawn_blocking(move || file::read_lines(&path, offset, BATCH_BYTES, buf))
                .await
                .map_err(io::Error::other)??;
        Ok(read.map(|lines| Batch {
            text: into_text(lines.bytes),
            end_offset: lines.end,
        }))
    }

    /// Takes whole chunks from the channel, without waiting, until the batch holds
    /// [`BATCH_BYTES`] or more. A chunk is never split, so nothing is kept for the next call: a
    /// follower whose client stopped reading pins no chunk the channel has let go.
    fn take_from_channel(&mut self) -> Taken {
        let mut bytes: Vec<u8> = Vec::new();
        let mut offset = self.offset;
        // The channel cannot say what follows `offset`: a chunk was missed, or is too big for it.
        let mut gap = false;
        while bytes.len() < BATCH_BYTES {
            let chunk = match self.carry.take() {
                Some(chunk) => chunk,
                None => match self.rx.try_recv() {
                    Ok(chunk) => chunk,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    Err(TryRecvError::Lagged(_)) => {
                        gap = true;
                        break;
                    }
                },
            };
            if chunk.end <= offset {
                continue;
            }
            let Some(data) = chunk.data.as_deref().filter(|_| chunk.start <= offset) else {
                gap = true;
                break;
            };
            bytes.extend_from_slice(&data[(offset - chunk.start) as usize..]);
            offset = chunk.end;
        }
        // What is in hand goes out first; the file has the rest.
        self.from_file |= gap;
        if bytes.is_empty() {
            return if gap { Taken::Gap } else { Taken::Nothing };
        }
        Taken::Batch(Batch {
            text: into_text(bytes),
            end_offset: offset,
        })
    }
}

/// Whole lines as text without the final `\n`; invalid UTF-8 is replaced, never a panic.
fn into_text(mut bytes: Vec<u8>) -> String {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

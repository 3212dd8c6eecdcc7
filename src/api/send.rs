//! Streaming response bodies that a client who stops reading cannot make the server buffer.
//!
//! hyper polls a streaming body for more as long as its write buffer holds less than about
//! 400 KiB (or 16 chunks), whether or not the socket takes anything: a log stream to a client
//! that does not read would park that much per client. [`bounded`] hands the connection one
//! chunk at a time instead. Each chunk carries a permit that comes back when hyper drops the
//! chunk, which it does once the chunk is written to the socket; only then is the next chunk
//! made. A reading client still goes at full speed (the kernel's socket buffers keep the pipe
//! full), and one that has not taken its chunk within the send timeout gets an error instead of
//! the next chunk, which makes hyper close the connection.
//!
//! This relies on hyper queueing the chunks it is given (its vectored-write strategy, which it
//! uses for TCP sockets) rather than copying them; with a copying strategy the bound would be
//! hyper's own buffer limit.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest piece handed to the connection at once: a bigger chunk (one huge log line) goes
/// in pieces, so that hyper's buffer never fills and it keeps polling the body (and the send
/// timeout keeps counting).
const PIECE: usize = 64 * 1024;

/// `chunks` as a response body stream that holds at most one chunk (of at most [`PIECE`]
/// bytes) in the connection's write buffer, and fails when that chunk has not been written to
/// the socket within `timeout`; `on_stall` runs then, once.
pub(crate) fn bounded<S>(
    chunks: S,
    timeout: Duration,
    on_stall: impl FnOnce() + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    let state = Sender {
        chunks: Box::pin(chunks),
        room: Arc::new(Semaphore::new(1)),
        rest: Bytes::new(),
        timeout,
        on_stall: Some(Box::new(on_stall)),
        done: false,
    };
    futures_util::stream::unfold(state, |mut sender| async move {
        let item = sender.next().await?;
        Some((item, sender))
    })
}

type OnStall = Box<dyn FnOnce() + Send>;

struct Sender<S> {
    chunks: std::pin::Pin<Box<S>>,
    /// One permit: held by the chunk the connection has and not yet written.
    room: Arc<Semaphore>,
    /// What is left of a chunk bigger than [`PIECE`].
    rest: Bytes,
    timeout: Duration,
    on_stall: Option<OnStall>,
    done: bool,
}

impl<S: Stream<Item = io::Result<Bytes>>> Sender<S> {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.done {
            return None;
        }
        // The semaphore is never closed.
        let permit =
            match tokio::time::timeout(self.timeout, self.room.clone().acquire_owned()).await {
                Ok(permit) => permit.ok()?,
                Err(_) => {
                    self.done = true;
                    if let Some(on_stall) = self.on_stall.take() {
                        on_stall();
                    }
                    return Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client took nothing for {:?}: closing the connection",
                            self.timeout
                        ),
                    )));
                }
            };
        let mut chunk = if self.rest.is_empty() {
            match self.chunks.next().await? {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        } else {
            std::mem::take(&mut self.rest)
        };
        if chunk.len() > PIECE {
            self.rest = chunk.split_off(PIECE);
        }
        Some(Ok(Bytes::from_owner(InFlight {
            chunk,
            _permit: permit,
        })))
    }
}

/// A chunk given to the connection; dropping it (once written) makes room for the next.
struct InFlight {
    chunk: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for InFlight {
    fn as_ref(&self) -> &[u8] {
        &self.chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(n: usize, size: usize) -> impl Stream<Item = io::Result<Bytes>> + Send {
        futures_util::stream::iter((0..n).map(move |i| Ok(Bytes::from(vec![i as u8; size]))))
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_chunk_waits_until_the_last_one_is_dropped() {
        let stalls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = stalls.clone();
        let body = bounded(chunks(3, 10), Duration::from_secs(30), move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let mut body = Box::pin(body);
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], &[0u8; 10]);
        // Dropped (written): the next one comes at once.
        drop(first);
        let second = body.next().await.unwrap().unwrap();
        assert_eq!(second[0], 1);
        // Held (the client does not read): nothing more, then an error after the timeout.
        let started = tokio::time::Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(body.next().await.is_none());
        assert_eq!(stalls.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(second);
    }

    #[tokio::test]
    async fn a_big_chunk_goes_in_pieces_and_every_byte_arrives() {
        let body = bounded(chunks(2, PIECE * 2 + 7), Duration::from_secs(30), || {});
        // Each piece is dropped before the next is asked for, as hyper does once it is written.
        let pieces: Vec<(usize, u8)> = body
            .map(|c| c.map(|c| (c.len(), c[0])).unwrap())
            .collect()
            .await;
        assert_eq!(
            pieces,
            [
                (PIECE, 0),
                (PIECE, 0),
                (7, 0),
                (PIECE, 1),
                (PIECE, 1),
                (7, 1)
            ]
        );
    }
}

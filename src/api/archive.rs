//! `GET /api/queues/{id}/archive`: everything the files route serves of a queue (`queue.log`,
//! `report.html`, `tasks/…`), never its checkout, as one `application/gzip` tar under a top
//! folder named after the id.
//!
//! The archive is never built in memory. A blocking thread walks the queue's directory and
//! writes tar into gzip into [`Chunks`], a `Write` that hands out 64 KiB chunks through a
//! channel of [`CHANNEL`] chunks; the response body takes them from there through
//! `send::bounded`. Memory per download is those few chunks and the compressor's state, whatever
//! the size of the queue; a client that stops reading is dropped after `[api] sse_send_timeout`,
//! and one that goes away ends the thread at its next chunk.
//!
//! What goes in is decided as the files route decides what it serves: the names of
//! [`crate::layout::SERVED`] and what is under them, regular files and directories only. A
//! symbolic link is never followed (nor stored), and nor is anything that is not a regular file.
//! A file is read for the size it had when it was opened: a log that grows meanwhile is cut
//! there, one that shrank is padded with zeros, so each entry matches its header.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::validate::parse_id;
use crate::layout::{Layout, SERVED};
use crate::model::QueueId;

/// The size of the chunks the archive is handed to the connection in.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting in the channel for the connection to take them.
const CHANNEL: usize = 2;
/// Directories below a served name are followed this deep (`tasks/<task>/tests/<suite>/` is 4).
const MAX_DEPTH: usize = 16;

/// `GET /api/queues/{id}/archive`: the queue's log and reports as `<id>.tar.gz`.
pub async fn archive(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    if let Some(key) = params.keys().next() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter {key:?}: the archive takes none"),
            Some(key),
        ));
    }
    if state.store.get(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("queue {id}")));
    }
    let config = state.config();
    let dir = Layout::new(&config.root).queue(&id).path().to_owned();
    let (tx, mut rx) = mpsc::channel(CHANNEL);
    let chunks = Chunks {
        tx,
        buf: Vec::new(),
        shutdown: state.shutdown.clone(),
    };
    let top = id.clone();
    // Ends when the archive is written, or at the next chunk once the client is gone.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write_archive(chunks, &dir, &top) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                tracing::debug!(queue = %top, "an archive's client went away");
            } else {
                tracing::warn!(queue = %top, error = %e, "writing an archive failed");
            }
        }
    });
    let received = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let body = super::send::bounded(received, config.api.sse_send_timeout, || {
        tracing::info!("closed an archive download whose client stopped reading");
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    // An id is letters, digits, '.', '_' and '-': nothing to quote.
    let disposition = format!("attachment; filename=\"{id}.tar.gz\"");
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// Writes the archive of the queue directory `dir` into `out`; on a failure the body gets the
/// error too, which makes the connection end without the gzip trailer (a client sees a cut).
fn write_archive(out: Chunks, dir: &Path, id: &QueueId) -> io::Result<()> {
    let errors = out.tx.clone();
    let result = (|| {
        let gzip = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        let mut tar = Archive {
            tar: tar::Builder::new(gzip),
            top: PathBuf::from(id.as_str()),
        };
        tar.directory(Path::new(""), std::fs::metadata(dir).ok().as_ref())?;
        for name in SERVED {
            tar.add(dir, Path::new(name), 0)?;
        }
        tar.tar.into_inner()?.finish()?.send()
    })();
    if let Err(e) = &result
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        let _ = errors.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
    }
    result
}

struct Archive<W: Write> {
    tar: tar::Builder<W>,
    /// The folder everything is under: the queue's id.
    top: PathBuf,
}

impl<W: Write> Archive<W> {
    /// Adds `rel` (a path under `dir`): a regular file, or a directory and what is under it.
    /// Anything else, and anything that is gone by now, is left out.
    fn add(&mut self, dir: &Path, rel: &Path, depth: usize) -> io::Result<()> {
        let path = dir.join(rel);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.is_file() {
            return self.file(&path, rel);
        }
        if !meta.is_dir() || depth >= MAX_DEPTH {
            return Ok(());
        }
        let mut names = Vec::new();
        match std::fs::read_dir(&path) {
            Ok(entries) => {
                for entry in entries {
                    names.push(entry?.file_name());
                }
            }
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        names.sort();
        self.directory(rel, Some(&meta))?;
        for name in names {
            self.add(dir, &rel.join(name), depth + 1)?;
        }
        Ok(())
    }

    fn directory(&mut self, rel: &Path, meta: Option<&Metadata>) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(meta.map_or(0, mtime));
        // A trailing '/' marks a directory for every reader.
        let mut name = self.top.join(rel).into_os_string();
        name.push("/");
        self.tar.append_data(&mut header, name, io::empty())
    }

    /// Adds the regular file at `path`, for the size it has now; not through a symbolic link
    /// put there since it was listed (`O_NOFOLLOW`), nor a FIFO (`O_NONBLOCK`, then checked).
    fn file(&mut self, path: &Path, rel: &Path) -> io::Result<()> {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if gone(&e) || e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(());
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(meta.len());
        header.set_mtime(mtime(&meta));
        let data = Exact {
            file,
            left: meta.len(),
        };
        self.tar.append_data(&mut header, self.top.join(rel), data)
    }
}

/// Removed (a report replaced, a queue deleted) while the archive was written.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn mtime(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Exactly `left` bytes of `file`: cut when the file grew since it was stat'd, padded with
/// zeros when it shrank, so a tar entry always matches the size in its header.
struct Exact {
    file: File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let mut n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Write` that hands what is written to the response body in [`CHUNK`]-byte chunks through
/// a bounded channel: a full channel blocks the writer (on its blocking thread) until the
/// connection takes a chunk. Writing fails once the body is gone (`BrokenPipe`) or the server
/// shuts down.
struct Chunks {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    shutdown: CancellationToken,
}

impl Chunks {
    /// Hands over what is buffered.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.shutdown.is_cancelled() {
            return Err(io::Error::other("the server is shutting down"));
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(CHUNK);
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_exactly_the_size_it_was_stated_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let read = |left| {
            let mut out = Vec::new();
            let mut exact = Exact {
                file: File::open(&path).unwrap(),
                left,
            };
            exact.read_to_end(&mut out).unwrap();
            out
        };
        // Grew since: cut at the stated size.
        assert_eq!(read(4), b"0123");
        // Shrank since: padded with zeros.
        assert_eq!(read(12), b"0123456789\0\0");
        assert_eq!(read(0), b"");
    }

    #[test]
    fn chunks_are_whole_until_the_last_and_fail_once_the_body_is_gone() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut chunks = Chunks {
            tx,
            buf: Vec::new(),
            shutdown: CancellationToken::new(),
        };
        chunks.write_all(&vec![7u8; CHUNK + 10]).unwrap();
        chunks.flush().unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| c.unwrap().len())
            .collect();
        assert_eq!(sizes, [CHUNK, 10]);
        drop(rx);
        chunks.write_all(b"more").unwrap();
        let e = chunks.flush().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}

//! `GET /queues/{id}/files/{*path}`: a queue's log and reports (`queue.log`, `report.html`,
//! `junit.xml`, `tasks/…`), read-only. Never the checkout (`repo/`): it holds whatever the repository holds,
//! symlinks and secrets its build may have written included.
//!
//! The path is checked component by component before it touches the filesystem (no empty, `.`
//! or `..` component, no NUL, no backslash), its first component must be one of [`crate::layout::SERVED`], then
//! it is resolved and canonicalized: a symlink that leads outside the queue's directory is
//! refused. Every response says `nosniff` and carries a sandboxing content security policy,
//! because a test's log may hold any HTML.

use std::path::{Path as FsPath, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiPath;
use crate::model::QueueId;

/// Scripts never run in a served file; inline styles (our reports) and local images do.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox";

/// Bytes read per chunk when streaming a file.
const CHUNK: usize = 64 * 1024;

pub async fn serve_file(
    State(state): State<AppState>,
    ApiPath((id, path)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let id = QueueId::parse(&id)
        .map_err(|e| ApiError::bad_request("invalid_id", e.to_string(), Some("id")))?;
    let parts =
        check_path(&path).map_err(|m| ApiError::bad_request("invalid_path", m, Some("path")))?;
    if !crate::layout::SERVED.contains(&parts[0]) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "file {path} not found: only report.html, junit.xml, queue.log and tasks/… are served, not the checkout"
            ),
        ));
    }
    let queue_dir = crate::layout::Layout::new(&state.config().root)
        .queue(&id)
        .path()
        .to_owned();
    let file = resolve(&queue_dir, &parts).await?;
    serve(&file).await
}

/// Splits a request path into components, refusing any that could leave the directory.
pub fn check_path(path: &str) -> Result<Vec<&str>, String> {
    if path.is_empty() {
        return Err("name a file under the queue's directory, e.g. report.html".into());
    }
    if path.starts_with('/') {
        return Err("the path must be relative to the queue's directory".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        let bad = match *part {
            "" => Some("an empty component ('//' or a trailing '/')"),
            "." | ".." => Some("a '.' or '..' component"),
            p if p.contains('\0') => Some("a NUL character"),
            p if p.contains('\\') => Some("a backslash"),
            _ => None,
        };
        if let Some(bad) = bad {
            return Err(format!("the path must not contain {bad}"));
        }
    }
    Ok(parts)
}

/// The canonical path of the file, provided it is inside the queue's directory.
async fn resolve(queue_dir: &FsPath, parts: &[&str]) -> Result<PathBuf, ApiError> {
    let not_found = || ApiError::not_found(format!("file {}", parts.join("/")));
    let canonical = |p: PathBuf| async move {
        match tokio::fs::canonicalize(&p).await {
            Ok(c) => Ok(c),
            Err(e) if is_missing(&e) => Err(not_found()),
            Err(e) => Err(ApiError::internal(format!(
                "canonicalize {}: {e}",
                p.display()
            ))),
        }
    };
    let base = canonical(queue_dir.to_owned()).await?;
    let file = canonical(parts.iter().fold(queue_dir.to_owned(), |p, c| p.join(c))).await?;
    if !file.starts_with(&base) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the path leads outside the queue's directory",
        ));
    }
    Ok(file)
}

fn is_missing(e: &std::io::Error) -> bool {
    // ENOTDIR: a component of the path is a file.
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

async fn serve(path: &FsPath) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("file");
    let mut options = tokio::fs::OpenOptions::new();
    // The path is canonical: a symlink put there since is not followed; a FIFO does not block.
    options
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match options.open(path).await {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return Err(not_found()),
        Err(e) => return Err(ApiError::internal(format!("open {}: {e}", path.display()))),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(ApiError::not_found("file (a directory has no listing)"));
    }
    let stream = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // Reports are rewritten while a queue runs.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The content type by extension; text is declared UTF-8, unknown is `application/octet-stream`.
pub fn content_type(path: &FsPath) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "log" | "txt" | "out" | "md" | "c" | "h" | "rs" | "py" | "sh" | "toml" | "cfg" | "ini"
        | "yml" | "yaml" | "csv" => "text/plain; charset=utf-8",
        "xml" => "application/xml; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        _ => {
            let mime = mime_guess::from_ext(&ext)
                .first_raw()
                .unwrap_or("application/octet-stream");
            // Anything that a browser would run or render as a page is served as plain bytes.
            if mime.starts_with("text/") || mime.contains("javascript") || mime.contains("xml") {
                "text/plain; charset=utf-8"
            } else {
                mime
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_component_by_component() {
        for good in [
            "report.html",
            "tasks/smoke/tests/shell/ping.html",
            "tasks/t/.hidden",
            "a..b/c",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_path("tasks/x/report.html").unwrap(),
            ["tasks", "x", "report.html"]
        );
    }

    #[test]
    fn content_types() {
        let check = |p: &str, ct: &str| assert_eq!(content_type(FsPath::new(p)), ct, "{p}");
        check("report.html", "text/html; charset=utf-8");
        check("queue.log", "text/plain; charset=utf-8");
        check("tasks/x/task.log", "text/plain; charset=utf-8");
        check("junit.xml", "application/xml; charset=utf-8");
        check("summary.json", "application/json");
        check("tasks/t/img.png", "image/png");
        check("tasks/t/firmware.elf", "application/octet-stream");
        check("tasks/t/Makefile", "application/octet-stream");
        check("tasks/t/app.js", "text/plain; charset=utf-8");
        check("tasks/t/pic.svg", "text/plain; charset=utf-8");
    }
}

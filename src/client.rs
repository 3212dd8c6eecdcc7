//! The command-line client: `enqueue`, `status`, `logs -f`, `abort`, `delete`, `download`
//! against a running server's REST and SSE API. Errors carry the server's own message.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::Value;

pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// One server-sent event as the client needs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Vec<String>,
}

/// Splits an SSE byte stream into events; feed it chunks, take the complete events.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if !event.data.is_empty() || !event.event.is_empty() {
                    out.push(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.event = value.to_owned(),
                "id" => self.current.id = Some(value.to_owned()),
                "data" => self.current.data.push(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// The server's own message from an error response, with the status code.
async fn api_error(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("request failed");
    anyhow::anyhow!("{message} ({status})")
}

impl Client {
    /// A client of `server`; with `token`, every request carries `Authorization: Bearer`.
    pub fn new(server: &str, token: Option<&str>) -> anyhow::Result<Client> {
        let mut builder = crate::http_client();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    anyhow::anyhow!("the token has characters a header cannot carry: paste it as `testarena token new` printed it")
                })?;
            // Kept out of debug output.
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        Ok(Client {
            base: server.trim_end_matches('/').to_owned(),
            http: builder.build().context("cannot build the HTTP client")?,
        })
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the server at {}: is it running? (--server)",
                self.base
            )
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if !status.is_success() {
            return Err(api_error(resp).await);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn enqueue(&self, body: &Value) -> anyhow::Result<Value> {
        self.json(
            self.http
                .post(format!("{}/api/queues", self.base))
                .json(body),
        )
        .await
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Value> {
        self.json(self.http.get(format!("{}/api/queues/{id}", self.base)))
            .await
    }

    pub async fn list(&self, status: Option<&str>, limit: usize) -> anyhow::Result<Value> {
        let mut url = format!("{}/api/queues?limit={limit}", self.base);
        if let Some(s) = status {
            url.push_str(&format!("&status={s}"));
        }
        self.json(self.http.get(url)).await
    }

    pub async fn abort(&self, id: &str) -> anyhow::Result<Value> {
        self.json(
            self.http
                .post(format!("{}/api/queues/{id}/abort", self.base)),
        )
        .await
    }

    /// Re-runs finished queue `id` (only its tasks that did not pass with `failed`).
    pub async fn rerun(&self, id: &str, failed: bool) -> anyhow::Result<Value> {
        let only = if failed { "failed" } else { "all" };
        self.json(
            self.http
                .post(format!("{}/api/queues/{id}/rerun", self.base))
                .json(&serde_json::json!({ "only": only })),
        )
        .await
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.json(self.http.delete(format!("{}/api/queues/{id}", self.base)))
            .await
            .map(|_| ())
    }

    /// Saves the archive of queue `id` (its log and reports, `.tar.gz`) as `path`, chunk by
    /// chunk: into a temporary file beside it, renamed to `path` once complete, so `path` is
    /// never half-written. Returns the number of bytes written.
    pub async fn download(&self, id: &str, path: &std::path::Path) -> anyhow::Result<u64> {
        let resp = self
            .http
            .get(format!("{}/api/queues/{id}/archive", self.base))
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the server at {}: is it running? (--server)",
                    self.base
                )
            })?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file: give a file name", path.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.part", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let written = save(resp, &temp).await;
        let renamed = match written {
            Ok(n) => tokio::fs::rename(&temp, path)
                .await
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|()| n),
            Err(e) => Err(e),
        };
        if renamed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        renamed
    }

    /// Prints the log; with `follow`, stays on the live stream until the queue ends, resuming
    /// after a dropped connection from the last offset. Returns the final status when followed.
    pub async fn logs(
        &self,
        id: &str,
        follow: bool,
        out: &mut impl Write,
    ) -> anyhow::Result<Option<String>> {
        if !follow {
            let resp = self
                .http
                .get(format!("{}/api/queues/{id}/log", self.base))
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {}", self.base))?;
            if !resp.status().is_success() {
                return Err(api_error(resp).await);
            }
            out.write_all(&resp.bytes().await?)?;
            return Ok(None);
        }
        let mut offset = "0".to_owned();
        let mut failures = 0;
        loop {
            let url = format!("{}/api/queues/{id}/log/stream?from={offset}", self.base);
            let resp = match self.http.get(&url).send().await {
                Ok(r) => r,
                Err(e) if failures < 30 => {
                    failures += 1;
                    eprintln!("connection lost ({e}); reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e).context("the server stays unreachable"),
            };
            if !resp.status().is_success() {
                return Err(api_error(resp).await);
            }
            failures = 0;
            let mut parser = SseParser::default();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                for event in parser.push(&chunk) {
                    match event.event.as_str() {
                        "end" => {
                            let end: Option<crate::wire::LogEnd> =
                                serde_json::from_str(&event.data.join("\n")).ok();
                            return Ok(end.map(|e| e.status.to_string()));
                        }
                        _ => {
                            for line in &event.data {
                                writeln!(out, "{line}")?;
                            }
                            out.flush()?;
                            if let Some(id) = event.id {
                                offset = id;
                            }
                        }
                    }
                }
            }
            eprintln!("stream interrupted at offset {offset}; resuming");
        }
    }
}

/// Writes the body of `resp` to a new file at `path`, synced to disk; its length.
async fn save(resp: reqwest::Response, path: &std::path::Path) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut body = resp.bytes_stream();
    let mut len = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context(
            "the download was cut off (the server's log may say why); nothing was saved",
        )?;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        len += chunk.len() as u64;
    }
    file.sync_all()
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.push(b"retry: 2000\nevent: log\nid: 12\ndata: a")
                .is_empty()
        );
        let events = p.push(
            b"\ndata: b\n\n: keep-alive\n\nevent: end\r\ndata: {\"status\":\"passed\"}\r\n\r\n",
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "log");
        assert_eq!(events[0].id.as_deref(), Some("12"));
        assert_eq!(events[0].data, ["a", "b"]);
        assert_eq!(events[1].event, "end");
        assert_eq!(events[1].data, ["{\"status\":\"passed\"}"]);
    }
}

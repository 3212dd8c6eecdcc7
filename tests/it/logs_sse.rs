//! Live logs over real sockets: `/api/queues/{id}/log/stream` (SSE) and `/api/queues/{id}/log`.
//! Also home of the small SSE client the SSE tests share.

use std::time::Duration;

use futures_util::StreamExt;
use testarena::logs::marker;
use testarena::model::{QueueId, QueueRequest, Status};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub const WAIT: Duration = Duration::from_secs(30);

/// One server-sent event as a browser's `EventSource` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    /// `data:` fields joined with `\n`; empty when there is none.
    pub data: String,
    pub retry: Option<u64>,
}

/// A minimal SSE reader over a streaming `reqwest` response.
pub struct SseClient {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl SseClient {
    /// Connects; panics unless the answer is a 200 event stream.
    pub async fn connect(app: &TestApp, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = app.client.get(app.url(path));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200, "{path}");
        let headers = resp.headers().clone();
        let body = resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed();
        SseClient {
            body,
            buf: Vec::new(),
            headers,
        }
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.next_untimed())
            .await
            .expect("an event or the end of the stream in time")
    }

    async fn next_untimed(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent {
            event: "message".into(),
            id: None,
            data: String::new(),
            retry: None,
        };
        let mut data: Vec<String> = Vec::new();
        let mut fields = 0;
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                match self.body.next().await {
                    Some(Ok(bytes)) => {
                        self.buf.extend_from_slice(&bytes);
                        continue;
                    }
                    Some(Err(e)) => panic!("stream failed: {e}"),
                    None => return None,
                }
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8(line[..line.len() - 1].to_vec()).expect("UTF-8 stream");
            if line.is_empty() {
                if fields == 0 {
                    continue;
                }
                event.data = data.join("\n");
                return Some(event);
            }
            if line.starts_with(':') {
                continue;
            }
            fields += 1;
            let (name, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match name {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                "retry" => event.retry = value.parse().ok(),
                other => panic!("unexpected field {other:?}"),
            }
        }
    }

    /// Every `log` event's lines (each ended by `\n`) up to `end`; returns them and `end`'s data.
    pub async fn read_to_end(&mut self) -> (String, String) {
        let mut text = String::new();
        loop {
            let event = self
                .next()
                .await
                .expect("the stream ends with an `end` event");
            match event.event.as_str() {
                "log" => {
                    text.push_str(&event.data);
                    text.push('\n');
                }
                "end" => return (text, event.data),
                other => panic!("unexpected event {other}"),
            }
        }
    }
}

pub async fn enqueue(app: &TestApp, id: &str) -> QueueId {
    let id = QueueId::parse(id).expect("id");
    let request = QueueRequest {
        repo: "https://example.invalid/repo.git".into(),
        branch: None,
        commit: None,
        environment: "xtensa-sim".into(),
        scenarios: vec![],
        priority: 0,
    };
    app.state
        .store
        .enqueue(id.clone(), request)
        .await
        .expect("enqueue");
    id
}

async fn finish(app: &TestApp, id: &QueueId, to: Status) {
    let store = &app.state.store;
    store
        .transition(id, Status::Running, None)
        .await
        .expect("run");
    store.transition(id, to, None).await.expect("finish");
}

fn file(app: &TestApp, id: &QueueId) -> String {
    std::fs::read_to_string(app.state.logs.path(id)).expect("queue.log")
}

fn stream_path(id: &QueueId) -> String {
    format!("/api/queues/{id}/log/stream")
}

#[tokio::test]
async fn a_finished_queue_replays_its_whole_log_then_ends() {
    let app = spawn_app().await;
    let id = enqueue(&app, "replay").await;
    let w = app.state.logs.writer(&id).unwrap();
    w.line(&marker("step", "checkout", "started"));
    for i in 0..5000 {
        w.line(&format!("output line {i}"));
    }
    w.line("");
    w.line(&marker("step", "checkout", "finished"));
    w.close().await.unwrap();
    finish(&app, &id, Status::Passed).await;

    let mut sse = SseClient::connect(&app, &stream_path(&id), None).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let first = sse.next().await.unwrap();
    assert_eq!(first.retry, Some(2000));
    let mut text = format!("{}\n", first.data);
    let (rest, end) = sse.read_to_end().await;
    text.push_str(&rest);
    assert_eq!(text, file(&app, &id));
    assert_eq!(end, r#"{"status":"passed"}"#);
    assert!(sse.next().await.is_none(), "the stream closes after `end`");
}

#[tokio::test]
async fn resuming_with_last_event_id_loses_and_repeats_nothing() {
    let app = spawn_app().await;
    let id = enqueue(&app, "resume").await;
    app.state
        .store
        .transition(&id, Status::Running, None)
        .await
        .unwrap();
    let w = app.state.logs.writer(&id).unwrap();
    // Lines keep coming while the connections come and go (a writer that finished early would
    // leave a resumed connection with nothing more to read), then the log ends.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        for i in 0..2_000_000 {
            w.line(&format!("{i:07} {}", "z".repeat(i % 70)));
            if i % 500 == 0 {
                tokio::task::yield_now().await;
                if i >= 20_000 && stopped.try_recv().is_ok() {
                    break;
                }
            }
        }
        w.close().await.unwrap();
    });
    let mut parts = String::new();
    let mut last_id = None;
    // Three connections, each dropped after a few events.
    for _ in 0..3 {
        let mut sse = SseClient::connect(&app, &stream_path(&id), last_id.as_deref()).await;
        for _ in 0..3 {
            let event = sse.next().await.unwrap();
            assert_eq!(event.event, "log");
            parts.push_str(&event.data);
            parts.push('\n');
            last_id = event.id;
        }
    }
    let _ = stop.send(());
    writer.await.unwrap();
    app.state
        .store
        .transition(&id, Status::Failed, None)
        .await
        .unwrap();
    let mut sse = SseClient::connect(&app, &stream_path(&id), last_id.as_deref()).await;
    let (rest, end) = sse.read_to_end().await;
    parts.push_str(&rest);
    assert_eq!(end, r#"{"status":"failed"}"#);
    assert!(parts == file(&app, &id), "the parts differ from queue.log");

    // `?from=` resumes the same way, here from the start of the 101st line.
    let offset = file(&app, &id).match_indices('\n').nth(99).unwrap().0 + 1;
    let mut sse =
        SseClient::connect(&app, &format!("{}?from={offset}", stream_path(&id)), None).await;
    let (tail, _) = sse.read_to_end().await;
    assert_eq!(tail, file(&app, &id)[offset..]);
}

#[tokio::test]
async fn bad_offsets_and_unknown_queues_get_json_errors() {
    let app = spawn_app().await;
    let id = enqueue(&app, "errors").await;
    let w = app.state.logs.writer(&id).unwrap();
    w.line("hello");
    w.close().await.unwrap();
    for (query, code) in [
        ("?from=2", "invalid_offset"),
        ("?from=99", "invalid_offset"),
        ("?from=x", "invalid_query"),
        ("?since=1", "invalid_query"),
    ] {
        let (status, body) = app.get_json(&format!("{}{query}", stream_path(&id))).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    let (status, body) = app.get_json(&format!("{}?from=2", stream_path(&id))).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not the start of a line"),
        "{body}"
    );
    let (status, body) = app.get_json("/api/queues/nope/log/stream").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn a_stalled_client_gets_every_line_later_and_does_not_delay_others() {
    // Stalled for as long as the fast client reads: not long enough to be dropped.
    let app = spawn_app_with("[worker]\nslots = 0\n[api]\nsse_send_timeout = \"10m\"\n").await;
    let id = enqueue(&app, "stall").await;
    app.state
        .store
        .transition(&id, Status::Running, None)
        .await
        .unwrap();
    let w = app.state.logs.writer(&id).unwrap();
    let mut stalled = SseClient::connect(&app, &stream_path(&id), None).await;
    let mut fast = SseClient::connect(&app, &stream_path(&id), None).await;
    // ~16 MB: far more than the socket buffers and the live channel hold.
    let total = 150_000;
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            for i in 0..total {
                w.line(&format!("line {i:06} {}", "x".repeat(100)));
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let last = format!("line {:06} ", total - 1);
    loop {
        let event = fast
            .next()
            .await
            .expect("the fast client keeps getting lines");
        if event
            .data
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&last))
        {
            break;
        }
    }
    writer.await.unwrap();
    w.close().await.unwrap();
    app.state
        .store
        .transition(&id, Status::Passed, None)
        .await
        .unwrap();
    let (text, _) = stalled.read_to_end().await;
    assert!(text == file(&app, &id), "the stalled client's copy differs");
}

#[tokio::test]
async fn end_arrives_for_a_queue_that_runs_while_the_client_waits() {
    let app = spawn_app().await;
    let id = enqueue(&app, "later").await;
    // Waiting, no log yet: the client waits for the writer.
    let mut sse = SseClient::connect(&app, &stream_path(&id), None).await;
    let store = &app.state.store;
    store.transition(&id, Status::Running, None).await.unwrap();
    let w = app.state.logs.writer(&id).unwrap();
    w.line("booting");
    let event = sse.next().await.unwrap();
    assert_eq!(
        (event.event.as_str(), event.data.as_str()),
        ("log", "booting")
    );
    assert_eq!(event.id.as_deref(), Some("8"));
    w.line("done");
    w.close().await.unwrap();
    store.transition(&id, Status::TimedOut, None).await.unwrap();
    let (text, end) = sse.read_to_end().await;
    assert_eq!(text, "done\n");
    assert_eq!(end, r#"{"status":"timed_out"}"#);

    // A queue aborted before it ever ran: no lines, just `end`.
    let id = enqueue(&app, "never").await;
    let mut sse = SseClient::connect(&app, &stream_path(&id), None).await;
    store.transition(&id, Status::Aborted, None).await.unwrap();
    let end = sse.next().await.unwrap();
    assert_eq!(
        (end.event.as_str(), end.data.as_str()),
        ("end", r#"{"status":"aborted"}"#)
    );
}

#[tokio::test]
async fn a_huge_line_and_invalid_utf8_do_not_break_the_stream() {
    let app = spawn_app().await;
    let id = enqueue(&app, "odd").await;
    let path = app.state.logs.path(&id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let big = "b".repeat(1 << 20);
    let mut content = format!("first\n{big}\n").into_bytes();
    content.extend_from_slice(b"bad \xff\xc3 bytes\nlast\n");
    std::fs::write(&path, &content).unwrap();
    finish(&app, &id, Status::Passed).await;

    let mut sse = SseClient::connect(&app, &stream_path(&id), None).await;
    let mut lines = Vec::new();
    let mut last_id = None;
    loop {
        let event = sse.next().await.unwrap();
        if event.event == "end" {
            break;
        }
        lines.extend(event.data.split('\n').map(str::to_owned));
        last_id = event.id;
    }
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1], big);
    assert_eq!(lines[2], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(last_id, Some(content.len().to_string()));
}

#[tokio::test]
async fn a_thousand_idle_clients_all_get_the_line_and_the_end() {
    raise_fd_limit(8192);
    let app = spawn_app_with(
        "[worker]\nslots = 0\n[api]\nmax_sse_clients = 1000\nmax_sse_per_queue = 1000\n",
    )
    .await;
    let id = enqueue(&app, "crowd").await;
    let path = stream_path(&id);
    let connects = (0..1000).map(|_| SseClient::connect(&app, &path, None));
    let mut clients = futures_util::future::join_all(connects).await;
    app.state
        .store
        .transition(&id, Status::Running, None)
        .await
        .unwrap();
    let w = app.state.logs.writer(&id).unwrap();
    w.line("hello, everyone");
    w.close().await.unwrap();
    app.state
        .store
        .transition(&id, Status::Passed, None)
        .await
        .unwrap();
    let reads = clients.iter_mut().map(|c| c.read_to_end());
    for (text, end) in futures_util::future::join_all(reads).await {
        assert_eq!(text, "hello, everyone\n");
        assert_eq!(end, r#"{"status":"passed"}"#);
    }
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let app = spawn_app().await;
    let id = enqueue(&app, "bye").await;
    let mut sse = SseClient::connect(&app, &stream_path(&id), None).await;
    app.stop().await;
    assert!(sse.next().await.is_none());
}

#[tokio::test]
async fn the_plain_log_is_served_whole_as_a_tail_or_in_ranges() {
    let app = spawn_app().await;
    let id = enqueue(&app, "plain").await;
    let url = app.url(&format!("/api/queues/{id}/log"));
    let get = |extra: Option<(&'static str, &'static str)>, query: &'static str| {
        let mut req = app.client.get(format!("{url}{query}"));
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        req.send()
    };
    let empty = get(None, "").await.unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.text().await.unwrap(), "");

    let w = app.state.logs.writer(&id).unwrap();
    for l in ["one", "two", "three"] {
        w.line(l);
    }
    w.close().await.unwrap();
    let whole = get(None, "").await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(whole.text().await.unwrap(), "one\ntwo\nthree\n");
    let tail = get(None, "?tail=2").await.unwrap();
    assert_eq!(tail.text().await.unwrap(), "two\nthree\n");
    let part = get(Some(("Range", "bytes=4-6")), "").await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 4-6/14");
    assert_eq!(part.text().await.unwrap(), "two");
    let outside = get(Some(("Range", "bytes=100-200")), "").await.unwrap();
    assert_eq!(outside.status(), 416);
    let bad = get(None, "?tail=many").await.unwrap();
    assert_eq!(bad.status(), 400);
    let (status, body) = app.get_json("/api/queues/nope/log").await;
    assert_eq!(status, 404, "{body}");
}

/// The last `n` complete lines of `content`, the plain way.
fn naive_tail(content: &[u8], n: usize) -> Vec<u8> {
    let Some(last) = content.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let lines: Vec<&[u8]> = content[..=last].split_inclusive(|&b| b == b'\n').collect();
    lines[lines.len().saturating_sub(n)..].concat()
}

#[tokio::test]
async fn tail_of_a_big_log_is_exactly_its_last_lines() {
    let app = spawn_app().await;
    let get_tail = |id: QueueId, n: usize| {
        let request = app
            .client
            .get(app.url(&format!("/api/queues/{id}/log?tail={n}")));
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200, "tail={n}");
            assert_eq!(
                response.headers()["content-type"],
                "text/plain; charset=utf-8"
            );
            let length = response.content_length();
            let body = response.bytes().await.expect("body").to_vec();
            assert_eq!(length, Some(body.len() as u64), "tail={n}");
            (n, body)
        }
    };
    let write_log = |id: &QueueId, content: &[u8]| {
        let path = app.state.logs.path(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    };

    // About 24 MB: lines of 8 to 400 bytes, empty lines, lines longer than the blocks the server
    // reads, bytes that are not UTF-8, and a last line without its newline.
    let id = enqueue(&app, "bigtail").await;
    let mut content = Vec::with_capacity(25 << 20);
    let mut seed = 7u64;
    let mut i = 0usize;
    while content.len() < 24 << 20 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        match i % 40_000 {
            1 => {}
            2 => content.extend_from_slice(&vec![b'L'; 300_000]),
            _ => {
                content.extend_from_slice(format!("{i:07} ").as_bytes());
                let len = (seed >> 33) as usize % 392;
                content.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
                if i % 10_000 == 5 {
                    content.extend_from_slice(b" \xff\xfe");
                }
            }
        }
        content.push(b'\n');
        i += 1;
    }
    let lines = i;
    assert!(lines > 100_001, "more lines than the largest tail");
    content.extend_from_slice(b"a last line still being written");
    write_log(&id, &content);
    let ns = [0, 1, 2, 3, 1000, 40_000, 99_999, 100_000];
    let answers = futures_util::future::join_all(ns.map(|n| get_tail(id.clone(), n))).await;
    for (n, body) in answers {
        // Compared as bytes, and not with `assert_eq!`: they are megabytes long.
        let expected = naive_tail(&content, n);
        assert!(
            body == expected,
            "tail={n}: {} bytes, expected {}",
            body.len(),
            expected.len()
        );
    }

    // Fewer lines than asked for: every complete line.
    let small = enqueue(&app, "smalltail").await;
    write_log(&small, b"one\n\nthree\nfour");
    for n in [1, 2, 3, 4, 100_000] {
        let (_, body) = get_tail(small.clone(), n).await;
        assert_eq!(body, naive_tail(b"one\n\nthree\nfour", n), "tail={n}");
    }
    let (_, body) = get_tail(small.clone(), 100_000).await;
    assert_eq!(body, b"one\n\nthree\n");
    // A log with no complete line, and no log at all.
    write_log(&small, b"partial");
    assert!(get_tail(small.clone(), 5).await.1.is_empty());
    let none = enqueue(&app, "notail").await;
    assert!(get_tail(none, 5).await.1.is_empty());
    let (status, body) = app
        .get_json(&format!("/api/queues/{small}/log?tail=100001"))
        .await;
    assert_eq!(status, 400, "{body}");
}

/// `GET /metrics` as text.
pub async fn scrape(app: &TestApp) -> String {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Reads an HTTP answer's head (up to the blank line) from a raw socket, one byte at a time so
/// that nothing of the body is taken.
pub async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, socket.read_u8())
            .await
            .expect("the head in time")
            .expect("the head");
        head.push(byte);
    }
    String::from_utf8(head).expect("an ASCII head")
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_while_others_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with("[worker]\nslots = 0\n[api]\nsse_send_timeout = \"1s\"\n").await;
    let id = enqueue(&app, "deaf").await;
    app.state
        .store
        .transition(&id, Status::Running, None)
        .await
        .unwrap();
    let w = app.state.logs.writer(&id).unwrap();
    // A client that sends its request, reads the answer's head, then nothing more; its socket
    // takes little (a small receive buffer).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut deaf = socket.connect(app.addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        stream_path(&id),
        app.addr
    );
    deaf.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut deaf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut reader = SseClient::connect(&app, &stream_path(&id), None).await;

    // About 10 MB/s of lines until the server has dropped the client that does not read.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            for i in 0..2_000_000 {
                w.line(&format!("line {i:07} {}", "x".repeat(90)));
                if i % 500 == 499 {
                    pace.tick().await;
                    if stopped.try_recv().is_ok() {
                        break;
                    }
                }
            }
        })
    };
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut events = 0;
    loop {
        let event = reader
            .next()
            .await
            .expect("the reading client keeps streaming");
        assert_eq!(event.event, "log");
        text.push_str(&event.data);
        text.push('\n');
        events += 1;
        if events % 20 == 0 {
            let metrics = scrape(&app).await;
            let has = |line: &str| metrics.lines().any(|l| l == line);
            if has("testarena_sse_dropped_total{stream=\"log\"} 1")
                && has("testarena_sse_clients{stream=\"log\"} 1")
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client that does not read was never dropped:\n{}",
            scrape(&app).await
        );
    }
    let _ = stop.send(());
    writer.await.unwrap();

    // Its connection is closed: it gets what its socket still holds, then the end.
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(WAIT, async {
        while let Ok(n) = deaf.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection");

    // The other client got, and gets, every line.
    w.close().await.unwrap();
    app.state
        .store
        .transition(&id, Status::Passed, None)
        .await
        .unwrap();
    let (rest, end) = reader.read_to_end().await;
    text.push_str(&rest);
    assert_eq!(end, r#"{"status":"passed"}"#);
    assert!(text == file(&app, &id), "the reading client's copy differs");
}

/// Lets the test hold a few thousand sockets.
pub fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

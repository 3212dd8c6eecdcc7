//! A minimal W3C WebDriver client for chromedriver: start it on a free port, open a headless
//! Chromium session, navigate, run scripts, wait for conditions, click, type, take screenshots.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::WAIT;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A Chromium session; chromedriver (and the browser under it) is killed on drop.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                panic!(
                    "{bin} is missing: the dashboard tests need a real browser; install Debian's \
                     `chromium` and `chromium-driver` packages (scripts/test does){}",
                    if ci { " — CI must provide them" } else { "" }
                );
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let stdout = driver.stdout.take().expect("chromedriver stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("chromedriver ready within 20 s")
            .expect("chromedriver ready");
        let profile = tempfile::tempdir().expect("profile dir");
        let http = testarena::http_client()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "timeouts": {"script": 120_000, "pageLoad": 60_000},
        }}});
        let r = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = r.json().await.expect("session json");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let r = req.send().await.expect("webdriver request");
        let status = r.status();
        let v: Value = r.json().await.expect("webdriver json");
        assert!(
            status.is_success(),
            "webdriver {path}: {status}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.cmd(reqwest::Method::POST, "/window/rect", rect).await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn exec(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.cmd(reqwest::Method::POST, "/execute/sync", body).await
    }

    /// Runs `script`, which calls its last argument with the result.
    pub async fn exec_async(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.cmd(reqwest::Method::POST, "/execute/async", body)
            .await
    }

    /// Waits in the page until `condition` (a function body) returns a truthy value, and
    /// returns it; fails with `what` and the page's text after [`WAIT`].
    pub async fn wait_for(&self, what: &str, condition: &str) -> Value {
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            const limit = arguments[0];
            const cond = () => {{ {condition} }};
            const t0 = performance.now();
            const poll = () => {{
              let v = null;
              try {{ v = cond(); }} catch (e) {{ v = null; }}
              if (v) return done({{ ok: true, value: v }});
              if (performance.now() - t0 > limit) {{
                const text = document.body ? document.body.innerText : '';
                return done({{ ok: false, value: text.length > 4000 ? text.slice(0, 2000) + '\n…\n' + text.slice(-2000) : text }});
              }}
              setTimeout(poll, 20);
            }};
            poll();"#
        );
        let body = json!({"script": script, "args": [WAIT.as_millis() as u64]});
        let v = self
            .cmd(reqwest::Method::POST, "/execute/async", body)
            .await;
        assert!(
            v["ok"] == true,
            "waited {WAIT:?} for {what}; the page shows:\n{}",
            v["value"].as_str().unwrap_or("")
        );
        v["value"].clone()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    /// Replaces the value of an input with `text`, typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            json!({}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn press_enter(&self, css: &str) {
        let e = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": "\u{E007}"}),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &Path) {
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64(v.as_str().expect("base64 png"));
        std::fs::create_dir_all(path.parent().expect("dir")).expect("screenshot dir");
        std::fs::write(path, png).expect("screenshot written");
    }

    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session if `quit` did not (a failed test), then the whole process group.
        if let Ok(mut s) = std::net::TcpStream::connect(self.base.trim_start_matches("http://")) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = std::io::Read::read(&mut s, &mut [0; 512]);
        }
        // SAFETY: a plain signal to the process group we created for chromedriver.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (what WebDriver screenshots are).
fn base64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = ((acc << 6) | u32::from(v)) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

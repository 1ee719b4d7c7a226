//! Test harness: starts the real `sluice` binary with a generated config, talks to it over
//! loopback with a small HTTP/1.1 client that can observe streams chunk by chunk, and runs
//! in-process mock providers (`sluice_mock`).

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(unused_imports)]
pub use sluice_mock::{Behaviour, Fault, MockProvider};

pub mod postgres;
pub mod redis;
mod sdk;
mod sse;
#[allow(unused_imports)]
pub use sdk::*;
#[allow(unused_imports)]
pub use sse::*;

/// The gateway key every test config defines (obviously fake).
pub const KEY: &str = "sk-test-gateway-key-aaaa";
/// A second key, allowed only `gpt-*` models.
pub const LIMITED_KEY: &str = "sk-test-limited-key-bbbb";
/// The provider key the gateway sends upstream (obviously fake).
pub const PROVIDER_KEY: &str = "sk-test-provider-key-cccc";

/// A port that is free now and that no other caller in this test process has been given:
/// gateways started side by side by parallel tests never pick the same port (one's admin
/// listener could otherwise answer for another's client listener while that one retries).
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    /// Processes replaced by [`Gateway::upgrade`], still draining.
    old: Vec<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    /// Environment variables set for sluice (besides the test's own).
    env: Vec<(String, String)>,
}

/// A config with one OpenAI-compatible provider at `upstream` and models `gpt-4o-mini`
/// (→ `upstream-gpt`), `embed` (→ `upstream-embed`) and `other-model`.
pub fn standard_config(upstream: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
  - {{ name: limited, key: {LIMITED_KEY}, models: ["gpt-*"] }}
providers:
  mock: {{ kind: openai_compatible, base_url: "{upstream}/v1", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: mock, model: upstream-gpt }}
  embed:
    - {{ provider: mock, model: upstream-embed }}
  other-model:
    - {{ provider: mock, model: upstream-other }}
"#
    )
}

impl Gateway {
    /// Starts sluice with `body` (a config without `listen`/`admin`/`server`, which are
    /// generated) and waits until it answers.
    pub fn start(body: &str) -> Gateway {
        Self::start_inner(body, "", "", &[])
    }

    /// Like [`Gateway::start`], with these environment variables set for sluice.
    pub fn start_with_env(body: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_inner(body, "", "", env)
    }

    /// Like [`Gateway::start`], with `admin.token` set.
    pub fn start_with_admin_token(body: &str, token: &str) -> Gateway {
        Self::start_inner(body, &format!("  token: {token}\n"), "", &[])
    }

    /// Like [`Gateway::start`], with more keys under `admin:` besides `listen` (e.g.
    /// `"  allow: [10.0.0.0/8]\n"`).
    pub fn start_with_admin(body: &str, admin: &str) -> Gateway {
        Self::start_inner(body, admin, "", &[])
    }

    /// Like [`Gateway::start`], with more keys under `server:` (e.g.
    /// `"  max_connections: 5\n"`).
    pub fn start_with_server(body: &str, server: &str) -> Gateway {
        Self::start_inner(body, "", server, &[])
    }

    fn start_inner(body: &str, admin: &str, server: &str, env: &[(&str, &str)]) -> Gateway {
        // A port found free can be taken by another test before sluice binds it; sluice then
        // refuses to start, and the start is retried on other ports.
        for _ in 0..5 {
            if let Some(gw) = Self::try_start(body, admin, server, env) {
                return gw;
            }
        }
        panic!("sluice could not bind free ports five times in a row");
    }

    fn try_start(body: &str, admin: &str, server: &str, env: &[(&str, &str)]) -> Option<Gateway> {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "listen: 127.0.0.1:{port}\nadmin:\n  listen: 127.0.0.1:{admin_port}\n{admin}\
             allow_inline_secrets: true\nserver:\n  threads: 2\n  pid_file: {pid}\n  upgrade_sock: {sock}\n  grace_period: 30s\n  graceful_shutdown_timeout: 1s\n{server}{body}",
            pid = dir.path().join("sluice.pid").display(),
            sock = dir.path().join("upgrade.sock").display(),
        );
        // Active health checks would add their own requests to the mocks' counts; tests that
        // are about them configure `health:` themselves.
        let yaml = if body.contains("\nhealth:") {
            yaml
        } else {
            format!("{yaml}health:\n  check:\n    enabled: false\n")
        };
        let cfg = dir.path().join("sluice.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let env: Vec<_> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = spawn(dir.path(), false, &env);
        let mut gw = Gateway {
            child,
            old: Vec::new(),
            port,
            admin_port,
            dir,
            env,
        };
        match gw.wait_ready() {
            Ok(()) => Some(gw),
            Err(log) if log.contains("cannot listen on") => None,
            Err(log) => panic!("sluice exited during start-up:\n{log}"),
        }
    }

    /// Zero-downtime upgrade: starts a new process with `--upgrade`, then tells the current
    /// one to hand over its sockets (SIGQUIT). Returns once the old process has been told.
    pub fn upgrade(&mut self) {
        let new = spawn(self.dir.path(), true, &self.env);
        // The new process waits on the upgrade socket; give it a moment to start listening.
        std::thread::sleep(Duration::from_millis(500));
        self.signal("QUIT");
        let old = std::mem::replace(&mut self.child, new);
        self.old.push(old);
        if let Err(log) = self.wait_ready() {
            panic!("the upgraded sluice exited:\n{log}");
        }
    }

    /// Sends a signal (e.g. "TERM") to the current process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the current process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Whether every replaced process has exited.
    pub fn old_processes_exited(&mut self) -> bool {
        self.old.iter_mut().all(|c| c.try_wait().unwrap().is_some())
    }

    /// Waits until both listeners accept connections; `Err(log)` if sluice exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return Err(self.log());
            }
            let up = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).is_ok();
            if up {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything sluice wrote so far: its log (stderr), then its access log (stdout).
    pub fn log(&self) -> String {
        let mut s = String::new();
        for name in ["sluice.log", "access.log"] {
            if let Ok(mut f) = std::fs::File::open(self.dir.path().join(name)) {
                let _ = f.read_to_string(&mut s);
            }
        }
        s
    }

    /// Everything sluice wrote (as [`Self::log`]) once the access log holds every request
    /// answered so far: its lines are written in batches after the responses. A marker
    /// request (unauthenticated, refused) is made and its line awaited; the lines before it
    /// are written by then. For tests that check what the logs must never contain.
    pub async fn settled_log(&self) -> String {
        static MARKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MARKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("log-marker-{n}");
        let r = request(
            self.port,
            "GET",
            "/v1/models",
            &[("x-request-id", &marker)],
            b"",
        )
        .await;
        assert_eq!(r.status, 401, "the marker request is refused");
        assert!(
            eventually(Duration::from_secs(10), || self
                .access_log()
                .iter()
                .any(|l| l["request_id"] == marker.as_str()))
            .await,
            "the marker request was not logged:\n{}",
            self.log()
        );
        self.log()
    }

    /// The access log so far, one JSON object per request. Panics on a line that is not JSON.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for c in self.old.iter_mut().chain(std::iter::once(&mut self.child)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(dir: &std::path::Path, upgrade: bool, env: &[(String, String)]) -> Child {
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap()
    };
    let (log, access) = (open("sluice.log"), open("access.log"));
    let mut cmd = Command::new(bin());
    cmd.args(["run", "-c"]).arg(dir.join("sluice.yaml"));
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(access)
        .stderr(log)
        .spawn()
        .expect("start sluice")
}

/// A response read to the end.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI-shaped error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
        assert_eq!(e["code"], code, "{v}");
        v
    }
}

/// An HTTP/1.1 response being read as it arrives.
pub struct Streaming {
    sock: TcpStream,
    buf: Vec<u8>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    chunked: bool,
    remaining: Option<usize>,
    done: bool,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match self.sock.read(&mut tmp).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// The next piece of body as it arrived (one chunk of chunked framing); `None` at the
    /// end or when the connection closed.
    pub async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        if !self.chunked {
            if self.remaining == Some(0) {
                self.done = true;
                return None;
            }
            if self.buf.is_empty() && !self.fill().await {
                self.done = true;
                return None;
            }
            let take = self
                .remaining
                .map_or(self.buf.len(), |r| r.min(self.buf.len()));
            if let Some(r) = self.remaining.as_mut() {
                *r -= take;
            }
            return Some(self.buf.drain(..take).collect());
        }
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).to_string();
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .expect("chunk size");
                if size == 0 {
                    self.done = true;
                    return None;
                }
                if self.buf.len() >= pos + 2 + size + 2 {
                    let data = self.buf[pos + 2..pos + 2 + size].to_vec();
                    self.buf.drain(..pos + 2 + size + 2);
                    return Some(data);
                }
            }
            if !self.fill().await {
                self.done = true;
                return None;
            }
        }
    }

    /// Whether the body ended with its proper terminator (as opposed to a cut connection).
    pub fn ended_cleanly(&self) -> bool {
        self.done
    }

    /// Reads the rest of the body.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk().await {
            out.extend_from_slice(&c);
        }
        out
    }
}

/// Sends a request and returns once the response header has arrived.
pub async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Streaming {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        has_len |=
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let _ = sock.write_all(body).await;
    read_head(sock).await
}

async fn read_head(mut sock: TcpStream) -> Streaming {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), sock.read(&mut tmp))
            .await
            .expect("response header within 30s")
            .unwrap_or(0);
        assert!(
            n > 0,
            "connection closed before a response header: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hs);
        if let httparse::Status::Complete(len) = resp.parse(&buf).unwrap() {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let chunked = headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
            let remaining = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap());
            buf.drain(..len);
            return Streaming {
                sock,
                buf,
                status,
                headers,
                chunked,
                remaining,
                done: false,
            };
        }
    }
}

/// Sends a request and reads the whole response.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    read_all(send(port, method, path, headers, body).await).await
}

/// Sends `wire` on an open connection and reads the whole response; the connection comes
/// back for the next request (keep-alive).
pub async fn exchange_on(mut sock: TcpStream, wire: &[u8]) -> (Response, TcpStream) {
    sock.write_all(wire).await.unwrap();
    let mut s = read_head(sock).await;
    let body = tokio::time::timeout(Duration::from_secs(30), s.rest())
        .await
        .expect("response body within 30s");
    let r = Response {
        status: s.status,
        headers: std::mem::take(&mut s.headers),
        body,
    };
    (r, s.sock)
}

/// Reads the rest of a response.
pub async fn read_all(mut s: Streaming) -> Response {
    let body = tokio::time::timeout(Duration::from_secs(30), s.rest())
        .await
        .expect("response body within 30s");
    Response {
        status: s.status,
        headers: s.headers.clone(),
        body,
    }
}

/// GETs `path` with `key` as the bearer token.
pub async fn get(port: u16, path: &str, key: &str) -> Response {
    let auth = format!("Bearer {key}");
    request(port, "GET", path, &[("authorization", &auth)], b"").await
}

/// POSTs JSON with the standard gateway key.
pub async fn post(port: u16, path: &str, body: &serde_json::Value) -> Response {
    read_all(post_stream(port, path, body).await).await
}

/// POSTs a chat-completions body with `key` as the bearer token.
pub async fn post_chat_as(port: u16, key: &str, body: &serde_json::Value) -> Response {
    let auth = format!("Bearer {key}");
    request(
        port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

/// A whole chat-completions request as raw HTTP/1.1 bytes, with the standard key, for tests
/// that drive the socket themselves.
pub fn raw_chat_request(body: &serde_json::Value) -> String {
    let b = body.to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
        b.len()
    )
}

/// A raw request from [`raw_chat_request`] that asks for the connection to be closed after
/// its answer.
pub fn closing(wire: &str) -> String {
    wire.replacen("host: x\r\n", "host: x\r\nconnection: close\r\n", 1)
}

/// POSTs JSON with the standard key and returns the response as it streams.
pub async fn post_stream(port: u16, path: &str, body: &serde_json::Value) -> Streaming {
    let auth = format!("Bearer {KEY}");
    send(
        port,
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

/// Polls `cond` for up to `timeout`.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

pub fn chat(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello"}]
    })
}

/// A non-stream chat completion for `gpt-4o-mini` that must succeed.
pub async fn chat_ok(port: u16) -> Response {
    let r = post(port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

pub async fn mock() -> MockProvider {
    MockProvider::start("127.0.0.1:0", Behaviour::default())
        .await
        .unwrap()
}

/// A mock whose answers are `reply`, streamed a chunk every `gap`: a stream that stays open
/// long enough to act on while it runs.
pub async fn paced_mock(reply: String, gap: Duration) -> MockProvider {
    let behaviour = Behaviour {
        reply: Some(reply),
        gap,
        ..Behaviour::default()
    };
    MockProvider::start("127.0.0.1:0", behaviour).await.unwrap()
}

/// `s` spelled in Unicode tag characters (U+E0020–U+E007E), invisible when rendered.
pub fn tags(s: &str) -> String {
    s.chars()
        .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
        .collect()
}

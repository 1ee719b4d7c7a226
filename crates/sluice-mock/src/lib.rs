//! A mock OpenAI-compatible provider, for the demo config, the integration tests and the bench.
//!
//! It speaks enough of the OpenAI API (`/chat/completions` whole and streamed, `/embeddings`,
//! `/models`, under any path prefix) to stand in for a real provider — and of OpenAI's
//! Responses, Anthropic's Messages, Gemini's generateContent and Ollama's native API (one
//! module each; this one holds the server, the faults and the dispatch) — and can inject the
//! faults
//! real providers show: error statuses with `Retry-After`, stalls before the first byte and
//! mid-stream, disconnects, truncated streams, garbage, error events inside a 200 stream, and
//! events split across TCP writes. It records every request it receives so tests can assert on
//! what the gateway sent.
//!
//! It is a plain HTTP/1.1 server on tokio, written to be cheap enough never to be the
//! bottleneck of a benchmark. It is a crate of its own and uses no part of sluice, so what
//! it answers is written from each provider's API, never produced by sluice's translators.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod anthropic;
mod gemini;
mod ollama;
mod openai;
mod responses;

use anthropic::anthropic_messages;
use gemini::gemini_generate;
use ollama::{ollama_chat, ollama_embed};
use openai::{embeddings, stream_chat, whole_chat};
use responses::responses_create;

/// How the mock answers, when no fault applies.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Fixed answer text; `None` echoes the last user message.
    pub reply: Option<String>,
    /// Delay before the response header.
    pub ttft: Duration,
    /// Delay between stream chunks.
    pub gap: Duration,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub expected_key: Option<String>,
    /// Keep every request for [`MockProvider::requests`]; off for load tests, where only the
    /// count is kept.
    pub record: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            reply: None,
            ttft: Duration::ZERO,
            gap: Duration::ZERO,
            expected_key: None,
            record: true,
        }
    }
}

/// A fault injected into one response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and body (and `Retry-After` when given).
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// Wait this long before sending anything.
    StallBeforeHeaders(Duration),
    /// Send this many stream chunks, then go silent for the duration.
    StallAfterChunks(usize, Duration),
    /// Send this many stream chunks, then close the socket (no chunked terminator).
    DisconnectAfterChunks(usize),
    /// Send this many stream chunks, then end the body cleanly without `[DONE]`.
    TruncateAfterChunks(usize),
    /// Answer 200 with a body that is not JSON (or, for streams, an event that is not JSON).
    Garbage,
    /// Send this many stream chunks, then an `{"error": ...}` event.
    ErrorEventAfterChunks(usize),
    /// Like `ErrorEventAfterChunks`, with this message in an OpenAI-shaped error event.
    ErrorEventSaying(usize, String),
    /// Write the stream in pieces of this many bytes, so events and UTF-8 characters split.
    SplitEvery(usize),
    /// Answer a streaming request with a whole JSON completion, as some servers do.
    IgnoreStream,
    /// Send the whole stream including `[DONE]`, then keep the body open this long.
    HoldAfterDone(Duration),
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Behaviour>,
    faults: Mutex<VecDeque<Fault>>,
    sticky: Mutex<Option<Fault>>,
    requests: Mutex<Vec<Recorded>>,
    request_count: AtomicUsize,
    conns_open: AtomicUsize,
    conns_total: AtomicUsize,
    streams_completed: AtomicUsize,
    streams_aborted: AtomicUsize,
}

/// A running mock provider. It stops when the runtime it was started on stops.
#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl MockProvider {
    /// Binds `addr` (use port 0 for any free port) and serves on the current tokio runtime.
    pub async fn start(addr: &str, behaviour: Behaviour) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        *state.behaviour.lock().unwrap() = behaviour;
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    st.conns_open.fetch_add(1, Ordering::SeqCst);
                    st.conns_total.fetch_add(1, Ordering::SeqCst);
                    let _ = serve_conn(sock, &st).await;
                    st.conns_open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(MockProvider { addr, state })
    }

    /// `http://ADDR` — use as a provider `base_url` (any path prefix works).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    /// Queues a fault for the next request (faults apply in order, one per request).
    pub fn push_fault(&self, f: Fault) {
        self.state.faults.lock().unwrap().push_back(f);
    }

    /// Applies a fault to every request until cleared with `None`.
    pub fn set_sticky_fault(&self, f: Option<Fault>) {
        *self.state.sticky.lock().unwrap() = f;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests received so far (counted even when not recorded).
    pub fn request_count(&self) -> usize {
        self.state.request_count.load(Ordering::SeqCst)
    }

    /// Connections currently open to the mock.
    pub fn open_connections(&self) -> usize {
        self.state.conns_open.load(Ordering::SeqCst)
    }

    /// Connections accepted since start.
    pub fn total_connections(&self) -> usize {
        self.state.conns_total.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn streams_completed(&self) -> usize {
        self.state.streams_completed.load(Ordering::SeqCst)
    }

    /// Streams whose reader went away before the end.
    pub fn streams_aborted(&self) -> usize {
        self.state.streams_aborted.load(Ordering::SeqCst)
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    close: bool,
}

async fn read_request(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let find = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                let len: usize = find("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let _ = buf.split_to(head_len);
                while buf.len() < len {
                    if sock.read_buf(buf).await? == 0 {
                        return Ok(None);
                    }
                }
                let body = buf.split_to(len).freeze();
                return Ok(Some(Request {
                    method,
                    path,
                    headers,
                    body,
                    close,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > 1 << 20 {
                    return Ok(None);
                }
                if sock.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
    }
}

async fn serve_conn(mut sock: TcpStream, st: &State) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(8192);
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        st.request_count.fetch_add(1, Ordering::SeqCst);
        if st.behaviour.lock().unwrap().record {
            st.requests.lock().unwrap().push(Recorded {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
            });
        }
        let keep = respond(&mut sock, &req, st).await?;
        if !keep || req.close {
            break;
        }
    }
    Ok(())
}

fn head(status: u16, content_type: &str, extra: &str, len: Option<usize>) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let framing = match len {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_string(),
    };
    format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n{framing}{extra}\r\n")
}

async fn send_whole(
    sock: &mut TcpStream,
    status: u16,
    extra: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = head(status, "application/json", extra, Some(body.len())).into_bytes();
    out.extend_from_slice(body);
    sock.write_all(&out).await
}

fn error_body(message: &str, kind: &str, code: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

/// Answers one request; returns whether the connection may carry another.
async fn respond(sock: &mut TcpStream, req: &Request, st: &State) -> std::io::Result<bool> {
    let behaviour = st.behaviour.lock().unwrap().clone();
    let fault = st
        .faults
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| st.sticky.lock().unwrap().clone())
        .or_else(|| prompt_fault(&req.body));

    if let Some(key) = &behaviour.expected_key {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str());
        let x_api_key = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
            .map(|(_, v)| v.as_str());
        if auth != Some(format!("Bearer {key}").as_str()) && x_api_key != Some(key.as_str()) {
            let shown = auth.unwrap_or("").trim_start_matches("Bearer ");
            let body = error_body(
                &format!("Incorrect API key provided: {shown}. You can find your API key at the provider's dashboard."),
                "invalid_request_error",
                "invalid_api_key",
            );
            send_whole(sock, 401, "", body.as_bytes()).await?;
            return Ok(true);
        }
    }

    match &fault {
        Some(Fault::StallBeforeHeaders(d)) if !wait_unless_closed(sock, *d).await => {
            return Ok(false);
        }
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            let extra = retry_after
                .as_ref()
                .map(|r| format!("retry-after: {r}\r\n"))
                .unwrap_or_default();
            send_whole(sock, *status, &extra, body.as_bytes()).await?;
            return Ok(true);
        }
        _ => {}
    }
    if !behaviour.ttft.is_zero() && !wait_unless_closed(sock, behaviour.ttft).await {
        return Ok(false);
    }

    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let path = req.path.split('?').next().unwrap_or("");
    if req.method == "GET" && path.ends_with("/api/tags") {
        let b = json!({"models": [{"name": "mock-model:latest", "model": "mock-model:latest", "size": 0}]});
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    if req.method == "GET" && path.ends_with("/models") {
        let b = json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}]});
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    if req.method != "POST" {
        let b = error_body("not found", "invalid_request_error", "unknown_url");
        send_whole(sock, 404, "", b.as_bytes()).await?;
        return Ok(true);
    }
    if path.ends_with("/embeddings") {
        return embeddings(sock, &body, fault.as_ref()).await;
    }
    if path.contains(":batchEmbedContents") {
        let n = body
            .get("requests")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let embeddings: Vec<Value> = (0..n)
            .map(|i| json!({"values": [0.1, -0.2, i as f64]}))
            .collect();
        let b = json!({"embeddings": embeddings});
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        let stream = path.contains(":streamGenerateContent");
        return gemini_generate(sock, &body, stream, &behaviour, fault.as_ref(), st).await;
    }
    if path.ends_with("/api/chat") {
        return ollama_chat(sock, &body, &behaviour, fault.as_ref(), st).await;
    }
    if path.ends_with("/api/embed") {
        return ollama_embed(sock, &body).await;
    }
    if path.ends_with("/responses") {
        return responses_create(sock, &body, &behaviour, fault.as_ref(), st).await;
    }
    if path.ends_with("/messages/count_tokens") {
        let b = json!({"input_tokens": prompt_tokens(&body)});
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    if path.ends_with("/messages") {
        return anthropic_messages(sock, req, &body, &behaviour, fault.as_ref(), st).await;
    }
    if !path.ends_with("/chat/completions") {
        let b = error_body("not found", "invalid_request_error", "unknown_url");
        send_whole(sock, 404, "", b.as_bytes()).await?;
        return Ok(true);
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true)
        && fault != Some(Fault::IgnoreStream)
    {
        stream_chat(sock, &body, &behaviour, fault.as_ref(), st).await
    } else {
        whole_chat(sock, &body, &behaviour, fault.as_ref()).await
    }
}

/// Sleeps for `d`; returns false early if the peer closes the connection meanwhile.
async fn wait_unless_closed(sock: &mut TcpStream, d: Duration) -> bool {
    let mut probe = [0u8; 1];
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    tokio::select! {
        _ = &mut sleep => true,
        r = sock.peek(&mut probe) => match r {
            Ok(0) | Err(_) => false,
            // A pipelined request: keep waiting the full time.
            Ok(_) => {
                sleep.await;
                true
            }
        },
    }
}

fn reply_text(body: &Value, behaviour: &Behaviour) -> String {
    if let Some(r) = &behaviour.reply {
        return r.clone();
    }
    if let Some(contents) = body.get("contents").and_then(Value::as_array) {
        let last_user = contents
            .iter()
            .rev()
            .find(|c| c.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|c| c.pointer("/parts/0/text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return echo(last_user);
    }
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    echo(&last_user)
}

/// The answer without a fixed reply: (the start of) the last user message, echoed.
fn echo(last_user: &str) -> String {
    let shown: String = last_user.chars().take(200).collect();
    format!("Hello from the sluice mock provider! You said: {shown}")
}

/// The answer as the mock streams it, one word (with its trailing space) per delta; each
/// word counts as one output token.
fn reply_words(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

/// A fault asked for in the prompt itself, so that a client that cannot reach the mock's
/// controls (an SDK script, an external test) can still see one: a request whose body
/// contains `sluice-mock-fault:error-mid-stream` gets an error event after three events of
/// its stream; `sluice-mock-fault:garbage` gets a body that is not JSON.
fn prompt_fault(body: &[u8]) -> Option<Fault> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if has(b"sluice-mock-fault:error-mid-stream") {
        Some(Fault::ErrorEventAfterChunks(3))
    } else if has(b"sluice-mock-fault:garbage") {
        Some(Fault::Garbage)
    } else {
        None
    }
}

/// The arguments of every tool call the mock makes.
const TOOL_ARGUMENTS: &str = r#"{"city":"Paris","unit":"celsius"}"#;

/// [`TOOL_ARGUMENTS`] as the two deltas a stream sends them in.
fn tool_argument_deltas() -> [&'static str; 2] {
    let (a, b) = TOOL_ARGUMENTS.split_at(9);
    [a, b]
}

/// The creation time of every answer (Unix seconds).
const CREATED: u64 = 1_700_000_000;

/// The name of the first function in an OpenAI-shaped `tools` list.
fn first_tool(body: &Value) -> Option<String> {
    body.pointer("/tools/0/function/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Input tokens: the whitespace-separated words of the conversation as JSON, at least one.
fn prompt_tokens(body: &Value) -> u64 {
    body.get("messages").map_or(0, words_in).max(1)
}

/// The whitespace-separated words of `v` as JSON.
fn words_in(v: &Value) -> u64 {
    v.to_string().split_whitespace().count() as u64
}

fn model_of(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}

/// One SSE event with an `event:` line.
fn sse_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

async fn write_chunked(sock: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    sock.write_all(&out).await
}

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson` (Ollama).
    Ndjson,
}

/// Sends SSE `events` as a chunked 200 response, applying a stream fault.
async fn send_events(
    sock: &mut TcpStream,
    events: Vec<String>,
    error_event: &str,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    send_framed(
        sock,
        Framing::Sse,
        events,
        error_event,
        behaviour,
        fault,
        st,
    )
    .await
}

/// Sends stream `events` (each already framed) as a chunked 200 response, applying a fault.
async fn send_framed(
    sock: &mut TcpStream,
    framing: Framing,
    mut events: Vec<String>,
    error_event: &str,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    let cut = match fault {
        Some(
            Fault::StallAfterChunks(n, _)
            | Fault::DisconnectAfterChunks(n)
            | Fault::TruncateAfterChunks(n)
            | Fault::ErrorEventAfterChunks(n)
            | Fault::ErrorEventSaying(n, _),
        ) => Some((*n).min(events.len())),
        Some(Fault::Garbage) => Some(1),
        _ => None,
    };
    if let Some(n) = cut {
        events.truncate(n);
        match fault {
            Some(Fault::Garbage) => events.push(match framing {
                Framing::Sse => "data: {not json at all\n\n".into(),
                Framing::Ndjson => "{not json at all\n".into(),
            }),
            Some(Fault::ErrorEventAfterChunks(_)) => events.push(error_event.to_string()),
            Some(Fault::ErrorEventSaying(_, message)) => events.push(format!(
                "data: {}\n\n",
                error_body(message, "server_error", "server_error")
            )),
            _ => {}
        }
    }
    let pieces: Vec<Vec<u8>> = match fault {
        Some(Fault::SplitEvery(n)) => events
            .concat()
            .into_bytes()
            .chunks((*n).max(1))
            .map(<[u8]>::to_vec)
            .collect(),
        _ => events.into_iter().map(String::into_bytes).collect(),
    };

    sock.write_all(
        head(
            200,
            match framing {
                Framing::Sse => "text/event-stream; charset=utf-8",
                Framing::Ndjson => "application/x-ndjson",
            },
            "cache-control: no-cache\r\n",
            None,
        )
        .as_bytes(),
    )
    .await?;
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 && !behaviour.gap.is_zero() {
            tokio::time::sleep(behaviour.gap).await;
        }
        if let Err(e) = write_chunked(sock, p).await {
            st.streams_aborted.fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
        if matches!(fault, Some(Fault::SplitEvery(_))) {
            // Give each piece its own TCP segment so the gateway reads them separately.
            sock.flush().await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match fault {
        Some(Fault::StallAfterChunks(_, d) | Fault::HoldAfterDone(d)) => {
            // Keep the connection silent; notice if the reader goes away meanwhile.
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = tokio::time::sleep(*d) => {}
                _ = sock.read(&mut probe) => {}
            }
            return Ok(false);
        }
        Some(Fault::DisconnectAfterChunks(_)) => {
            sock.shutdown().await.ok();
            return Ok(false);
        }
        _ => {}
    }
    if let Err(e) = sock.write_all(b"0\r\n\r\n").await {
        st.streams_aborted.fetch_add(1, Ordering::SeqCst);
        return Err(e);
    }
    st.streams_completed.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

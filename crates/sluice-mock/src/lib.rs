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

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

mod anthropic;
mod gemini;
mod http;
mod ollama;
mod openai;
mod reply;
mod responses;

use anthropic::anthropic_messages;
use gemini::gemini_generate;
use http::*;
use ollama::{ollama_chat, ollama_embed};
use openai::{embeddings, stream_chat, whole_chat};
use reply::*;
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
    /// Answer normally (keep-alive, as always), then close the connection: a server whose
    /// idle timeout ends a kept-alive connection between two requests.
    CloseAfterResponse,
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

/// Answers one request; returns whether the connection may carry another.
async fn respond(sock: &mut TcpStream, req: &Request, st: &State) -> std::io::Result<bool> {
    let fault = st
        .faults
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| st.sticky.lock().unwrap().clone())
        .or_else(|| prompt_fault(&req.body));
    if fault == Some(Fault::CloseAfterResponse) {
        respond_to(sock, req, st, None).await?;
        return Ok(false);
    }
    respond_to(sock, req, st, fault).await
}

async fn respond_to(
    sock: &mut TcpStream,
    req: &Request,
    st: &State,
    fault: Option<Fault>,
) -> std::io::Result<bool> {
    let behaviour = st.behaviour.lock().unwrap().clone();

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

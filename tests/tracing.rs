//! OpenTelemetry traces: sluice exports its spans over OTLP/HTTP to a real receiver
//! (`tests/otlp/receiver.py`), which decodes them with the official protobuf definitions
//! (PyPI `opentelemetry-proto`, installed by the README's setup command). Without that
//! module the tests pass with a "skipped" note, unless `SLUICE_REQUIRE_OTLP=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The words of every prompt here: none may appear in an exported span.
const PROMPT: &str = "Describe the zebra quartz lighthouse";
const OTLP_TOKEN: &str = "Bearer test-otlp-token-not-real";

/// The OTLP receiver, running as a child process.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver answering `status`; `None` (the test skips) when Python's
    /// OpenTelemetry protobuf module is missing and it is not required.
    fn start(status: u16) -> Option<Receiver> {
        let have = Command::new("python3")
            .args([
                "-c",
                "import opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                std::env::var("SLUICE_REQUIRE_OTLP").as_deref() != Ok("1"),
                "SLUICE_REQUIRE_OTLP=1 but python3 cannot import opentelemetry.proto \
                 (README: Setup installs tests/sdk/requirements.txt)"
            );
            eprintln!(
                "skipped: python3 has no opentelemetry-proto (set SLUICE_REQUIRE_OTLP=1 to fail)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .args(["--status", &status.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Some(Receiver {
            child,
            port,
            out,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything exported so far, as the receiver wrote it.
    fn raw(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn spans(&self) -> Vec<Value> {
        self.raw()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The export requests received (path, content type, header names, status).
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.out.with_extension("jsonl.requests"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The spans of the trace whose SERVER span has `sluice.request_id` = `id`, once its
    /// `n` spans have arrived: (server span, client spans in order).
    async fn trace(&self, request_id: &str, n: usize) -> (Value, Vec<Value>) {
        let find = || {
            let spans = self.spans();
            let server = spans
                .iter()
                .find(|s| s["attributes"]["sluice.request_id"] == request_id)?
                .clone();
            let mut clients: Vec<Value> = spans
                .iter()
                .filter(|s| s["trace_id"] == server["trace_id"] && s["kind"] == "CLIENT")
                .cloned()
                .collect();
            clients.sort_by_key(|s| s["attributes"]["sluice.attempt"].as_i64());
            (1 + clients.len() == n).then_some((server, clients))
        };
        assert!(
            eventually(Duration::from_secs(20), || find().is_some()).await,
            "the trace of {request_id} with {n} spans; exported: {}",
            self.raw()
        );
        let found = find().unwrap();
        // Nothing the client or the provider wrote is exported.
        let raw = self.raw().to_lowercase();
        for word in PROMPT.to_lowercase().split(' ').filter(|w| w.len() > 4) {
            assert!(!raw.contains(word), "{word:?} was exported: {raw}");
        }
        found
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tracing(endpoint: &str) -> String {
    format!("tracing:\n  otlp_endpoint: {endpoint}\n  sample_ratio: 1.0\n  headers: {{ authorization: ${{OTLP_AUTH}} }}\n")
}

fn start(config: &str, endpoint: &str) -> Gateway {
    Gateway::start_with_env(
        &format!("{config}{}", tracing(endpoint)),
        &[("OTLP_AUTH", OTLP_TOKEN)],
    )
}

fn ask(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
}

/// POSTs a chat request with extra headers; the response.
async fn chat_with(port: u16, body: &Value, headers: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {KEY}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(headers);
    request(
        port,
        "POST",
        "/v1/chat/completions",
        &h,
        body.to_string().as_bytes(),
    )
    .await
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_request_is_one_server_span_with_its_attempt_and_genai_attributes() {
    let Some(rx) = Receiver::start(200) else {
        return;
    };
    let m = mock().await;
    let gw = start(&standard_config(&m.url()), &rx.url());
    let r = chat_with(gw.port, &ask(false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let usage = r.json()["usage"].clone();
    let (server, clients) = rx.trace(&id, 2).await;

    assert_eq!(server["name"], "chat gpt-4o-mini");
    assert_eq!(server["kind"], "SERVER");
    assert_eq!(server["parent_span_id"], "");
    assert_eq!(server["resource"]["service.name"], "sluice");
    assert_eq!(attr(&server, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(&server, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(attr(&server, "gen_ai.response.model"), "upstream-gpt");
    assert_eq!(attr(&server, "gen_ai.provider.name"), "openai_compatible");
    assert_eq!(
        attr(&server, "gen_ai.usage.input_tokens"),
        &usage["prompt_tokens"]
    );
    assert_eq!(
        attr(&server, "gen_ai.usage.output_tokens"),
        &usage["completion_tokens"]
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        attr(&server, "gen_ai.response.finish_reasons"),
        &json!(["stop"])
    );
    assert_eq!(attr(&server, "http.response.status_code"), 200);
    assert_eq!(attr(&server, "sluice.key"), "team-a");
    assert_eq!(attr(&server, "sluice.deployment"), "mock/upstream-gpt");
    assert_eq!(
        server["status"]["code"], 0,
        "a success leaves the status unset"
    );
    assert!(server["end"].as_u64() >= server["start"].as_u64());

    let attempt = &clients[0];
    assert_eq!(attempt["kind"], "CLIENT");
    assert_eq!(attempt["name"], "chat upstream-gpt");
    assert_eq!(attempt["trace_id"], server["trace_id"]);
    assert_eq!(attempt["parent_span_id"], server["span_id"]);
    assert_eq!(attr(attempt, "server.address"), "127.0.0.1");
    let mock_port: u64 = m.url().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(attr(attempt, "server.port"), mock_port);
    assert_eq!(attr(attempt, "http.response.status_code"), 200);
    assert_eq!(attr(attempt, "sluice.attempt.outcome"), "success");
    assert_eq!(attr(attempt, "gen_ai.request.model"), "upstream-gpt");

    // The provider got the attempt span as its parent.
    let tp = m.requests()[0].header("traceparent").unwrap().to_string();
    assert_eq!(
        tp,
        format!(
            "00-{}-{}-01",
            server["trace_id"].as_str().unwrap(),
            attempt["span_id"].as_str().unwrap()
        )
    );
    // The export carried the configured header; sluice never logged its value.
    let exports = rx.requests();
    assert_eq!(exports[0]["path"], "/v1/traces");
    assert_eq!(exports[0]["content_type"], "application/x-protobuf");
    assert_eq!(exports[0]["authorization"], OTLP_TOKEN);
    assert!(!gw.log().contains("test-otlp-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_traceparent_is_continued_and_tracestate_passed_on() {
    let Some(rx) = Receiver::start(200) else {
        return;
    };
    let m = mock().await;
    let gw = start(&standard_config(&m.url()), &rx.url());
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let tp = format!("00-{trace}-{parent}-01");
    let r = chat_with(
        gw.port,
        &ask(false),
        &[("traceparent", &tp), ("tracestate", "acme=7")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let (server, clients) = rx.trace(&id, 2).await;
    assert_eq!(server["trace_id"], trace);
    assert_eq!(server["parent_span_id"], parent);
    assert_eq!(server["trace_state"], "acme=7");
    let sent = m.requests()[0].clone();
    assert_eq!(
        sent.header("traceparent").unwrap(),
        format!("00-{trace}-{}-01", clients[0]["span_id"].as_str().unwrap())
    );
    assert_eq!(sent.header("tracestate"), Some("acme=7"));

    // A client that does not sample: nothing is exported, the provider still learns the
    // trace (flags 00). A malformed traceparent starts a new, sampled trace.
    let unsampled = format!("00-{trace}-{parent}-00");
    let r = chat_with(gw.port, &ask(false), &[("traceparent", &unsampled)]).await;
    assert_eq!(r.status, 200);
    let quiet_id = r.header("x-request-id").unwrap().to_string();
    let forwarded = m.requests()[1].header("traceparent").unwrap().to_string();
    assert!(forwarded.starts_with(&format!("00-{trace}-")) && forwarded.ends_with("-00"));
    let r = chat_with(gw.port, &ask(false), &[("traceparent", "00-xyz-01")]).await;
    let id = r.header("x-request-id").unwrap().to_string();
    let (server, _) = rx.trace(&id, 2).await;
    assert_ne!(server["trace_id"], trace);
    assert_eq!(server["parent_span_id"], "");
    assert!(
        !rx.raw().contains(&quiet_id),
        "an unsampled request is not exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reports_time_to_first_chunk_and_its_finish_reason() {
    let Some(rx) = Receiver::start(200) else {
        return;
    };
    let m = mock().await;
    let gw = start(&standard_config(&m.url()), &rx.url());
    let auth = format!("Bearer {KEY}");
    let s = send(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        ask(true).to_string().as_bytes(),
    )
    .await;
    let r = read_all(s).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("[DONE]"));
    let id = r.header("x-request-id").unwrap().to_string();
    let (server, clients) = rx.trace(&id, 2).await;
    assert_eq!(attr(&server, "gen_ai.request.stream"), true);
    let ttft = attr(&server, "gen_ai.response.time_to_first_chunk")
        .as_f64()
        .expect("time to first chunk");
    assert!(ttft > 0.0 && ttft < 30.0, "{ttft}");
    assert_eq!(
        attr(&server, "gen_ai.response.finish_reasons"),
        &json!(["stop"])
    );
    assert!(
        attr(&server, "gen_ai.usage.output_tokens")
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(attr(&clients[0], "sluice.attempt.outcome"), "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_two_attempt_spans_in_one_trace() {
    let Some(rx) = Receiver::start(200) else {
        return;
    };
    let (a, b) = (mock().await, mock().await);
    let config = format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  a: {{ kind: openai_compatible, base_url: "{}/v1" }}
  b: {{ kind: groq, base_url: "{}/v1", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: a, model: model-a }}
    - {{ provider: b, model: model-b, priority: 1 }}
retry:
  backoff_base: 10ms
"#,
        a.url(),
        b.url()
    );
    let gw = start(&config, &rx.url());
    a.set_sticky_fault(Some(Fault::Status {
        status: 503,
        body: json!({"error": {"message": "mock is down", "type": "server_error"}}).to_string(),
        retry_after: None,
    }));
    let r = chat_with(gw.port, &ask(false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let attempts = 1 + a.request_count();
    let (server, clients) = rx.trace(&id, 1 + attempts).await;
    assert_eq!(attr(&server, "sluice.attempts"), attempts as u64);
    assert_eq!(attr(&server, "gen_ai.provider.name"), "groq");
    assert_eq!(attr(&server, "gen_ai.response.model"), "model-b");
    let (first, last) = (&clients[0], clients.last().unwrap());
    assert_eq!(attr(first, "sluice.deployment"), "a/model-a");
    assert_eq!(attr(first, "sluice.attempt.outcome"), "retry");
    assert_eq!(attr(first, "http.response.status_code"), 503);
    assert_eq!(attr(first, "error.type"), "503");
    assert_eq!(
        first["status"]["code"], 2,
        "a failed attempt is an error span"
    );
    assert_eq!(attr(last, "sluice.deployment"), "b/model-b");
    assert_eq!(attr(last, "sluice.attempt.outcome"), "success");
    assert_eq!(attr(last, "gen_ai.provider.name"), "groq");
    for c in &clients {
        assert_eq!(c["trace_id"], server["trace_id"]);
        assert_eq!(c["parent_span_id"], server["span_id"]);
    }
    // Each provider saw its own attempt span.
    let span_b = b.requests()[0].header("traceparent").unwrap().to_string();
    assert!(span_b.contains(last["span_id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_block_and_a_limit_rejection_are_span_events_without_text() {
    let Some(rx) = Receiver::start(200) else {
        return;
    };
    let m = mock().await;
    let config = format!(
        r#"
guardrails:
  - {{ name: codenames, type: regex, patterns: ["(?i)zebra\\s+quartz"], action: block, apply_to: [input] }}
keys:
  - {{ name: team-a, key: {KEY}, guardrails: [codenames] }}
  - {{ name: slow, key: {LIMITED_KEY}, limits: {{ requests_per_minute: 1 }} }}
providers:
  mock: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: mock, model: upstream-gpt }}
"#,
        m.url()
    );
    let gw = start(&config, &rx.url());
    let r = chat_with(gw.port, &ask(false), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_string();
    let (server, clients) = rx.trace(&id, 1).await;
    assert!(clients.is_empty(), "nothing went upstream");
    assert_eq!(m.request_count(), 0);
    assert_eq!(attr(&server, "http.response.status_code"), 400);
    let event = &server["events"][0];
    assert_eq!(event["name"], "sluice.guardrail");
    assert_eq!(event["attributes"]["sluice.guardrail.name"], "codenames");
    assert_eq!(event["attributes"]["sluice.guardrail.action"], "block");
    assert_eq!(event["attributes"]["sluice.guardrail.direction"], "input");
    assert!(!event["attributes"]["sluice.guardrail.kinds"]
        .as_array()
        .unwrap()
        .is_empty());

    // Over its rate: the second request of `slow` is refused, the limit an event.
    let auth = format!("Bearer {LIMITED_KEY}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mut refused = None;
    for _ in 0..3 {
        let r = request(
            gw.port,
            "POST",
            "/v1/chat/completions",
            &h,
            body.to_string().as_bytes(),
        )
        .await;
        if r.status == 429 {
            refused = Some(r.header("x-request-id").unwrap().to_string());
            break;
        }
    }
    let refused = refused.expect("a request over requests_per_minute: 1 is refused");
    let (server, _) = rx.trace(&refused, 1).await;
    let event = server["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "sluice.limit.rejected")
        .expect("a limit event")
        .clone();
    assert_eq!(event["attributes"]["sluice.limit"], "key:requests");
    assert_eq!(attr(&server, "http.response.status_code"), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_or_failing_never_affects_requests_and_drops_are_counted() {
    let Some(failing) = Receiver::start(503) else {
        return;
    };
    let m = mock().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    for endpoint in [closed, failing.url()] {
        let gw = start(&standard_config(&m.url()), &endpoint);
        for _ in 0..3 {
            chat_ok(gw.port).await;
        }
        let metrics = || async {
            request(gw.admin_port, "GET", "/metrics", &[], b"")
                .await
                .text()
        };
        let value = |text: &str, prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let mut text = String::new();
        for _ in 0..100 {
            text = metrics().await;
            if value(
                &text,
                "sluice_trace_spans_dropped_total{reason=\"export_failed\"}",
            ) >= 6.0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            value(
                &text,
                "sluice_trace_spans_dropped_total{reason=\"export_failed\"}"
            ) >= 6.0,
            "{endpoint}: {text}"
        );
        assert!(value(&text, "sluice_trace_export_failures_total") >= 1.0);
        assert_eq!(value(&text, "sluice_trace_spans_exported_total"), 0.0);
        assert!(
            gw.log().contains("tracing: export to"),
            "the failure is logged"
        );
        assert!(!gw.log().contains("test-otlp-token"));
    }
    assert!(failing.spans().is_empty());
    assert!(
        !failing.requests().is_empty(),
        "the failing collector was asked"
    );
}

//! Webhook guardrails against a real HTTP service (tests/webhook/classifier.py, started here
//! on a free port): verdicts on input and output (whole and streamed), the verdict cache,
//! `on_error` on timeouts, 500s and garbage, metrics, and the header secret kept out of the
//! logs. Also hidden characters in answers: stripped, blocked or kept.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The classifier service, stopped when dropped.
struct Classifier {
    child: Child,
    port: u16,
}

impl Drop for Classifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Classifier {
    async fn start(expect_auth: &str) -> Classifier {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhook/classifier.py");
        let port = free_port();
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .env("WEBHOOK_EXPECT_AUTH", expect_auth)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the classifier");
        let c = Classifier { child, port };
        let up = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(up, "the classifier did not start");
        c
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/check", self.port)
    }

    async fn requests(&self) -> Vec<Value> {
        let r = get(self.port, "/requests", "").await;
        serde_json::from_str(&r.text()).expect("JSON list")
    }

    async fn mode(&self, m: &str) {
        let r = get(self.port, &format!("/mode/{m}"), "").await;
        assert_eq!(r.status, 200);
    }
}

/// A config with `guardrails` and `keys` (YAML list items) and one OpenAI-compatible mock
/// at `upstream` serving `gpt-4o-mini`.
fn config(guardrails: &str, keys: &str, upstream: &str) -> String {
    format!(
        "guardrails:\n{guardrails}\nkeys:\n{keys}\nproviders:\n  mock: {{ kind: openai_compatible, \
         base_url: \"{upstream}/v1\", api_key: {PROVIDER_KEY} }}\nmodels:\n  gpt-4o-mini:\n    \
         - {{ provider: mock, model: upstream-gpt }}\n"
    )
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// The value of the metric line that starts with `prefix` (labels included), 0 if absent.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A token for the classifier, made at run time.
fn token() -> String {
    ["fake", "webhook", "token", "4242"].join("-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_verdicts_apply_to_input_and_output() {
    let secret = token();
    let svc = Classifier::start(&format!("Bearer {secret}")).await;
    let provider = mock().await;
    let url = svc.url();
    let config = config(
        &format!(
            r#"  - name: classifier
    type: webhook
    url: {url}
    headers: {{ authorization: "Bearer ${{CLASSIFIER_TOKEN}}" }}
    action: block
    apply_to: [input]
  - name: answers
    type: webhook
    url: {url}
    headers: {{ authorization: "Bearer ${{CLASSIFIER_TOKEN}}" }}
    action: block
    apply_to: [output]
    window: 32
    cache_ttl: 0s"#
        ),
        &format!(
            r#"  - {{ name: team-a, key: {KEY}, guardrails: [classifier] }}
  - {{ name: out-only, key: {LIMITED_KEY}, guardrails: [answers] }}"#
        ),
        &provider.url(),
    );
    let gw = Gateway::start_with_env(&config, &[("CLASSIFIER_TOKEN", &secret)]);

    // Allowed: the service saw the text, the model, the key and the header.
    let r = post(
        gw.port,
        "/v1/chat/completions",
        &ask("a harmless question", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = svc.requests().await;
    assert_eq!(seen.len(), 1);
    let body = &seen[0]["body"];
    assert_eq!(body["guardrail"], "classifier");
    assert_eq!(body["direction"], "input");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["key"], "team-a");
    assert!(body["texts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "a harmless question"));
    assert_eq!(seen[0]["auth_ok"], true);

    // Blocked: 400 naming the guardrail and the kind; the provider saw nothing.
    let before = provider.request_count();
    let flagged = ask("please handle forbidden-marker now", false);
    let r = post(gw.port, "/v1/chat/completions", &flagged).await;
    let v = r.assert_error(400, "content_filter");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("classifier") && msg.contains("test_marker"),
        "{msg}"
    );
    assert_eq!(provider.request_count(), before);

    // The same text again: the cached verdict, the service is not called.
    let calls = svc.requests().await.len();
    let r = post(gw.port, "/v1/chat/completions", &flagged).await;
    r.assert_error(400, "content_filter");
    assert_eq!(svc.requests().await.len(), calls);

    // Redact: the spans the service named are replaced before the provider sees them.
    let r = post(
        gw.port,
        "/v1/chat/completions",
        &ask("keep redact-me out", false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = provider.requests().last().unwrap().json();
    assert_eq!(
        sent["messages"][0]["content"],
        "keep [REDACTED:test_span] out"
    );

    // A whole answer with the marker (the mock echoes the question) is withheld.
    let r = post_chat_as(gw.port, LIMITED_KEY, &ask("say forbidden-marker", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let choice = &r.json()["choices"][0];
    assert_eq!(choice["finish_reason"], "content_filter");
    assert!(choice["message"]["content"].is_null());
    assert!(!r.text().contains("forbidden"));
    // An answer without it passes.
    let r = post_chat_as(gw.port, LIMITED_KEY, &ask("say something nice", false)).await;
    assert!(r.text().contains("say something nice"), "{}", r.text());

    // Streamed, split at every byte: the marker never reaches the client; the stream ends
    // with an error event naming the guardrail.
    for split in [None, Some(1), Some(5)] {
        if let Some(n) = split {
            provider.push_fault(Fault::SplitEvery(n));
        }
        let text = "tell me all about forbidden-marker and then some more words please";
        let s = streaming_as(gw.port, LIMITED_KEY, &ask(text, true)).await;
        let body = String::from_utf8_lossy(&s).to_string();
        assert!(!body.contains("forbidden"), "{split:?}: {body}");
        assert!(
            body.contains("content_filter") && body.contains("answers"),
            "{body}"
        );
        assert!(!body.contains("[DONE]"), "{body}");
    }
    // A clean stream is complete and whole.
    let s = streaming_as(gw.port, LIMITED_KEY, &ask("a clean streamed answer", true)).await;
    let events = sse_data(&s);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(
        stream_text(&events),
        "Hello from the sluice mock provider! You said: a clean streamed answer"
    );

    // Counted; the header's secret is in no log and no metric.
    let metrics = get(gw.admin_port, "/metrics", "").await.text();
    for (labels, at_least) in [
        (r#"{guardrail="classifier",result="allow"}"#, 1.0),
        (r#"{guardrail="classifier",result="block"}"#, 1.0),
        (r#"{guardrail="classifier",result="redact"}"#, 1.0),
        (r#"{guardrail="answers",result="block"}"#, 4.0),
    ] {
        let name = format!("sluice_guardrail_webhook_requests_total{labels}");
        assert!(metric(&metrics, &name) >= at_least, "{name}: {metrics}");
    }
    assert!(
        metric(
            &metrics,
            r#"sluice_guardrail_webhook_cache_hits_total{guardrail="classifier"}"#
        ) >= 1.0
    );
    assert!(metrics.contains("sluice_guardrail_webhook_seconds_bucket"));
    assert!(!metrics.contains(&secret));
    assert!(!gw.settled_log().await.contains(&secret));
}

/// The answer of a streamed request with `key`, as bytes.
async fn streaming_as(port: u16, key: &str, body: &Value) -> Vec<u8> {
    let r = post_chat_as(port, key, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_verdict_fails_open_or_closed() {
    let svc = Classifier::start("").await;
    let provider = mock().await;
    let (url, dead) = (svc.url(), format!("http://127.0.0.1:{}/check", free_port()));
    let config = config(
        &format!(
            r#"  - {{ name: open, type: webhook, url: "{url}", action: block, on_error: fail_open, timeout: 500ms, cache_ttl: 0s, apply_to: [input] }}
  - {{ name: closed, type: webhook, url: "{url}", action: block, timeout: 500ms, cache_ttl: 0s, apply_to: [input] }}
  - {{ name: gone, type: webhook, url: "{dead}", action: block, apply_to: [input] }}"#
        ),
        &format!(
            r#"  - {{ name: k-open, key: {KEY}, guardrails: [open] }}
  - {{ name: k-closed, key: {LIMITED_KEY}, guardrails: [closed] }}
  - {{ name: k-gone, key: sk-test-gone-key-dddd, guardrails: [gone] }}"#
        ),
        &provider.url(),
    );
    let gw = Gateway::start(&config);
    let q = ask("hello", false);
    for mode in ["slow", "error", "garbage"] {
        svc.mode(mode).await;
        let r = post(gw.port, "/v1/chat/completions", &q).await;
        assert_eq!(r.status, 200, "{mode}: {}", r.text());
        let r = post_chat_as(gw.port, LIMITED_KEY, &q).await;
        let v = r.assert_error(503, "guardrail_unavailable");
        assert!(v["error"]["message"].as_str().unwrap().contains("closed"));
    }
    let r = post_chat_as(gw.port, "sk-test-gone-key-dddd", &q).await;
    r.assert_error(503, "guardrail_unavailable");
    svc.mode("normal").await;
    let r = post_chat_as(gw.port, LIMITED_KEY, &q).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let metrics = get(gw.admin_port, "/metrics", "").await.text();
    for (g, result, n) in [
        ("open", "timeout", 1.0),
        ("closed", "timeout", 1.0),
        ("open", "error", 2.0),
        ("closed", "error", 2.0),
        ("gone", "error", 1.0),
    ] {
        let name = format!(
            "sluice_guardrail_webhook_requests_total{{guardrail=\"{g}\",result=\"{result}\"}}"
        );
        assert_eq!(metric(&metrics, &name), n, "{name}: {metrics}");
    }
    // Fail-open is recorded in the access log as a logged finding.
    assert!(
        eventually(Duration::from_secs(5), || gw.access_log().iter().any(|l| {
            l["guardrails"][0]["guardrail"] == "open"
                && l["guardrails"][0]["kinds"][0] == "webhook_unavailable"
        }))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_characters_in_answers_are_stripped_blocked_or_kept() {
    // Kept: the joiner in an emoji sequence, the non-joiner in Persian, one variation
    // selector. Stripped: tag characters, a run of selectors, a zero-width space.
    let visible = "Fine. 👩\u{200D}💻 می\u{200C}خواهم ❤\u{FE0F} ok ❤ done";
    let reply = format!(
        "Fine.{} 👩\u{200D}💻 می\u{200C}خواهم ❤\u{FE0F} ok ❤\u{FE0F}\u{FE01}\u{E0102} do\u{200B}ne",
        tags(" psst, hidden")
    );
    let provider = MockProvider::start(
        "127.0.0.1:0",
        Behaviour {
            reply: Some(reply.clone()),
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    let config = config(
        r#"  - { name: strip, type: secrets, action: redact, apply_to: [output] }
  - { name: refuse, type: secrets, action: redact, apply_to: [output], hidden_characters: block }
  - { name: keep, type: secrets, action: redact, apply_to: [output], hidden_characters: keep }"#,
        &format!(
            r#"  - {{ name: k-strip, key: {KEY}, guardrails: [strip] }}
  - {{ name: k-block, key: {LIMITED_KEY}, guardrails: [refuse] }}
  - {{ name: k-keep, key: sk-test-keep-key-eeee, guardrails: [keep] }}"#
        ),
        &provider.url(),
    );
    let gw = Gateway::start(&config);

    // Strip (the default): whole and streamed however split, the same visible text.
    let r = post(gw.port, "/v1/chat/completions", &ask("hi", false)).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], visible);
    for split in [None, Some(1), Some(2), Some(3), Some(7)] {
        if let Some(n) = split {
            provider.push_fault(Fault::SplitEvery(n));
        }
        let mut s = post_stream(gw.port, "/v1/chat/completions", &ask("hi", true)).await;
        let events = sse_data(&s.rest().await);
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert_eq!(stream_text(&events), visible, "{split:?}");
    }

    // Block: the whole answer is withheld; a stream ends before the hidden part.
    let r = post_chat_as(gw.port, LIMITED_KEY, &ask("hi", false)).await;
    assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
    assert!(r.json()["choices"][0]["message"]["content"].is_null());
    let s = streaming_as(gw.port, LIMITED_KEY, &ask("hi", true)).await;
    let events = sse_data(&s);
    let text = stream_text(&events);
    assert!(
        !text.contains('\u{E0070}') && "Fine.".starts_with(&text),
        "{text:?}"
    );
    assert!(String::from_utf8_lossy(&s).contains("content_filter"));

    // Keep: as the provider wrote it.
    let r = post_chat_as(gw.port, "sk-test-keep-key-eeee", &ask("hi", false)).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], reply.as_str());

    let metrics = get(gw.admin_port, "/metrics", "").await.text();
    let strip = metric(
        &metrics,
        r#"sluice_guardrail_hidden_characters_total{action="strip",direction="output",guardrail="strip"}"#,
    );
    assert_eq!(strip, 6.0, "{metrics}");
    let block = metric(
        &metrics,
        r#"sluice_guardrail_hidden_characters_total{action="block",direction="output",guardrail="refuse"}"#,
    );
    assert_eq!(block, 2.0, "{metrics}");
}

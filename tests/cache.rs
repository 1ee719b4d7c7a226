//! The response cache through the running gateway: what makes two requests the same (every
//! field but `stream`/`stream_options`; not key order or whitespace), who shares answers
//! (a key alone, or a named scope), what is stored (complete, successful answers only), how a
//! hit is served to each client API (whole or replayed as a stream), TTL, the client's
//! `Cache-Control`, and the Redis backend shared by two gateways and then killed.

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};

/// Keys of this test (obviously fake, built at run time).
fn key(name: &str) -> String {
    format!("test-cache-{name}-{}", "0000")
}

/// A config with the cache on (`cache` is the body of `cache:`), an OpenAI-compatible mock,
/// and keys: `a`, `b` (own scopes), `s1`/`s2` (scope `evals`), `off` (`cache: false`),
/// `guarded` (an output guardrail that blocks "falcon").
fn config(upstream: &str, cache: &str) -> String {
    format!(
        r#"
cache:
{cache}
guardrails:
  - {{ name: falcon, type: regex, patterns: ["(?i)falcon"], action: block, apply_to: [output] }}
keys:
  - {{ name: a, key: {a} }}
  - {{ name: b, key: {b} }}
  - {{ name: s1, key: {s1}, cache_scope: evals }}
  - {{ name: s2, key: {s2}, cache_scope: evals }}
  - {{ name: off, key: {off}, cache: false }}
  - {{ name: guarded, key: {guarded}, guardrails: [falcon] }}
providers:
  mock: {{ kind: openai_compatible, base_url: "{upstream}/v1", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: mock, model: upstream-gpt }}
  other-model:
    - {{ provider: mock, model: upstream-other }}
  embed:
    - {{ provider: mock, model: upstream-embed }}
"#,
        a = key("a"),
        b = key("b"),
        s1 = key("s1"),
        s2 = key("s2"),
        off = key("off"),
        guarded = key("guarded"),
    )
}

const MEMORY: &str = "  backend: memory\n  ttl: 10m\n  max_entry_bytes: 1MiB\n  max_bytes: 64MiB\n";

/// POSTs raw body bytes to `path` as key `who`, with extra headers.
async fn post_raw(
    port: u16,
    path: &str,
    who: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let auth = format!("Bearer {}", key(who));
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    request(port, "POST", path, &headers, body.as_bytes()).await
}

async fn chat_as(port: u16, who: &str, body: &Value) -> Response {
    post_raw(port, "/v1/chat/completions", who, &[], &body.to_string()).await
}

fn question(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

fn cache_header(r: &Response) -> &str {
    r.header("x-sluice-cache").unwrap_or("(none)")
}

async fn metrics_of(gw: &Gateway) -> String {
    get(gw.admin_port, "/metrics", "").await.text()
}

/// Waits until `n` answers have been stored: an answer is stored once it is complete, which
/// the client may see a moment before the store is done.
async fn stored(gw: &Gateway, n: u64) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics_of(gw).await;
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix("sluice_cache_stores_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < end,
            "{n} answers were never stored: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn same_request_hits_whatever_its_key_order_and_any_other_difference_misses() {
    let m = mock().await;
    let gw = Gateway::start(&config(&m.url(), MEMORY));
    let first = chat_as(gw.port, "a", &question("one")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(m.request_count(), 1);
    stored(&gw, 1).await;

    // The same request, keys reordered (nested ones too) and spaced differently.
    let same = r#"{ "messages" : [ { "content" : "one", "role" : "user" } ],
                   "temperature":0 , "model":"gpt-4o-mini" }"#;
    let hit = post_raw(gw.port, "/v1/chat/completions", "a", &[], same).await;
    assert_eq!(hit.status, 200, "{}", hit.text());
    assert_eq!(cache_header(&hit), "hit");
    assert_eq!(m.request_count(), 1, "a hit does not reach the provider");
    // The stored answer, as it was (its `id` and `created` included).
    assert_eq!(hit.json(), first.json());
    assert!(hit.header("x-request-id").is_some());

    // One differing field, anywhere: a miss, and the provider is asked.
    for other in [
        json!({"model": "gpt-4o-mini", "temperature": 1, "messages": [{"role": "user", "content": "one"}]}),
        json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "one!"}]}),
        json!({"model": "gpt-4o-mini", "temperature": 0, "user": "u1", "messages": [{"role": "user", "content": "one"}]}),
        json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "one", "name": "x"}]}),
        json!({"model": "other-model", "temperature": 0, "messages": [{"role": "user", "content": "one"}]}),
    ] {
        let before = m.request_count();
        let r = chat_as(gw.port, "a", &other).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(cache_header(&r), "miss", "{other}");
        assert_eq!(m.request_count(), before + 1, "{other}");
    }

    stored(&gw, 6).await;
    assert!(
        eventually(Duration::from_secs(5), || gw
            .access_log()
            .iter()
            .any(|l| l["cache"] == "hit"))
        .await,
        "{:?}",
        gw.access_log()
    );
    let text = metrics_of(&gw).await;
    assert!(
        text.contains(r#"sluice_cache_lookups_total{result="hit"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sluice_cache_lookups_total{result="miss"} 6"#),
        "{text}"
    );
    assert!(text.contains("sluice_cache_stores_total 6"), "{text}");
    assert!(!text.contains("sluice_cache_bytes 0\n"), "{text}");

    // Embeddings are cached the same way.
    let emb = json!({"model": "embed", "input": "a sentence"});
    let e1 = post_raw(gw.port, "/v1/embeddings", "a", &[], &emb.to_string()).await;
    assert_eq!(
        (e1.status, cache_header(&e1)),
        (200, "miss"),
        "{}",
        e1.text()
    );
    stored(&gw, 7).await;
    let e2 = post_raw(gw.port, "/v1/embeddings", "a", &[], &emb.to_string()).await;
    assert_eq!(
        (e2.status, cache_header(&e2)),
        (200, "hit"),
        "{}",
        e2.text()
    );
    assert_eq!(e1.json(), e2.json());
}

#[tokio::test]
async fn a_stream_is_replayed_from_a_whole_answer_for_openai_and_anthropic_clients() {
    let m = mock().await;
    let gw = Gateway::start(&config(&m.url(), MEMORY));
    let whole = chat_as(gw.port, "a", &question("stream me")).await;
    assert_eq!(cache_header(&whole), "miss");
    stored(&gw, 1).await;
    let answer = whole.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let usage = whole.json()["usage"].clone();

    // OpenAI chat stream with usage.
    let mut body = question("stream me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!((r.status, cache_header(&r)), (200, "hit"), "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&r.body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(stream_text(&events), answer);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["model"], "gpt-4o-mini", "{c}");
    }
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{last}");
    assert_eq!(last["usage"], usage);

    // Without include_usage: no usage chunk.
    body["stream_options"] = json!({"include_usage": false});
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!(cache_header(&r), "hit");
    assert!(sse_data(&r.body).iter().all(|e| !e.contains("\"usage\"")));
    assert_eq!(m.request_count(), 1);

    // Anthropic Messages: stored whole, replayed as Anthropic's events.
    let msg = json!({"model": "gpt-4o-mini", "max_tokens": 50,
                     "messages": [{"role": "user", "content": "hello claude"}]});
    let w = post_raw(gw.port, "/v1/messages", "a", &[], &msg.to_string()).await;
    assert_eq!((w.status, cache_header(&w)), (200, "miss"), "{}", w.text());
    stored(&gw, 2).await;
    let text = w.json()["content"][0]["text"].as_str().unwrap().to_string();
    let mut smsg = msg.clone();
    smsg["stream"] = json!(true);
    let s = post_raw(gw.port, "/v1/messages", "a", &[], &smsg.to_string()).await;
    assert_eq!((s.status, cache_header(&s)), (200, "hit"), "{}", s.text());
    assert_anthropic_stream(&s.text(), &text, &w.json()["usage"]);
    assert_eq!(m.request_count(), 2);
}

/// The events of an Anthropic Messages stream, in the order the SDK expects, with the text
/// and the usage.
fn assert_anthropic_stream(body: &str, text: &str, usage: &Value) {
    let mut names = Vec::new();
    let mut got = String::new();
    let mut out_tokens = None;
    for ev in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut lines = ev.lines();
        let name = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name, "{ev}");
        if name == "content_block_delta" {
            got.push_str(data["delta"]["text"].as_str().unwrap());
        }
        if name == "message_delta" {
            assert_eq!(data["delta"]["stop_reason"], "end_turn", "{ev}");
            out_tokens = data["usage"]["output_tokens"].as_u64();
        }
        names.dedup();
        names.push(name.to_string());
    }
    names.dedup();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{body}"
    );
    assert_eq!(got, text);
    assert_eq!(out_tokens, usage["output_tokens"].as_u64());
}

/// A config for the SDK checks: key [`KEY`], one provider of `kind`, the cache in memory.
fn sdk_config(kind: &str, url: &str) -> String {
    let base = if kind == "anthropic" {
        url.to_string()
    } else {
        format!("{url}/v1")
    };
    format!(
        r#"
cache: {{ backend: memory, ttl: 10m }}
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  up: {{ kind: {kind}, base_url: "{base}", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: up, model: upstream-model }}
"#
    )
}

/// Hits read by the official SDKs' parsers, for each client API, whether the provider's
/// answer was translated (an OpenAI-compatible deployment) or relayed as the provider wrote
/// it (Anthropic Messages to Anthropic, Responses to OpenAI): a whole answer replayed as a
/// stream, a stream replayed whole and again as a stream, tool calls both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_parse_hits_of_every_api_translated_or_relayed_natively() {
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "openai_compatible",
            &["chat", "messages", "responses"],
            "/v1/chat/completions",
        ),
        ("anthropic", &["messages"], "/v1/messages"),
        ("openai", &["responses"], "/v1/responses"),
    ];
    for (kind, apis, path) in cases {
        let m = mock().await;
        let gw = Gateway::start(&sdk_config(kind, &m.url()));
        let metrics = format!("http://127.0.0.1:{}/metrics", gw.admin_port);
        let mut args = vec![gw.url(), KEY.to_string(), metrics];
        args.extend(apis.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_sdk_script(&gw, "cache_client.py", &args).await;
        // Three questions per API reached the provider, in its own API; the rest were hits
        // (four for chat and messages, three for responses).
        let hits: usize = apis
            .iter()
            .map(|a| if *a == "responses" { 3 } else { 4 })
            .sum();
        let reqs = m.requests();
        assert!(reqs.iter().all(|r| r.path == path), "{kind}");
        assert_eq!(reqs.len(), 3 * apis.len(), "{kind}");
        let text = metrics_of(&gw).await;
        assert!(
            text.contains(&format!(
                "sluice_cache_lookups_total{{result=\"hit\"}} {hits}"
            )),
            "{kind}: {text}"
        );
    }
}

/// A native stream cut short is not stored; the one after it, complete, is.
#[tokio::test]
async fn a_native_stream_cut_short_is_not_stored() {
    let m = mock().await;
    let gw = Gateway::start(&sdk_config("anthropic", &m.url()));
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "cut me"}]})
    .to_string();
    let auth = format!("Bearer {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    m.push_fault(Fault::TruncateAfterChunks(2));
    let r = request(gw.port, "POST", "/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"));
    assert!(!r.text().contains("message_stop"), "{}", r.text());
    let r = request(gw.port, "POST", "/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!(cache_header(&r), "miss", "the cut stream was not stored");
    assert!(r.text().contains("message_stop"), "{}", r.text());
    stored(&gw, 1).await;
    let r = request(gw.port, "POST", "/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(m.requests().len(), 2);
    assert!(metrics_of(&gw)
        .await
        .contains("sluice_cache_stores_total 1\n"));
}

/// Managed keys take `cache` and `cache_scope` as config keys do: a key made with
/// `cache_scope: evals` shares the config keys' `evals` answers, one made with `cache: false`
/// is never served from the cache, and one made with neither has a scope of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_keys_take_cache_and_cache_scope() {
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("usage.db");
    let body = format!(
        "{}usage:\n  path: {}\n",
        config(&m.url(), MEMORY),
        db.display()
    );
    let gw = Gateway::start(&body);
    let make = |body: Value| {
        let port = gw.admin_port;
        async move {
            let r = request(
                port,
                "POST",
                "/keys",
                &[("content-type", "application/json")],
                body.to_string().as_bytes(),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()
        }
    };
    let shared = make(json!({"name": "m-evals", "cache_scope": "evals"})).await;
    assert_eq!(
        (&shared["cache"], &shared["cache_scope"]),
        (&json!(true), &json!("evals"))
    );
    let off = make(json!({"name": "m-off", "cache": false})).await;
    assert_eq!(off["cache"], false);
    let own = make(json!({"name": "m-own"})).await;
    let bad = request(
        gw.admin_port,
        "POST",
        "/keys",
        &[("content-type", "application/json")],
        json!({"name": "m-bad", "cache_scope": ""})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("cache_scope"), "{}", bad.text());

    let as_managed = |k: &Value, q: &Value| {
        let secret = k["key"].as_str().unwrap().to_string();
        let q = q.clone();
        let port = gw.port;
        async move { post_chat_as(port, &secret, &q).await }
    };
    let q = question("managed");
    assert_eq!(cache_header(&chat_as(gw.port, "s1", &q).await), "miss");
    stored(&gw, 1).await;
    let r = as_managed(&shared, &q).await;
    assert_eq!((r.status, cache_header(&r)), (200, "hit"), "{}", r.text());
    let r = as_managed(&off, &q).await;
    assert_eq!((r.status, cache_header(&r)), (200, "bypass"));
    let r = as_managed(&own, &q).await;
    assert_eq!(cache_header(&r), "miss", "its own scope");
    assert_eq!(m.request_count(), 3);

    // The CLI takes them too, and the listing shows them.
    let cfg = gw.dir.path().join("sluice.yaml");
    let out = std::process::Command::new(bin())
        .args([
            "keys",
            "create",
            "-c",
            cfg.to_str().unwrap(),
            "--name",
            "m-cli",
        ])
        .args(["--cache-scope", "evals"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = get(gw.admin_port, "/keys/m-cli", "").await.json();
    assert_eq!(list["cache_scope"], "evals", "{list}");
}

#[tokio::test]
async fn answers_cross_no_key_but_a_shared_scope_and_honour_key_and_model_settings() {
    let m = mock().await;
    let cache = format!("{MEMORY}  models: [gpt-4o-mini, embed]\n");
    let gw = Gateway::start(&config(&m.url(), &cache));
    let q = question("tenant");
    assert_eq!(cache_header(&chat_as(gw.port, "a", &q).await), "miss");
    stored(&gw, 1).await;
    assert_eq!(cache_header(&chat_as(gw.port, "a", &q).await), "hit");
    assert_eq!(cache_header(&chat_as(gw.port, "b", &q).await), "miss");
    assert_eq!(cache_header(&chat_as(gw.port, "s1", &q).await), "miss");
    assert_eq!(m.request_count(), 3);
    stored(&gw, 3).await;
    // The named scope is shared by its keys, and by no one else.
    assert_eq!(cache_header(&chat_as(gw.port, "s2", &q).await), "hit");
    assert_eq!(m.request_count(), 3);

    // `cache: false`: every request goes to the provider.
    for _ in 0..2 {
        let r = chat_as(gw.port, "off", &q).await;
        assert_eq!((r.status, cache_header(&r)), (200, "bypass"));
    }
    assert_eq!(m.request_count(), 5);

    // A model not in `cache.models`.
    let mut other = q.clone();
    other["model"] = json!("other-model");
    for _ in 0..2 {
        let r = chat_as(gw.port, "a", &other).await;
        assert_eq!((r.status, cache_header(&r)), (200, "bypass"));
    }
    assert_eq!(m.request_count(), 7);
}

#[tokio::test]
async fn only_complete_successful_answers_are_stored() {
    let m = mock().await;
    let gw = Gateway::start(&config(&m.url(), MEMORY));
    let mut body = question("cut me");
    body["stream"] = json!(true);

    // A stream cut short (no [DONE]): the client sees the failure, nothing is stored.
    m.push_fault(Fault::TruncateAfterChunks(2));
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"));
    assert!(!r.text().contains("[DONE]"), "{}", r.text());
    m.push_fault(Fault::DisconnectAfterChunks(2));
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!(cache_header(&r), "miss");
    assert!(!r.text().contains("[DONE]"), "{}", r.text());
    // An error event mid-way.
    m.push_fault(Fault::ErrorEventAfterChunks(2));
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!(cache_header(&r), "miss");
    // A provider error.
    m.push_fault(Fault::Status {
        status: 400,
        body: r#"{"error":{"message":"no","type":"invalid_request_error"}}"#.into(),
        retry_after: None,
    });
    assert_eq!(chat_as(gw.port, "a", &body).await.status, 400);
    assert_eq!(m.request_count(), 4);
    // The next identical request is a miss, and its complete answer is stored.
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"));
    assert!(r.text().contains("[DONE]"));
    stored(&gw, 1).await;
    let r = chat_as(gw.port, "a", &body).await;
    assert_eq!(cache_header(&r), "hit");
    assert_eq!(m.request_count(), 5);

    // An answer an output guardrail stopped (finish_reason content_filter).
    m.set_behaviour(Behaviour {
        reply: Some("the falcon flies".into()),
        ..Behaviour::default()
    });
    let q = question("blocked");
    for _ in 0..2 {
        let r = chat_as(gw.port, "guarded", &q).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(cache_header(&r), "miss");
    }
    assert_eq!(m.request_count(), 7);
    m.set_behaviour(Behaviour::default());

    // `no-store`: looked up, not stored.
    let q = question("no store");
    let h = [("cache-control", "no-store")];
    let r = post_raw(gw.port, "/v1/chat/completions", "a", &h, &q.to_string()).await;
    assert_eq!(cache_header(&r), "miss");
    assert_eq!(cache_header(&chat_as(gw.port, "a", &q).await), "miss");
    assert_eq!(m.request_count(), 9);
    stored(&gw, 2).await;
    // `no-cache`: not looked up (the provider answers), but stored.
    let q = question("no cache");
    let h = [("cache-control", "no-cache")];
    let r = post_raw(gw.port, "/v1/chat/completions", "a", &h, &q.to_string()).await;
    assert_eq!((r.status, cache_header(&r)), (200, "bypass"));
    assert_eq!(m.request_count(), 10);
    stored(&gw, 3).await;
    assert_eq!(cache_header(&chat_as(gw.port, "a", &q).await), "hit");
    assert_eq!(m.request_count(), 10);
}

#[tokio::test]
async fn entries_expire_with_the_ttl() {
    let m = mock().await;
    let gw = Gateway::start(&config(&m.url(), "  ttl: 1s\n"));
    let q = question("short-lived");
    assert_eq!(cache_header(&chat_as(gw.port, "a", &q).await), "miss");
    stored(&gw, 1).await;
    // Within the second it is (normally) a hit; after it, a miss.
    let mut expired = false;
    let end = Instant::now() + Duration::from_secs(30);
    while !expired && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = chat_as(gw.port, "a", &q).await;
        expired = cache_header(&r) == "miss";
    }
    assert!(expired, "the entry never expired");
    assert!(m.request_count() >= 2);
}

#[tokio::test]
async fn redis_is_shared_by_gateways_and_a_dead_redis_fails_nothing() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let m = mock().await;
    let cache = format!(
        "  backend: redis\n  redis_url: redis://127.0.0.1:{}\n  ttl: 10m\n",
        redis.port
    );
    let one = Gateway::start(&config(&m.url(), &cache));
    let two = Gateway::start(&config(&m.url(), &cache));
    let q = question("shared");
    let r = chat_as(one.port, "a", &q).await;
    assert_eq!((r.status, cache_header(&r)), (200, "miss"), "{}", r.text());
    stored(&one, 1).await;
    let r2 = chat_as(two.port, "a", &q).await;
    assert_eq!(
        (r2.status, cache_header(&r2)),
        (200, "hit"),
        "{}",
        r2.text()
    );
    assert_eq!(r2.json(), r.json());
    assert_eq!(m.request_count(), 1);

    redis.kill();
    for gw in [&one, &two] {
        for _ in 0..3 {
            let r = chat_as(gw.port, "a", &q).await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(cache_header(&r), "bypass");
        }
        let text = metrics_of(gw).await;
        let errors = text
            .lines()
            .find_map(|l| l.strip_prefix(r#"sluice_cache_errors_total{backend="redis"} "#))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(errors >= 3, "{text}");
        assert!(
            text.contains(r#"sluice_cache_lookups_total{result="bypass"} 3"#),
            "{text}"
        );
        assert!(gw.log().contains("response cache (redis)"), "{}", gw.log());
    }
    assert_eq!(m.request_count(), 7);
}

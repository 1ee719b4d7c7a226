//! OpenAI clients served by an Ollama deployment through its native API (`/api/chat` with
//! NDJSON streams, `/api/embed`), through the running gateway, against a mock Ollama.

mod common;

use common::*;
use serde_json::{json, Value};

fn ollama_config(url: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  local: {{ kind: ollama, base_url: "{url}" }}
models:
  gpt-4o-mini:
    - {{ provider: local, model: "llama3.2:3b" }}
  embed:
    - {{ provider: local, model: all-minilm }}
"#
    )
}

fn chunks(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_ndjson_streams_through_api_chat() {
    let m = mock().await;
    let gw = Gateway::start(&ollama_config(&m.url()));
    let v = chat_ok(gw.port).await.json();
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let up = &m.requests()[0];
    assert_eq!(up.path, "/api/chat");
    assert!(up.header("authorization").is_none(), "no key configured");
    assert_eq!(up.json()["model"], "llama3.2:3b");
    assert_eq!(up.json()["stream"], false);

    let mut req = chat("gpt-4o-mini", true);
    req["stream_options"] = json!({"include_usage": true});
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let text = stream_text(&events);
    assert!(text.contains("Say hello"), "{text}");
    let cs = chunks(&events);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = cs.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let up = &m.requests()[1];
    assert_eq!(up.json()["stream"], true);
    assert_eq!(up.header("accept"), Some("application/x-ndjson"));

    // Lines split across reads anywhere give the same answer.
    m.push_fault(Fault::SplitEvery(5));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(stream_text(&sse_data(&s.rest().await)), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_whole_and_streamed() {
    let m = mock().await;
    let gw = Gateway::start(&ollama_config(&m.url()));
    let mut req = chat("gpt-4o-mini", false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let r = post(gw.port, "/v1/chat/completions", &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        m.requests()[0].json()["tools"][0]["function"]["name"],
        "get_weather"
    );

    req["stream"] = json!(true);
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    let cs = chunks(&sse_data(&s.rest().await));
    let call = cs
        .iter()
        .find_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .unwrap();
    assert_eq!(call["index"], 0);
    assert_eq!(call["id"], "call_0");
    assert_eq!(
        cs.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Forcing a tool is something Ollama cannot do: refused before any request goes out.
    let before = m.request_count();
    req["tool_choice"] = json!("required");
    let r = post(gw.port, "/v1/chat/completions", &req).await;
    r.assert_error(400, "unsupported_parameter");
    assert_eq!(r.json()["error"]["param"], "tool_choice");
    assert_eq!(m.request_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_ollama_streams_are_not_complete_answers() {
    let m = mock().await;
    let gw = Gateway::start(&ollama_config(&m.url()));
    for fault in [
        Fault::TruncateAfterChunks(3),
        Fault::ErrorEventAfterChunks(3),
        Fault::Garbage,
    ] {
        m.push_fault(fault.clone());
        let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        let events = sse_data(&s.rest().await);
        assert!(
            !events.iter().any(|e| e == "[DONE]"),
            "{fault:?}: {events:?}"
        );
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{fault:?}: {last}");
    }
    // A model Ollama does not have: its 404 keeps its status, in the OpenAI shape.
    m.push_fault(Fault::Status {
        status: 404,
        body: r#"{"error":"model \"llama3.2:3b\" not found, try pulling it first"}"#.into(),
        retry_after: None,
    });
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    r.assert_error(404, "model_not_found");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("try pulling it first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_api_embed() {
    let m = mock().await;
    let gw = Gateway::start(&ollama_config(&m.url()));
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": ["one", "two"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "embed");
    assert_eq!(v["data"][1]["embedding"], json!([0.25, -0.5, 1.0]));
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    let up = &m.requests()[0];
    assert_eq!(up.path, "/api/embed");
    assert_eq!(
        up.json(),
        json!({"model": "all-minilm", "input": ["one", "two"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_use_api_tags() {
    let m = mock().await;
    let _gw = Gateway::start(&format!(
        "{}\nhealth:\n  check: {{ interval: 100ms, timeout: 1s }}\n",
        ollama_config(&m.url())
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !m.requests().iter().any(|r| r.path == "/api/tags") {
        assert!(std::time::Instant::now() < deadline, "no health check");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(m.requests().iter().all(|r| r.method == "GET"));
}

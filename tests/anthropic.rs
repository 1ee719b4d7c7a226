//! OpenAI clients served by an Anthropic deployment: requests, answers, streams and tool calls
//! translated both ways through the running gateway, against a mock Messages API.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn anthropic_config(url: &str, extra: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  claude: {{ kind: anthropic, base_url: "{url}", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: claude, model: claude-3-5-haiku-latest }}
{extra}"#
    )
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_through_the_messages_api() {
    let m = mock().await;
    let gw = Gateway::start(&anthropic_config(&m.url(), ""));
    let r = chat_ok(gw.port).await;
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let up = &m.requests()[0];
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(up.header("x-api-key"), Some(PROVIDER_KEY));
    assert_eq!(up.header("anthropic-version"), Some("2023-06-01"));
    assert!(up.header("authorization").is_none());
    let body = up.json();
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["messages"][0]["content"][0]["text"], "Say hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_text_and_tool_calls() {
    let m = mock().await;
    let gw = Gateway::start(&anthropic_config(&m.url(), ""));
    let mut req = chat("gpt-4o-mini", true);
    req["stream_options"] = json!({"include_usage": true});
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    assert_eq!(s.status, 200);
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(stream_text(&events).contains("Say hello"));
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let mut req = chat("gpt-4o-mini", true);
    req["tools"] = weather_tool();
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    let events = sse_data(&s.rest().await);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(calls[0]["id"], "toolu_mock_1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: String = calls
        .iter()
        .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris", "unit": "celsius"})
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(m.requests()[1].json()["tools"][0]["name"], "get_weather");

    // Whole answers carry the same tool call.
    let mut req = chat("gpt-4o-mini", false);
    req["tools"] = weather_tool();
    let v = post(gw.port, "/v1/chat/completions", &req).await.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris", "unit": "celsius"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_split_at_any_byte_gives_the_same_answer() {
    let m = mock().await;
    let gw = Gateway::start(&anthropic_config(&m.url(), ""));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let whole = stream_text(&sse_data(&s.rest().await));
    for piece in [1usize, 5, 17] {
        m.push_fault(Fault::SplitEvery(piece));
        let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        let events = sse_data(&s.rest().await);
        assert_eq!(events.last().unwrap(), "[DONE]");
        assert_eq!(stream_text(&events), whole, "pieces of {piece}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_from_the_messages_api() {
    let m = mock().await;
    let gw = Gateway::start(&anthropic_config(
        &m.url(),
        "retry:\n  max_attempts: 1\nhealth:\n  cooldown: 0s\n  check: { enabled: false }\n",
    ));
    // An overloaded error event after the answer started: an error event, no [DONE].
    m.push_fault(Fault::ErrorEventAfterChunks(5));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let events = sse_data(&s.rest().await);
    assert!(!events.iter().any(|e| e == "[DONE]"));
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "overloaded");

    m.push_fault(Fault::Status {
        status: 529,
        body:
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
        retry_after: None,
    });
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(503, "overloaded");
    assert_eq!(v["error"]["message"], "Overloaded");

    let mut req = chat("gpt-4o-mini", false);
    req["n"] = json!(3);
    let v = post(gw.port, "/v1/chat/completions", &req)
        .await
        .assert_error(400, "unsupported_parameter");
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(
        m.request_count(),
        2,
        "refused parameters never reach the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_from_anthropic_to_openai_translates_per_attempt() {
    let claude = mock().await;
    let openai = mock().await;
    let cfg = format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  claude: {{ kind: anthropic, base_url: "{}", api_key: {PROVIDER_KEY} }}
  oai: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: claude, model: claude-3-5-haiku-latest }}
    - {{ provider: oai, model: gpt-4o-mini-2024-07-18, priority: 1 }}
  embed:
    - {{ provider: claude, model: claude-3-5-haiku-latest }}
"#,
        claude.url(),
        openai.url()
    );
    let gw = Gateway::start(&cfg);
    claude.push_fault(Fault::Status {
        status: 529,
        body:
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
        retry_after: None,
    });
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(claude.requests()[0].path, "/v1/messages");
    let up = openai.requests()[0].json();
    assert_eq!(up["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        up["messages"][0]["content"], "Say hello",
        "the OpenAI body, not the Anthropic one"
    );

    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": "x"}),
    )
    .await;
    r.assert_error(400, "unsupported_endpoint");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

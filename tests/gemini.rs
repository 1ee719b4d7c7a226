//! OpenAI clients served by a Gemini deployment, through the running gateway, against a mock
//! generateContent API.

mod common;

use common::*;
use serde_json::{json, Value};

fn gemini_config(url: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  gem: {{ kind: gemini, base_url: "{url}", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: gem, model: gemini-2.0-flash }}
  embed:
    - {{ provider: gem, model: text-embedding-004 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_streams_through_generate_content() {
    let m = mock().await;
    let gw = Gateway::start(&gemini_config(&m.url()));
    let v = chat_ok(gw.port).await.json();
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let up = &m.requests()[0];
    assert_eq!(up.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(up.header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert!(up.header("authorization").is_none());
    assert_eq!(up.json()["contents"][0]["parts"][0]["text"], "Say hello");

    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(stream_text(&events).contains("Say hello"));
    assert_eq!(
        m.requests()[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );

    m.push_fault(Fault::SplitEvery(3));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let split = sse_data(&s.rest().await);
    assert_eq!(stream_text(&split), stream_text(&events));

    let mut req = chat("gpt-4o-mini", true);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    let events = sse_data(&s.rest().await);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let call = chunks
        .iter()
        .find_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .unwrap();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_streams_that_break_are_not_complete_answers() {
    let m = mock().await;
    let gw = Gateway::start(&gemini_config(&m.url()));
    for fault in [
        Fault::TruncateAfterChunks(3),
        Fault::ErrorEventAfterChunks(3),
    ] {
        m.push_fault(fault);
        let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        let events = sse_data(&s.rest().await);
        assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert!(last["error"]["message"].is_string(), "{last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_batch_embed_contents() {
    let m = mock().await;
    let gw = Gateway::start(&gemini_config(&m.url()));
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": ["one", "two"], "dimensions": 64}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed");
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"], json!([0.1, -0.2, 1.0]));
    let up = &m.requests()[0];
    assert_eq!(
        up.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    let body = up.json();
    assert_eq!(body["requests"][1]["content"]["parts"][0]["text"], "two");
    assert_eq!(body["requests"][0]["model"], "models/text-embedding-004");
    assert_eq!(body["requests"][0]["outputDimensionality"], 64);
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": [[1, 2, 3]]}),
    )
    .await;
    r.assert_error(400, "unsupported_parameter");
}

use super::*;
use crate::core::StreamTranslator;

fn req(v: Value, stream: bool) -> Result<Value, ApiError> {
    to_request(v.as_object().unwrap(), "llama3.2", stream)
        .map(|b| serde_json::from_slice(&b).unwrap())
}

#[test]
fn request_translation() {
    let r = req(
        json!({
            "model": "public",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_7", "content": "18 degrees"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": "auto", "parallel_tool_calls": false, "user": "u-1",
            "temperature": 0.2, "top_p": 0.8, "seed": 42, "max_completion_tokens": 64, "stop": "END",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
        }),
        false,
    )
    .unwrap();
    assert_eq!(r["model"], "llama3.2");
    assert_eq!(r["stream"], false, "Ollama streams unless told not to");
    let m = r["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(
        m[1],
        json!({"role": "user", "content": "What is in this image?", "images": ["iVBORw0KGgo="]})
    );
    assert_eq!(
        m[2]["tool_calls"],
        json!([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}])
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "content": "18 degrees", "tool_name": "get_weather"})
    );
    assert_eq!(r["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        r["options"],
        json!({"temperature": 0.2, "top_p": 0.8, "seed": 42, "num_predict": 64, "stop": ["END"]})
    );
    assert_eq!(r["format"], json!({"type": "object"}));
    assert!(r.get("user").is_none() && r.get("parallel_tool_calls").is_none());

    let r = req(
        json!({"messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none",
               "response_format": {"type": "json_object"}}),
        true,
    )
    .unwrap();
    assert_eq!(r["stream"], true);
    assert!(r.get("tools").is_none(), "tool_choice none sends no tools");
    assert_eq!(r["format"], "json");
}

#[test]
fn refuses_what_would_change_the_answer() {
    let base = || json!({"messages": [{"role": "user", "content": "hi"}]});
    for (param, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("tool_choice", json!("required")),
        (
            "tool_choice",
            json!({"type": "function", "function": {"name": "f"}}),
        ),
        ("audio", json!({})),
    ] {
        let mut b = base();
        b[param] = value;
        let e = req(b, false).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.param.as_deref(), Some(param));
    }
    let e = req(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        false,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].content"));
    assert!(e.message.contains("data: URL"), "{}", e.message);
    let e = req(
        json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
        false,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[0].tool_call_id"));
}

#[test]
fn embeddings() {
    let b = to_embed_request(
        json!({"input": ["a", "b"], "dimensions": 8})
            .as_object()
            .unwrap(),
        "all-minilm",
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v,
        json!({"model": "all-minilm", "input": ["a", "b"], "dimensions": 8})
    );
    assert!(to_embed_request(json!({"input": [[1, 2]]}).as_object().unwrap(), "m").is_err());
    let (b, usage) = from_embed_response(
        br#"{"model":"all-minilm","embeddings":[[0.1,0.2],[0.3,0.4]],"prompt_eval_count":4}"#,
        "embed",
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v["data"][1],
        json!({"object": "embedding", "index": 1, "embedding": [0.3, 0.4]})
    );
    assert_eq!(v["model"], "embed");
    assert_eq!(usage.unwrap().prompt_tokens, 4);
}

#[test]
fn whole_answer_with_tool_calls() {
    let body = br#"{"model":"llama3.2","created_at":"2024-07-22T20:33:28.123648Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}}]},"done_reason":"stop","done":true,"total_duration":885095291,"prompt_eval_count":122,"eval_count":20}"#;
    let (b, usage) = from_response(body, "public").unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_current_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["location"], "Paris, FR");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(usage.unwrap().total_tokens, 142);
    let e = from_response(br#"{"error":"model is loading"}"#, "p").unwrap_err();
    assert_eq!(e.status, 502);
    assert!(from_response(b"<html>", "p").is_err());
}

#[test]
fn stream_errors_and_truncation() {
    let run = |input: &[u8]| {
        let mut s = OllamaStream::new("p", false);
        let mut out = BytesMut::new();
        let r = s.feed(input, &mut out).and_then(|()| s.finish(&mut out));
        (String::from_utf8(out.to_vec()).unwrap(), r)
    };
    let first = br#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#;
    let (out, r) = run(&[first.as_slice(), b"\n"].concat());
    assert_eq!(
        r.unwrap_err().code.as_deref(),
        Some("upstream_stream_truncated")
    );
    assert!(out.contains("\"Hi\"") && !out.contains("[DONE]"));
    let (out, r) = run(&[first.as_slice(), b"\n{\"error\":\"out of memory\"}\n"].concat());
    let e = r.unwrap_err();
    assert_eq!(e.message, "out of memory");
    assert!(!out.contains("[DONE]"));
    let (_, r) = run(b"{not json\n");
    assert_eq!(
        r.unwrap_err().code.as_deref(),
        Some("upstream_stream_error")
    );
    // The last line may lack its newline.
    let (out, r) = run(br#"{"message":{"content":"ok"},"done":true,"done_reason":"length"}"#);
    assert!(r.is_ok());
    assert!(out.contains("\"finish_reason\":\"length\"") && out.ends_with("data: [DONE]\n\n"));
}

use super::*;
use crate::core::StreamTranslator;

fn req(v: Value) -> Value {
    serde_json::from_slice(&to_request(v.as_object().unwrap()).unwrap()).unwrap()
}

#[test]
fn request_translation() {
    let r = req(json!({
        "model": "public",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\": 18}"},
            {"role": "tool", "tool_call_id": "call_9", "content": "plain text result"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "stop": ["END"], "seed": 3,
        "response_format": {"type": "json_object"}
    }));
    assert_eq!(
        r["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    let c = r["contents"].as_array().unwrap();
    assert_eq!(c.len(), 3, "{r}");
    assert_eq!(c[0]["role"], "user");
    assert_eq!(
        c[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
    );
    assert_eq!(c[1]["role"], "model");
    assert_eq!(
        c[1]["parts"][0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}})
    );
    assert_eq!(c[2]["role"], "user");
    assert_eq!(
        c[2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"temp": 18}}})
    );
    assert_eq!(
        c[2]["parts"][1]["functionResponse"]["response"],
        json!({"content": "plain text result"})
    );
    let g = &r["generationConfig"];
    assert_eq!(
        (
            g["temperature"].clone(),
            g["topP"].clone(),
            g["maxOutputTokens"].clone()
        ),
        (json!(0.5), json!(0.9), json!(100))
    );
    assert_eq!(g["stopSequences"], json!(["END"]));
    assert_eq!(g["seed"], 3);
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(
        r["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(
        r["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
    );

    let unknown = json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
    let e = to_request(unknown.as_object().unwrap()).unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.message.contains("nope"));
    let logprobs =
        json!({"model": "m", "logprobs": true, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        to_request(logprobs.as_object().unwrap())
            .unwrap_err()
            .param
            .as_deref(),
        Some("logprobs")
    );
}

#[test]
fn response_translation() {
    let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Checking. "},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":8,"totalTokenCount":20},"responseId":"r1"}"#;
    let (out, usage) = from_response(body, "public").unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["model"], "public");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Checking. ");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(usage.unwrap().total_tokens, 20);
    assert_eq!(finish_reason("SAFETY", false), "content_filter");
    assert_eq!(finish_reason("MAX_TOKENS", false), "length");
    assert_eq!(finish_reason("STOP", false), "stop");
    let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#;
    assert!(from_response(blocked, "p")
        .unwrap_err()
        .message
        .contains("SAFETY"));
}

const STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello, \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2,\"totalTokenCount\":11},\"responseId\":\"abc\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"wörld 🌍\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":5,\"totalTokenCount\":14},\"responseId\":\"abc\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":12,\"totalTokenCount\":21},\"responseId\":\"abc\"}\r\n\r\n",
);

fn run(chunks: &[&[u8]], usage: bool) -> (String, Result<(), ApiError>) {
    let mut t = GeminiStream::new("public", usage);
    t.created = 0;
    let mut out = BytesMut::new();
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            return (String::from_utf8(out.to_vec()).unwrap(), Err(e));
        }
    }
    let r = t.finish(&mut out);
    (String::from_utf8(out.to_vec()).unwrap(), r)
}

#[test]
fn stream_translation_and_splits() {
    let (out, r) = run(&[STREAM.as_bytes()], true);
    r.unwrap();
    let evs: Vec<Value> = out
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let d = e.strip_prefix("data: ").unwrap();
            if d == "[DONE]" {
                Value::from("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect();
    assert_eq!(
        evs[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(evs[1]["choices"][0]["delta"]["content"], "Hello, ");
    assert_eq!(evs[2]["choices"][0]["delta"]["content"], "wörld 🌍");
    let call = &evs[3]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].clone(), call["function"]["name"].clone()),
        (json!(0), json!("get_weather"))
    );
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(evs[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        evs[5]["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21})
    );
    assert_eq!(evs[6], "[DONE]");
    assert_eq!(evs[1]["id"], "abc");

    let bytes = STREAM.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(run(&[a, b], true).0, out, "split at {i}");
    }
}

#[test]
fn incomplete_streams_and_errors() {
    let cut = STREAM.rfind("data: ").unwrap();
    let (out, r) = run(&[&STREAM.as_bytes()[..cut]], false);
    assert_eq!(
        r.unwrap_err().code.as_deref(),
        Some("upstream_stream_truncated")
    );
    assert!(!out.contains("[DONE]"));
    let err = "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n";
    let (_, r) = run(&[err.as_bytes()], false);
    let e = r.unwrap_err();
    assert_eq!(
        (e.message.as_str(), e.code.as_deref()),
        ("The model is overloaded.", Some("unavailable"))
    );
}

#[test]
fn errors() {
    let p = "gem";
    let e = error(
        429,
        br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        p,
        None,
    );
    assert_eq!(
        (e.status, e.code.as_deref()),
        (429, Some("resource_exhausted"))
    );
    let e = error(400, br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#, p, None);
    assert_eq!(
        (e.status, e.code.as_deref()),
        (502, Some("upstream_auth_failed"))
    );
    let e = error(
        400,
        br#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#,
        p,
        None,
    );
    assert_eq!(
        (e.status, e.code.as_deref(), e.message.as_str()),
        (400, Some("invalid_argument"), "Invalid JSON payload")
    );
}

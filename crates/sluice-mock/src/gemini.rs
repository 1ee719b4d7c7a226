//! The mock's Gemini API (`:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:batchEmbedContents`).

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{
    prompt_tokens, reply_text, reply_words, send_events, send_whole, Behaviour, Fault, State,
};

/// Gemini generateContent / streamGenerateContent (SSE): text, or a `functionCall` of the
/// first declared function when tools are given.
pub(super) async fn gemini_generate(
    sock: &mut TcpStream,
    body: &Value,
    stream: bool,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    if body.get("contents").and_then(Value::as_array).is_none() {
        let b = json!({"error": {"code": 400, "message": "contents is required", "status": "INVALID_ARGUMENT"}});
        send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let text = reply_text(body, behaviour);
    let words = reply_words(&text);
    let tool = body
        .pointer("/tools/0/functionDeclarations/0/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let prompt = prompt_tokens(body);
    let usage = |n: usize| json!({"promptTokenCount": prompt, "candidatesTokenCount": n, "totalTokenCount": prompt + n as u64});
    if !stream || fault == Some(&Fault::IgnoreStream) {
        if fault == Some(&Fault::Garbage) {
            send_whole(sock, 200, "", b"<html>this is not json").await?;
            return Ok(true);
        }
        let mut parts = vec![json!({"text": text})];
        if let Some(name) = &tool {
            parts.push(json!({"functionCall": {"name": name, "args": {"city": "Paris", "unit": "celsius"}}}));
        }
        let b = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                       "usageMetadata": usage(words.len()), "responseId": "gemini-mock"});
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let mut events: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}],
                           "usageMetadata": usage(i + 1), "responseId": "gemini-mock"});
            format!("data: {c}\r\n\r\n")
        })
        .collect();
    let last_parts = match &tool {
        Some(name) => {
            json!([{"functionCall": {"name": name, "args": {"city": "Paris", "unit": "celsius"}}}])
        }
        None => json!([{"text": ""}]),
    };
    let last = json!({"candidates": [{"content": {"role": "model", "parts": last_parts}, "finishReason": "STOP", "index": 0}],
                      "usageMetadata": usage(words.len()), "responseId": "gemini-mock"});
    events.push(format!("data: {last}\r\n\r\n"));
    let error_event = format!(
        "data: {}\r\n\r\n",
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    );
    send_events(sock, events, &error_event, behaviour, fault, st).await
}

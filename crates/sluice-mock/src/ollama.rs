//! The mock's Ollama native API (`/api/chat` whole and NDJSON-streamed, `/api/embed`).

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{
    model_of, prompt_tokens, reply_text, reply_words, send_framed, send_whole, Behaviour, Fault,
    Framing, State,
};

/// `/api/chat`: text, or a call of the first tool when tools are given. Streams unless the
/// request says `"stream": false`, as Ollama does.
pub(super) async fn ollama_chat(
    sock: &mut TcpStream,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    let model = model_of(body);
    if body.get("messages").and_then(Value::as_array).is_none() {
        let b = json!({"error": "messages is required"});
        send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let text = reply_text(body, behaviour);
    let words = reply_words(&text);
    let tool = body
        .pointer("/tools/0/function/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let calls = tool.map(|name| {
        json!([{"function": {"name": name, "arguments": {"city": "Paris", "unit": "celsius"}}}])
    });
    let prompt = prompt_tokens(body);
    let created_at = "2024-07-22T20:33:28.123648Z";
    let last = |content: &str| {
        let mut message = json!({"role": "assistant", "content": content});
        if let Some(c) = &calls {
            message["tool_calls"] = c.clone();
        }
        json!({"model": model, "created_at": created_at, "message": message, "done": true,
               "done_reason": "stop", "total_duration": 1000, "prompt_eval_count": prompt,
               "eval_count": words.len()})
    };
    if body.get("stream").and_then(Value::as_bool) == Some(false)
        || fault == Some(&Fault::IgnoreStream)
    {
        if fault == Some(&Fault::Garbage) {
            send_whole(sock, 200, "", b"<html>this is not json").await?;
            return Ok(true);
        }
        send_whole(sock, 200, "", last(&text).to_string().as_bytes()).await?;
        return Ok(true);
    }
    let mut lines: Vec<String> = words
        .iter()
        .map(|w| {
            let l = json!({"model": model, "created_at": created_at,
                           "message": {"role": "assistant", "content": w}, "done": false});
            format!("{l}\n")
        })
        .collect();
    lines.push(format!("{}\n", last("")));
    let error_line = format!(
        "{}\n",
        json!({"error": "an error was encountered while running the model: unexpected EOF"})
    );
    send_framed(
        sock,
        Framing::Ndjson,
        lines,
        &error_line,
        behaviour,
        fault,
        st,
    )
    .await
}

/// `/api/embed`: one small vector per input.
pub(super) async fn ollama_embed(sock: &mut TcpStream, body: &Value) -> std::io::Result<bool> {
    let n = match body.get("input") {
        Some(Value::Array(a)) => a.len(),
        Some(Value::String(_)) => 1,
        _ => {
            let b = json!({"error": "invalid input type"});
            send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
            return Ok(true);
        }
    };
    let embeddings: Vec<Value> = (0..n).map(|i| json!([0.25, -0.5, i as f64])).collect();
    let b = json!({"model": model_of(body), "embeddings": embeddings, "total_duration": 1000,
                   "load_duration": 10, "prompt_eval_count": 3 * n});
    send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
    Ok(true)
}

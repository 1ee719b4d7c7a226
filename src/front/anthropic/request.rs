//! The Anthropic Messages API (`POST /v1/messages`) as a front door: an Anthropic request
//! becomes an OpenAI chat request, and the OpenAI answer becomes an Anthropic message (whole:
//! [`from_chat_response`]; streamed: [`ChatToMessagesStream`](super::ChatToMessagesStream)).
//!
//! Request mapping: `system` (a string or text blocks) → a system message; `text` and `image`
//! blocks → content parts (a base64 source becomes a `data:` URL); assistant `tool_use` blocks
//! → `tool_calls` (arguments = the JSON of `input`); user `tool_result` blocks → `tool`
//! messages, in block order (text = the result's text blocks; `is_error` prefixes
//! `Error: `; images in a result follow in a user message); `thinking` and
//! `redacted_thinking` blocks are dropped. `max_tokens` is required, as Anthropic requires it.
//! `stop_sequences` → `stop`, `metadata.user_id` → `user`, `tool_choice` `auto`/`any`/`tool`/
//! `none` → `auto`/`required`/the function/`none`, `disable_parallel_tool_use` →
//! `parallel_tool_calls: false`. Dropped (nothing the client relies on changes): `top_k`,
//! `thinking`, `service_tier`, `cache_control`, `citations`, `context_management`.
//!
//! Refused with a 400 naming the parameter: server tools (a tool whose `type` is not
//! `custom`), `mcp_servers`, `container`, `document` and other block types sluice cannot
//! express in a chat request.

use serde_json::{json, Map, Value};

use crate::core::error::echo;
use crate::core::ApiError;
use crate::front::str_at;

fn refused(param: &str, why: &str) -> ApiError {
    ApiError::invalid_param(
        param,
        format!("'{param}' is not supported by this gateway: {why}."),
    )
    .with_code("unsupported_parameter")
}

/// An Anthropic `image` block → an OpenAI `image_url` part.
fn image_part(b: &Value, param: &str) -> Result<Value, ApiError> {
    let src = b.get("source").unwrap_or(&Value::Null);
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str);
            let data = src.get("data").and_then(Value::as_str);
            match (media, data) {
                (Some(m), Some(d)) => format!("data:{m};base64,{d}"),
                _ => {
                    return Err(ApiError::invalid_param(
                        param,
                        "a base64 image source needs media_type and data",
                    ))
                }
            }
        }
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_param(param, "a url image source needs url"))?
            .to_string(),
        _ => {
            return Err(refused(
                param,
                "images must have a base64 or url source (file sources need the Files API)",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// The text blocks of `system` or of a `tool_result`'s content; images go to `images`.
fn text_blocks(
    v: &Value,
    param: &str,
    mut images: Option<&mut Vec<Value>>,
) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let p = format!("{param}[{j}]");
                match (b.get("type").and_then(Value::as_str), images.as_deref_mut()) {
                    (Some("text"), _) => texts.push(str_at(b, "/text")),
                    (Some("image"), Some(images)) => images.push(image_part(b, &p)?),
                    (t, _) => {
                        return Err(refused(
                            &p,
                            &format!("blocks of type {:?} cannot be used here", t.map(echo)),
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(ApiError::invalid_param(
            param,
            "must be a string or an array of content blocks",
        )),
    }
}

/// One Anthropic message → OpenAI messages appended to `out`.
fn message(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("");
    let param = format!("messages[{i}].content");
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            if !matches!(role, "user" | "assistant") {
                return Err(bad_role(role, i));
            }
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => {
            return Err(ApiError::invalid_param(
                &param,
                "content must be a string or an array of content blocks",
            ))
        }
    };
    match role {
        "assistant" => assistant_message(blocks, &param, out),
        "user" => user_message(blocks, &param, out),
        other => Err(bad_role(other, i)),
    }
}

/// An assistant message's blocks (at `param`) → one assistant message with its text and
/// tool calls, appended to `out`; nothing when it has only thinking blocks.
fn assistant_message(blocks: &[Value], param: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(str_at(b, "/text")),
            Some("tool_use") => calls.push(json!({
                "id": str_at(b, "/id"),
                "type": "function",
                "function": {
                    "name": str_at(b, "/name"),
                    "arguments": serde_json::to_string(b.get("input").unwrap_or(&json!({})))
                        .expect("JSON values serialise"),
                }
            })),
            Some("thinking" | "redacted_thinking") => {}
            t => return Err(bad_block(&format!("{param}[{j}]"), t, "assistant")),
        }
    }
    if text.is_empty() && calls.is_empty() {
        return Ok(()); // only thinking blocks
    }
    let mut msg = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            msg["content"] = Value::Null;
        }
        msg["tool_calls"] = Value::Array(calls);
    }
    out.push(msg);
    Ok(())
}

/// A user message's blocks (at `param`) → messages appended to `out`, in block order: user
/// content parts, a `tool` message per `tool_result`, then the results' images as user
/// content.
fn user_message(blocks: &[Value], param: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut images: Vec<Value> = Vec::new();
    let flush = |parts: &mut Vec<Value>, out: &mut Vec<Value>| {
        if !parts.is_empty() {
            out.push(json!({"role": "user", "content": std::mem::take(parts)}));
        }
    };
    for (j, b) in blocks.iter().enumerate() {
        let p = format!("{param}[{j}]");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": str_at(b, "/text")})),
            Some("image") => parts.push(image_part(b, &p)?),
            Some("tool_result") => {
                flush(&mut parts, out);
                out.push(tool_message(b, &p, &mut images)?);
            }
            Some("thinking" | "redacted_thinking") => {}
            t => return Err(bad_block(&p, t, "user")),
        }
    }
    if !images.is_empty() {
        // Chat tool messages carry text only: a tool's images follow as user content.
        let mut with_images =
            vec![json!({"type": "text", "text": "Images returned by the tool calls above:"})];
        with_images.append(&mut images);
        out.push(json!({"role": "user", "content": with_images}));
    }
    flush(&mut parts, out);
    Ok(())
}

/// A `tool_result` block (at `param`) → a `tool` message; its images go to `images`.
fn tool_message(b: &Value, param: &str, images: &mut Vec<Value>) -> Result<Value, ApiError> {
    let mut text = text_blocks(
        b.get("content").unwrap_or(&Value::Null),
        &format!("{param}.content"),
        Some(images),
    )?;
    if b.get("is_error") == Some(&Value::Bool(true)) {
        text = format!("Error: {text}");
    }
    Ok(json!({
        "role": "tool",
        "tool_call_id": str_at(b, "/tool_use_id"),
        "content": text,
    }))
}

fn bad_role(role: &str, i: usize) -> ApiError {
    ApiError::invalid_param(
        &format!("messages[{i}].role"),
        format!(
            "role must be \"user\" or \"assistant\", not {:?}",
            echo(role)
        ),
    )
}

fn bad_block(param: &str, t: Option<&str>, role: &str) -> ApiError {
    refused(
        param,
        &format!(
            "content blocks of type {:?} are not supported in {role} messages",
            t.map(echo).unwrap_or_default()
        ),
    )
}

/// An Anthropic Messages request → the OpenAI chat request. Errors name the parameter.
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing_param("model"))?;
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("max_tokens")),
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid_param("max_tokens", "max_tokens must be a positive integer")
        })?,
    };
    for p in ["mcp_servers", "container"] {
        if body.get(p).is_some_and(|v| !v.is_null()) {
            return Err(refused(p, "server-side tools are not available"));
        }
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::missing_param("messages"))?;
    let mut out = Vec::new();
    if let Some(system) = body.get("system") {
        let text = text_blocks(system, "system", None)?;
        if !text.is_empty() {
            out.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        message(m, i, &mut out)?;
    }
    let mut req = Map::new();
    req.insert("model".into(), Value::from(model));
    req.insert("messages".into(), Value::Array(out));
    req.insert("max_tokens".into(), Value::from(max_tokens));
    sampling(body, &mut req)?;
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        req.insert("user".into(), Value::from(user));
    }
    let has_tools = tools(body, &mut req)?;
    tool_choice(body, has_tools, &mut req)?;
    if body.get("stream") == Some(&Value::Bool(true)) {
        req.insert("stream".into(), Value::Bool(true));
        req.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(req)
}

/// `temperature` and `top_p` (numbers) and `stop_sequences` (→ `stop`) into `req`.
fn sampling(body: &Map<String, Value>, req: &mut Map<String, Value>) -> Result<(), ApiError> {
    for k in ["temperature", "top_p"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(ApiError::invalid_param(k, format!("{k} must be a number")));
            }
            req.insert(k.into(), v.clone());
        }
    }
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                req.insert("stop".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stop_sequences",
                "stop_sequences must be an array of strings",
            ))
        }
    }
    Ok(())
}

/// `tools` → chat function tools; returns whether there are any.
fn tools(body: &Map<String, Value>, req: &mut Map<String, Value>) -> Result<bool, ApiError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid_param("tools", "tools must be an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        let name = t.get("name").and_then(Value::as_str);
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => {
                return Err(refused(
                    &p,
                    &format!(
                        "the server tool {:?} (type {:?}) is not available; only custom tools are",
                        echo(name.unwrap_or("")),
                        echo(other)
                    ),
                ))
            }
        }
        let name = name.ok_or_else(|| ApiError::missing_param(&format!("{p}.name")))?;
        let schema = t
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| ApiError::missing_param(&format!("{p}.input_schema")))?;
        let mut f = json!({"name": name, "parameters": schema});
        if let Some(d) = t.get("description").filter(|d| d.is_string()) {
            f["description"] = d.clone();
        }
        out.push(json!({"type": "function", "function": f}));
    }
    let any = !out.is_empty();
    if any {
        req.insert("tools".into(), Value::Array(out));
    }
    Ok(any)
}

fn tool_choice(
    body: &Map<String, Value>,
    has_tools: bool,
    req: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let Some(c) = body.get("tool_choice").filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing_param("tool_choice.name"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice.type must be one of auto, any, tool, none",
            ))
        }
    };
    if has_tools {
        req.insert("tool_choice".into(), choice);
        if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            req.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(())
}

//! The OpenAI Responses API (`POST /v1/responses`) as a front door, stateless subset: a
//! Responses request becomes an OpenAI chat request, and the chat answer becomes a Response
//! object (whole: [`from_chat_response`]; streamed:
//! [`ChatToResponsesStream`](super::ChatToResponsesStream)).
//!
//! Request mapping: `instructions` → a system message; `input` as a string → one user message,
//! or as items: messages (`role` user/assistant/system/developer — developer becomes system —
//! with a string or `input_text`/`output_text`/`refusal`/`input_image` parts),
//! `function_call` items → assistant `tool_calls` (consecutive calls, and calls right after an
//! assistant message, share one message), `function_call_output` → `tool` messages;
//! `reasoning` items are dropped. `tools` of type `function` → chat tools; `tool_choice`,
//! `temperature`, `top_p`, `parallel_tool_calls`, `user` pass through;
//! `max_output_tokens` → `max_completion_tokens`; `text.format` (`json_schema`,
//! `json_object`) → `response_format`. Dropped: `metadata`, `reasoning`, `truncation`,
//! `include`, `service_tier`, `prompt_cache_key`, `safety_identifier`, `text.verbosity`.
//!
//! sluice keeps no state, so `store: true`, `previous_response_id`, `conversation`,
//! `background: true`, `prompt` and `item_reference` items are refused with a 400 naming them,
//! as are built-in tools (web search, file search, computer use, ...) and file inputs.
//! Errors keep the OpenAI `{"error": {...}}` shape, which the Responses API shares.

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

const STATELESS: &str = "sluice is stateless and stores no responses or conversations";

/// Message content (a string or parts) → chat content: a string when it is all text, else
/// parts.
fn content(c: &Value, param: &str) -> Result<Value, ApiError> {
    let parts = match c {
        Value::String(s) => return Ok(Value::from(s.as_str())),
        Value::Array(p) => p,
        _ => {
            return Err(ApiError::invalid_param(
                param,
                "content must be a string or an array of content parts",
            ))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    let mut all_text = true;
    for (j, p) in parts.iter().enumerate() {
        let pp = format!("{param}[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": str_at(p, "/text")}))
            }
            Some("refusal") => out.push(json!({"type": "text", "text": str_at(p, "/refusal")})),
            Some("input_image") => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(if p.get("file_id").is_some_and(|f| !f.is_null()) {
                        refused(&pp, "images by file_id need the Files API; send image_url")
                    } else {
                        ApiError::missing_param(&format!("{pp}.image_url"))
                    });
                };
                let mut img = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                    img["detail"] = d.clone();
                }
                all_text = false;
                out.push(json!({"type": "image_url", "image_url": img}));
            }
            t => {
                return Err(refused(
                    &pp,
                    &format!(
                        "content parts of type {:?} are not supported",
                        echo(t.unwrap_or(""))
                    ),
                ))
            }
        }
    }
    if all_text {
        let text: Vec<&str> = out.iter().map(|p| str_at(p, "/text")).collect();
        return Ok(Value::from(text.join("")));
    }
    Ok(Value::Array(out))
}

/// The text of a `function_call_output`'s `output` (a string or parts).
fn output_text(o: &Value, param: &str) -> Result<String, ApiError> {
    match content(o, param)? {
        Value::String(s) => Ok(s),
        _ => Err(refused(
            param,
            "function_call_output can carry text only in a chat request",
        )),
    }
}

/// `input` → chat messages appended to `out`.
fn input_items(input: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let items = match input {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid_param(
                "input",
                "input must be a string or an array of items",
            ))
        }
    };
    // Whether the last message in `out` is an assistant message that tool calls may join.
    let mut can_join = false;
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let kind = item.get("type").and_then(Value::as_str);
        match kind {
            None | Some("message") => {
                let msg = message_item(item, &p)?;
                can_join = msg["role"] == "assistant";
                out.push(msg);
            }
            Some("function_call") => {
                push_call(item, can_join, out);
                can_join = true;
            }
            Some("function_call_output") => {
                let text = output_text(
                    item.get("output").unwrap_or(&Value::Null),
                    &format!("{p}.output"),
                )?;
                out.push(json!({"role": "tool", "tool_call_id": str_at(item, "/call_id"), "content": text}));
                can_join = false;
            }
            Some("reasoning") => {}
            Some("item_reference") => return Err(refused(&p, STATELESS)),
            Some(other) => {
                return Err(refused(
                    &p,
                    &format!("input items of type {:?} are not supported", echo(other)),
                ))
            }
        }
    }
    Ok(())
}

/// A `message` input item (at `param`) → a chat message; `developer` becomes `system`.
fn message_item(item: &Value, param: &str) -> Result<Value, ApiError> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or("");
    let role = match role {
        "user" | "assistant" | "system" => role,
        "developer" => "system",
        other => {
            return Err(ApiError::invalid_param(
                &format!("{param}.role"),
                format!(
                    "role must be user, assistant, system or developer, not {:?}",
                    echo(other)
                ),
            ))
        }
    };
    let c = content(
        item.get("content").unwrap_or(&Value::Null),
        &format!("{param}.content"),
    )?;
    Ok(json!({"role": role, "content": c}))
}

/// A `function_call` item → a tool call, joining the last message in `out` when `can_join`
/// (an assistant message, or calls just before), else in a new assistant message.
fn push_call(item: &Value, can_join: bool, out: &mut Vec<Value>) {
    let call = json!({
        "id": str_at(item, "/call_id"),
        "type": "function",
        "function": {"name": str_at(item, "/name"), "arguments": str_at(item, "/arguments")},
    });
    match out.last_mut() {
        Some(last) if can_join => {
            if last.get("tool_calls").is_none() {
                last["tool_calls"] = json!([]);
                if last["content"] == "" {
                    last["content"] = Value::Null;
                }
            }
            if let Some(calls) = last["tool_calls"].as_array_mut() {
                calls.push(call);
            }
        }
        _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
    }
}

/// A Responses request → the OpenAI chat request. Errors name the parameter.
pub fn to_chat(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let set = |k: &str| {
        body.get(k)
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
    };
    if body.get("store") == Some(&Value::Bool(true)) {
        return Err(refused(
            "store",
            &format!("{STATELESS}; send \"store\": false"),
        ));
    }
    for p in [
        "previous_response_id",
        "conversation",
        "background",
        "prompt",
    ] {
        if set(p) {
            return Err(refused(p, STATELESS));
        }
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::missing_param("model"))?;
    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "instructions",
                "instructions must be a string",
            ))
        }
    }
    input_items(
        body.get("input")
            .ok_or_else(|| ApiError::missing_param("input"))?,
        &mut messages,
    )?;
    let mut req = Map::new();
    req.insert("model".into(), Value::from(model));
    req.insert("messages".into(), Value::Array(messages));
    for k in ["temperature", "top_p", "parallel_tool_calls", "user"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            req.insert(k.into(), v.clone());
        }
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        let n = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid_param(
                "max_output_tokens",
                "max_output_tokens must be a positive integer",
            )
        })?;
        req.insert("max_completion_tokens".into(), Value::from(n));
    }
    tools(body, &mut req)?;
    text_format(body, &mut req)?;
    if body.get("stream") == Some(&Value::Bool(true)) {
        req.insert("stream".into(), Value::Bool(true));
        req.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(req)
}

fn tools(body: &Map<String, Value>, req: &mut Map<String, Value>) -> Result<(), ApiError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid_param("tools", "tools must be an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            other => {
                return Err(refused(
                    &p,
                    &format!(
                        "built-in tools (here {:?}) are not available; only function tools are",
                        echo(other.unwrap_or(""))
                    ),
                ))
            }
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing_param(&format!("{p}.name")))?;
        let mut f = json!({"name": name});
        for k in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                f[k] = v.clone();
            }
        }
        out.push(json!({"type": "function", "function": f}));
    }
    if !out.is_empty() {
        req.insert("tools".into(), Value::Array(out));
    }
    let choice =
        match body.get("tool_choice") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
                Value::from(s.as_str())
            }
            Some(c) if c.get("type").and_then(Value::as_str) == Some("function") => {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::missing_param("tool_choice.name"))?;
                json!({"type": "function", "function": {"name": name}})
            }
            Some(_) => return Err(refused(
                "tool_choice",
                "tool_choice must be auto, none, required or {\"type\": \"function\", \"name\"}",
            )),
        };
    req.insert("tool_choice".into(), choice);
    Ok(())
}

fn text_format(body: &Map<String, Value>, req: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(f) = body
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|f| !f.is_null())
    else {
        return Ok(());
    };
    match f.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            req.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing_param("text.format.name"))?;
            let schema = f
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| ApiError::missing_param("text.format.schema"))?;
            let mut js = json!({"name": name, "schema": schema});
            for k in ["description", "strict"] {
                if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
                    js[k] = v.clone();
                }
            }
            req.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": js}),
            );
        }
        _ => {
            return Err(ApiError::invalid_param(
                "text.format",
                "text.format.type must be text, json_object or json_schema",
            ))
        }
    }
    Ok(())
}

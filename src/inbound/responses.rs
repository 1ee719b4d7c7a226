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

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use super::{derive_id, first_choice, parse_object, str_at, usage_of};
use crate::core::error::echo;
use crate::core::ApiError;
use crate::core::Usage;
use crate::providers::unix_now;

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
                let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                let role = match role {
                    "user" | "assistant" | "system" => role,
                    "developer" => "system",
                    other => {
                        return Err(ApiError::invalid_param(
                            &format!("{p}.role"),
                            format!(
                                "role must be user, assistant, system or developer, not {:?}",
                                echo(other)
                            ),
                        ))
                    }
                };
                let c = content(
                    item.get("content").unwrap_or(&Value::Null),
                    &format!("{p}.content"),
                )?;
                out.push(json!({"role": role, "content": c}));
                can_join = role == "assistant";
            }
            Some("function_call") => {
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
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
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

/// OpenAI `finish_reason` → the Response's `status` and `incomplete_details.reason`.
pub(crate) fn status_of(finish: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// OpenAI usage → Responses usage (`input_tokens` includes the cached ones, as in OpenAI's).
pub(crate) fn usage_json(u: Usage, reasoning_tokens: u64) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": u.total_tokens,
    })
}

/// `completion_tokens_details.reasoning_tokens` of a usage, or 0.
pub(crate) fn reasoning_tokens(obj: &Map<String, Value>) -> u64 {
    obj.get("usage")
        .and_then(|u| u.pointer("/completion_tokens_details/reasoning_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A Response object. `usage` is `null` until known.
pub(crate) fn response_object(
    id: &str,
    created_at: u64,
    model: &str,
    status: &str,
    incomplete: Option<&str>,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete.map(|r| json!({"reason": r})),
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {},
    })
}

/// A `message` output item.
pub(crate) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]),
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A `function_call` output item.
pub(crate) fn call_item(id: &str, call_id: &str, name: &str, args: &str, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": args, "call_id": call_id, "name": name})
}

/// A whole OpenAI chat completion → a Response object for `public_model`. Ids derive from
/// the completion id: `resp_<id>`, `msg_<id>`, `fc_<id>_<n>`; `call_id` is the tool-call id.
/// Request parameters are not echoed (the defaults are shown).
pub fn from_chat_response(openai_completion: &[u8], public_model: &str) -> Result<Bytes, ApiError> {
    let obj = parse_object(openai_completion)?;
    let choice = first_choice(&obj)
        .ok_or_else(|| ApiError::bad_gateway("The upstream provider's answer has no 'choices'."))?;
    let upstream_id = obj.get("id").and_then(Value::as_str);
    let rid = derive_id("resp_", upstream_id);
    let base = rid.trim_start_matches("resp_");
    let (status, incomplete) = status_of(choice.get("finish_reason").and_then(Value::as_str));
    let item_status = if status == "completed" {
        "completed"
    } else {
        "incomplete"
    };
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut output = Vec::new();
    let text = super::message_text(msg);
    if !text.is_empty() {
        output.push(message_item(
            &format!("msg_{base}"),
            item_status,
            Some(&text),
        ));
    }
    for (n, call) in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let call_id = match str_at(call, "/id") {
            "" => format!("call_{base}_{n}"),
            id => id.to_string(),
        };
        output.push(call_item(
            &format!("fc_{base}_{n}"),
            &call_id,
            str_at(call, "/function/name"),
            str_at(call, "/function/arguments"),
            item_status,
        ));
    }
    let usage = usage_of(&obj).unwrap_or_default();
    let created = obj
        .get("created")
        .and_then(Value::as_u64)
        .unwrap_or_else(unix_now);
    let out = response_object(
        &rid,
        created,
        public_model,
        status,
        incomplete,
        output,
        usage_json(usage, reasoning_tokens(&obj)),
    );
    Ok(Bytes::from(
        serde_json::to_vec(&out).expect("JSON values serialise"),
    ))
}

/// The body of an error answer: the OpenAI shape, which the Responses API shares.
pub fn error_body(e: &ApiError) -> Bytes {
    e.body()
}

/// The error as a Responses stream `error` event with sequence number 0 (for a stream that
/// has sent nothing yet; [`ChatToResponsesStream::error_event`](super::ChatToResponsesStream::error_event)
/// numbers it after the events already sent).
pub fn error_event(e: &ApiError) -> Bytes {
    error_event_at(e, 0)
}

/// The `error` event with sequence number `seq`.
pub(crate) fn error_event_at(e: &ApiError, seq: u64) -> Bytes {
    let mut out = BytesMut::new();
    super::write_named(
        &mut out,
        "error",
        &json!({
            "type": "error",
            "code": e.code,
            "message": e.message,
            "param": e.param,
            "sequence_number": seq,
        }),
    );
    out.freeze()
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;

//! The mock's OpenAI Responses API (`POST /responses`), whole and streamed, in the shape of
//! OpenAI's API reference: a `response` object, or the streaming events from
//! `response.created` to `response.completed`, each an `event: <type>` line and a JSON `data`
//! line carrying its `type` and `sequence_number`.
//!
//! It answers as the chat mock does: the fixed reply or an echo of the last user message, one
//! output token per word, and a call of the first function when functions are given.

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{
    echo, model_of, reply_words, send_events, send_whole, sse_event, tool_argument_deltas,
    words_in, Behaviour, Fault, State, CREATED, TOOL_ARGUMENTS,
};

const RESPONSE_ID: &str = "resp_mock";
const MESSAGE_ID: &str = "msg_mock";
const CALL_ITEM_ID: &str = "fc_mock_1";
const CALL_ID: &str = "call_mock_1";

pub(super) async fn responses_create(
    sock: &mut TcpStream,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    // The mock keeps no responses, so none can be continued.
    if let Some(id) = body.get("previous_response_id").and_then(Value::as_str) {
        let b = invalid_request(
            &format!("Previous response with id '{id}' not found."),
            "previous_response_id",
            "previous_response_not_found",
        );
        send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    for param in ["model", "input"] {
        if body.get(param).is_none_or(Value::is_null) {
            let b = invalid_request(
                &format!("Missing required parameter: '{param}'."),
                param,
                "missing_required_parameter",
            );
            send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
            return Ok(true);
        }
    }
    let answer = Answer::new(body, behaviour);
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let b = answer.response("completed", answer.output(), answer.usage());
        send_whole(sock, 200, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    let error_event = sse_event(
        "error",
        &json!({"type": "error", "code": "server_error",
                "message": "The server had an error while processing your request.",
                "param": null, "sequence_number": 4}),
    );
    send_events(sock, answer.events(), &error_event, behaviour, fault, st).await
}

fn invalid_request(message: &str, param: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

/// What the mock answers to one Responses request.
struct Answer<'a> {
    body: &'a Value,
    text: String,
    /// The function to call: the first of type `function` in `tools`.
    function: Option<&'a str>,
    input_tokens: u64,
}

impl<'a> Answer<'a> {
    fn new(body: &'a Value, behaviour: &Behaviour) -> Answer<'a> {
        let input = body.get("input").unwrap_or(&Value::Null);
        let text = match &behaviour.reply {
            Some(r) => r.clone(),
            None => echo(&last_user_text(input)),
        };
        let function = body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str);
        // The chat mock's count over the conversation: the instructions, then the input.
        let input_tokens = match body.get("instructions").filter(|i| i.is_string()) {
            Some(instructions) => words_in(&json!([instructions, input])),
            None => words_in(input),
        }
        .max(1);
        Answer {
            body,
            text,
            function,
            input_tokens,
        }
    }

    /// The `response` object with this status, output and usage; the request's settings
    /// are echoed, with the API's defaults for those it leaves out.
    fn response(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let given = |param: &str, default: Value| {
            self.body
                .get(param)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default)
        };
        json!({
            "id": RESPONSE_ID,
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": given("instructions", Value::Null),
            "max_output_tokens": given("max_output_tokens", Value::Null),
            "model": model_of(self.body),
            "output": output,
            "parallel_tool_calls": given("parallel_tool_calls", Value::Bool(true)),
            "previous_response_id": null,
            "reasoning": given("reasoning", json!({"effort": null, "summary": null})),
            "store": given("store", Value::Bool(true)),
            "temperature": given("temperature", json!(1.0)),
            "text": given("text", json!({"format": {"type": "text"}})),
            "tool_choice": given("tool_choice", json!("auto")),
            "tools": given("tools", json!([])),
            "top_p": given("top_p", json!(1.0)),
            "truncation": given("truncation", json!("disabled")),
            "usage": usage,
            "user": given("user", Value::Null),
            "metadata": given("metadata", json!({})),
        })
    }

    fn usage(&self) -> Value {
        let output_tokens = reply_words(&self.text).len() as u64;
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + output_tokens,
        })
    }

    /// The finished output items: the message, then the function call if any.
    fn output(&self) -> Vec<Value> {
        let mut output = vec![message_item("completed", Some(&self.text))];
        if let Some(name) = self.function {
            output.push(call_item(name, TOOL_ARGUMENTS, "completed"));
        }
        output
    }

    /// The streamed answer: one SSE event per string, in the API's order.
    fn events(&self) -> Vec<String> {
        let mut ev = Events::default();
        let started = self.response("in_progress", Vec::new(), Value::Null);
        ev.push("response.created", json!({"response": started}));
        ev.push("response.in_progress", json!({"response": started}));

        let text = self.text.as_str();
        ev.push(
            "response.output_item.added",
            json!({"output_index": 0, "item": message_item("in_progress", None)}),
        );
        ev.push(
            "response.content_part.added",
            json!({"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0,
                   "part": output_text("")}),
        );
        for word in reply_words(text) {
            ev.push(
                "response.output_text.delta",
                json!({"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0,
                       "delta": word, "logprobs": []}),
            );
        }
        ev.push(
            "response.output_text.done",
            json!({"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0,
                   "text": text, "logprobs": []}),
        );
        ev.push(
            "response.content_part.done",
            json!({"item_id": MESSAGE_ID, "output_index": 0, "content_index": 0,
                   "part": output_text(text)}),
        );
        ev.push(
            "response.output_item.done",
            json!({"output_index": 0, "item": message_item("completed", Some(text))}),
        );

        if let Some(name) = self.function {
            ev.push(
                "response.output_item.added",
                json!({"output_index": 1, "item": call_item(name, "", "in_progress")}),
            );
            for delta in tool_argument_deltas() {
                ev.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": CALL_ITEM_ID, "output_index": 1, "delta": delta}),
                );
            }
            ev.push(
                "response.function_call_arguments.done",
                json!({"item_id": CALL_ITEM_ID, "output_index": 1, "name": name,
                       "arguments": TOOL_ARGUMENTS}),
            );
            ev.push(
                "response.output_item.done",
                json!({"output_index": 1, "item": call_item(name, TOOL_ARGUMENTS, "completed")}),
            );
        }

        let done = self.response("completed", self.output(), self.usage());
        ev.push("response.completed", json!({"response": done}));
        ev.0
    }
}

/// Streaming events, numbered in the order they are pushed.
#[derive(Default)]
struct Events(Vec<String>);

impl Events {
    /// Adds an event of type `kind` with `fields` (an object) between its `type` and its
    /// `sequence_number`.
    fn push(&mut self, kind: &str, fields: Value) {
        let mut data = json!({"type": kind});
        if let (Some(d), Value::Object(fields)) = (data.as_object_mut(), fields) {
            d.extend(fields);
            d.insert("sequence_number".into(), Value::from(self.0.len()));
        }
        self.0.push(sse_event(kind, &data));
    }
}

/// The assistant's message item; its one `output_text` part once there is text.
fn message_item(status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.map(output_text).into_iter().collect();
    json!({"type": "message", "id": MESSAGE_ID, "status": status, "role": "assistant",
           "content": content})
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

fn call_item(name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": CALL_ITEM_ID, "call_id": CALL_ID, "name": name,
           "arguments": arguments, "status": status})
}

/// The text of the last user message in `input`: a string is one, else the last message
/// item with role `user`, its content a string or `input_text` parts.
fn last_user_text(input: &Value) -> String {
    let items = match input {
        Value::String(s) => return s.clone(),
        Value::Array(items) => items,
        _ => return String::new(),
    };
    let last = items.iter().rev().find(|item| {
        matches!(
            item.get("type").and_then(Value::as_str),
            None | Some("message")
        ) && item.get("role").and_then(Value::as_str) == Some("user")
    });
    match last.and_then(|item| item.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("input_text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

//! The mock's OpenAI Responses API (`POST /responses`), whole and streamed: its chat answer
//! for the same conversation, in the Responses shape.

use bytes::BytesMut;
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;

use super::openai::{chat_completion, chat_events};
use super::{send_events, send_whole, Behaviour, Fault, State};
use crate::core::StreamTranslator;
use crate::front::{responses, ChatToResponsesStream};

pub(super) async fn responses_create(
    sock: &mut TcpStream,
    body: &Value,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    if let Some(id) = body.get("previous_response_id").and_then(Value::as_str) {
        let b = json!({"error": {"message": format!("Previous response with id '{id}' not found."),
            "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}});
        send_whole(sock, 400, "", b.to_string().as_bytes()).await?;
        return Ok(true);
    }
    // The same conversation as a chat request (what the mock knows how to answer).
    let mut req = body.as_object().cloned().unwrap_or_default();
    req.remove("store");
    let chat = match responses::to_chat(&req) {
        Ok(c) => Value::Object(c),
        Err(e) => {
            send_whole(sock, 400, "", &e.body()).await?;
            return Ok(true);
        }
    };
    let model = chat
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string();
    if chat.get("stream").and_then(Value::as_bool) != Some(true) {
        let completion = serde_json::to_vec(&chat_completion(&chat, behaviour)).expect("JSON");
        let b = responses::from_chat_response(&completion, &model).unwrap_or_default();
        send_whole(sock, 200, "", &b).await?;
        return Ok(true);
    }
    let mut chat = chat;
    chat["stream_options"] = json!({"include_usage": true});
    let mut enc = ChatToResponsesStream::new(&model);
    let mut out = BytesMut::new();
    for e in chat_events(&chat, behaviour) {
        let _ = enc.feed(e.as_bytes(), &mut out);
    }
    let _ = enc.finish(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let events: Vec<String> = text.split_inclusive("\n\n").map(str::to_string).collect();
    let mut err = Map::new();
    err.insert("type".into(), Value::from("error"));
    err.insert("code".into(), Value::from("server_error"));
    err.insert(
        "message".into(),
        Value::from("The server had an error while processing your request."),
    );
    err.insert("param".into(), Value::Null);
    err.insert("sequence_number".into(), Value::from(4));
    let error_event = format!("event: error\ndata: {}\n\n", Value::Object(err));
    send_events(sock, events, &error_event, behaviour, fault, st).await
}

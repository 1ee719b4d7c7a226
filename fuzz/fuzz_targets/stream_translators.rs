//! Every stream translator, fed arbitrary bytes split at an arbitrary point: no panic, and the
//! output is the same however the input is split. The front doors' encoders and native relays
//! (Anthropic Messages, Responses) get the same bytes: no panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice::config::ProviderKind;
use sluice::front::native::{NativeMessagesStream, NativeResponsesStream};
use sluice::front::{ChatToMessagesStream, ChatToResponsesStream};
use sluice::core::StreamTranslator;
use sluice::providers::Wire;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len().max(1);
    let input = &data[1..];
    let doors: [Box<dyn Fn() -> Box<dyn StreamTranslator>>; 4] = [
        Box::new(|| Box::new(ChatToMessagesStream::new("m"))),
        Box::new(|| Box::new(ChatToResponsesStream::new("m"))),
        Box::new(|| Box::new(NativeMessagesStream::new("m"))),
        Box::new(|| Box::new(NativeResponsesStream::new("m"))),
    ];
    for door in &doors {
        let mut t = door();
        let mut out = BytesMut::new();
        let (a, b) = input.split_at(split.min(input.len()));
        let ok = t.feed(a, &mut out).is_ok() && t.feed(b, &mut out).is_ok();
        match ok.then(|| t.finish(&mut out)) {
            Some(Ok(())) => {}
            _ => {
                let _ = t.error_event(&sluice::core::ApiError::bad_gateway("x"));
            }
        }
    }
    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Groq,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Ollama,
    ] {
        let run = |parts: &[&[u8]]| {
            let mut t: Box<dyn StreamTranslator> = Wire::of(kind).stream("m", true);
            let mut out = BytesMut::new();
            let mut ok = true;
            for p in parts {
                if t.feed(p, &mut out).is_err() {
                    ok = false;
                    break;
                }
            }
            let finished = ok && t.finish(&mut out).is_ok();
            (out, ok, finished)
        };
        let whole = run(&[input]);
        let split_at = split.min(input.len());
        let (a, b) = input.split_at(split_at);
        let parts = run(&[a, b]);
        if whole.1 && parts.1 {
            assert_eq!(
                without_created(&whole.0),
                without_created(&parts.0),
                "output depends on the split"
            );
            assert_eq!(whole.2, parts.2);
        }
    }
});

/// The events without `created` (the two runs may straddle a second) and `id` (made up for
/// providers that give none).
fn without_created(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| {
            let mut v: serde_json::Value =
                serde_json::from_str(d).unwrap_or(serde_json::Value::String(d.to_string()));
            if let Some(o) = v.as_object_mut() {
                o.remove("created");
                // Ollama answers carry no id: sluice makes one up per stream.
                o.remove("id");
            }
            v
        })
        .collect()
}

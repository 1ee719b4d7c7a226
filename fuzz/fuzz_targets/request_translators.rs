//! Request translation for every wire format on arbitrary JSON: an error or a body, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::config::ProviderKind;
use sluice::providers::Wire;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) else {
        return;
    };
    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Groq,
        ProviderKind::Xai,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Ollama,
    ] {
        for embeddings in [false, true] {
            let mut b = body.clone();
            if let Ok(out) = Wire::of(kind).render(&mut b, "grok-4", true, embeddings) {
                serde_json::from_slice::<serde_json::Value>(&out).expect("valid JSON out");
            }
        }
        let _ = Wire::of(kind).response(data, "m", false);
    }
});

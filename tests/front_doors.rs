//! The other front doors — Anthropic Messages (`/v1/messages`) and OpenAI Responses
//! (`/v1/responses`) — through the running gateway, with the official Anthropic and OpenAI
//! Python SDKs as clients, against Anthropic-wire and OpenAI-wire mock providers.

mod common;

use common::*;
use serde_json::{json, Value};

async fn run_script(gw: &Gateway, script: &str, base: &str, extra: &[&str]) {
    let mut args = vec![base, KEY];
    args.extend_from_slice(extra);
    run_sdk_script(gw, script, &args).await;
}

fn config(kind: &str, url: &str, extra: &str) -> String {
    let (base, key) = match kind {
        "anthropic" => (url.to_string(), format!(", api_key: {PROVIDER_KEY}")),
        "openai" => (format!("{url}/v1"), format!(", api_key: {PROVIDER_KEY}")),
        _ => (format!("{url}/v1"), String::new()),
    };
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  up: {{ kind: {kind}, base_url: "{base}"{key} }}
models:
  claude-fast:
    - {{ provider: up, model: claude-3-5-haiku-latest }}
  gpt-4o-mini:
    - {{ provider: up, model: upstream-gpt }}
{extra}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_against_an_anthropic_deployment_is_passed_through() {
    let m = mock().await;
    let gw = Gateway::start(&config("anthropic", &m.url(), ""));
    run_script(&gw, "anthropic_client.py", &gw.url(), &["count_tokens"]).await;
    let reqs = m.requests();
    assert!(reqs.iter().any(|r| r.path == "/v1/messages/count_tokens"));
    // Native: the client's own body went upstream, renamed, with sluice's credential.
    let first = reqs.iter().find(|r| r.path == "/v1/messages").unwrap();
    let body = first.json();
    assert_eq!(body["model"], "claude-3-5-haiku-latest");
    assert_eq!(
        body["system"], "Be brief.",
        "the client's body, not a translation"
    );
    assert_eq!(first.header("x-api-key"), Some(PROVIDER_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_against_an_openai_deployment_is_translated() {
    let m = mock().await;
    let gw = Gateway::start(&config("openai_compatible", &m.url(), ""));
    run_script(&gw, "anthropic_client.py", &gw.url(), &[]).await;
    assert!(m
        .requests()
        .iter()
        .all(|r| r.path == "/v1/chat/completions"));
    let first = m.requests()[0].json();
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    // count_tokens needs an Anthropic deployment.
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.port,
        "POST",
        "/v1/messages/count_tokens",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"model": "claude-fast", "messages": [{"role": "user", "content": "x"}]})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_sdk_against_openai_and_anthropic_deployments() {
    for kind in ["openai_compatible", "anthropic"] {
        let m = mock().await;
        let gw = Gateway::start(&config(kind, &m.url(), ""));
        run_script(&gw, "responses_client.py", &format!("{}/v1", gw.url()), &[]).await;
        let want = if kind == "anthropic" {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        assert!(m.requests().iter().all(|r| r.path == want), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_sdk_against_an_openai_deployment_is_passed_through() {
    let m = mock().await;
    let gw = Gateway::start(&config("openai", &m.url(), ""));
    run_script(&gw, "responses_client.py", &format!("{}/v1", gw.url()), &[]).await;
    let reqs = m.requests();
    assert!(reqs.iter().all(|r| r.path == "/v1/responses"), "native");
    let first = reqs[0].json();
    assert_eq!(first["instructions"], "Be brief.", "the client's own body");
    assert_eq!(first["model"], "upstream-gpt");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    // Stateful features are OpenAI's business here: its own answer comes back.
    assert!(reqs
        .iter()
        .any(|r| r.json().get("previous_response_id").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_doors_share_guardrails_limits_and_logs() {
    let secret = "sk-proj-FAKEfakeFAKEfake0123456789abcdefXYZ";
    let m = MockProvider::start(
        "127.0.0.1:0",
        Behaviour {
            reply: Some(format!("the key is {secret} ok")),
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    let gw = Gateway::start(&config(
        "anthropic",
        &m.url(),
        "guardrails:\n  - { name: no-secrets, type: secrets, action: redact }\n\
         default_guardrails: [no-secrets]\n\
         limits:\n  default: { requests_per_minute: 100 }\n",
    ));
    let auth = format!("Bearer {KEY}");
    let post_as = |path: &'static str, body: Value| {
        let auth = auth.clone();
        async move {
            request(
                gw.port,
                "POST",
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .await
        }
    };
    // Anthropic client, Anthropic deployment, output guardrails: served through the
    // translated path so the scanner sees every chunk.
    let r = post_as(
        "/v1/messages",
        json!({"model": "claude-fast", "max_tokens": 50, "stream": true,
               "messages": [{"role": "user", "content": format!("my key {secret}")}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(!text.contains("FAKEfake"), "{text}");
    assert!(text.contains("[REDACTED:openai_key]"), "{text}");
    assert!(r.header("x-ratelimit-limit-requests").is_some());
    let sent = String::from_utf8_lossy(&m.requests()[0].body).to_string();
    assert!(!sent.contains("FAKEfake"), "input redacted too: {sent}");

    let r = post_as(
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "hello"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("[REDACTED:openai_key]"));
    // One access log for every door (written after each response: wait for it).
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            let log = gw.access_log();
            log.iter()
                .any(|l| l["path"] == "/v1/messages" && l["status"] == 200)
                && log
                    .iter()
                    .any(|l| l["path"] == "/v1/responses" && l["prompt_tokens"].as_u64() > Some(0))
        })
        .await,
        "{}",
        gw.log()
    );

    // Errors come back in each door's own shape.
    let r = post_as(
        "/v1/messages",
        json!({"model": "nope", "max_tokens": 5, "messages": []}),
    )
    .await;
    assert_eq!(r.json()["type"], "error", "{}", r.text());
    let r = post_as(
        "/v1/responses",
        json!({"model": "gpt-4o-mini", "input": "x", "store": true}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_provider_that_ignores_stream_still_gives_the_client_events() {
    let m = mock().await;
    let gw = Gateway::start(&config("anthropic", &m.url(), ""));
    m.push_fault(Fault::IgnoreStream);
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.port,
        "POST",
        "/v1/messages",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        json!({"model": "claude-fast", "max_tokens": 50, "stream": true,
               "messages": [{"role": "user", "content": "Say hello"}]})
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text();
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(
        text.contains("Say hello") && text.contains("event: message_stop"),
        "{text}"
    );
}

//! The official OpenAI Python SDK as the client (installed by the README's setup command),
//! against an OpenAI-wire provider and against Anthropic, Gemini and Ollama ones.

mod common;

use common::*;

async fn run_sdk(gw: &Gateway) {
    let url = format!("{}/v1", gw.url());
    run_sdk_script(gw, "openai_client.py", &[&url, KEY]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_works_unchanged() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    run_sdk(&gw).await;
    assert_eq!(
        m.request_count(),
        8,
        "chat, two streams, three tool-call requests, the error stream and embeddings \
         reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_with_an_anthropic_deployment() {
    let claude = mock().await;
    let openai = mock().await;
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  claude: {{ kind: anthropic, base_url: "{}", api_key: {PROVIDER_KEY} }}
  oai: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: claude, model: claude-3-5-haiku-latest }}
  embed:
    - {{ provider: oai, model: upstream-embed }}
  other-model:
    - {{ provider: claude, model: claude-3-5-sonnet-latest }}
"#,
        claude.url(),
        openai.url()
    ));
    run_sdk(&gw).await;
    assert_eq!(
        claude.request_count(),
        7,
        "chat, two streams, three tool-call requests and the error stream went to Anthropic"
    );
    assert!(claude.requests().iter().all(|r| r.path == "/v1/messages"));
    assert_eq!(openai.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_with_a_gemini_deployment() {
    let gem = mock().await;
    let openai = mock().await;
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  gem: {{ kind: gemini, base_url: "{}", api_key: {PROVIDER_KEY} }}
  oai: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: gem, model: gemini-2.0-flash }}
  embed:
    - {{ provider: oai, model: upstream-embed }}
  other-model:
    - {{ provider: gem, model: gemini-2.5-pro }}
"#,
        gem.url(),
        openai.url()
    ));
    run_sdk(&gw).await;
    assert_eq!(
        gem.request_count(),
        7,
        "chat, two streams, three tool-call requests and the error stream went to Gemini"
    );
    assert_eq!(openai.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_with_an_ollama_deployment() {
    let local = mock().await;
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  local: {{ kind: ollama, base_url: "{}" }}
models:
  gpt-4o-mini:
    - {{ provider: local, model: "llama3.2:3b" }}
  embed:
    - {{ provider: local, model: all-minilm }}
  other-model:
    - {{ provider: local, model: qwen2.5 }}
"#,
        local.url()
    ));
    run_sdk(&gw).await;
    let paths: Vec<String> = local.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/api/chat").count(),
        7,
        "chat, two streams, three tool-call requests and the error stream: {paths:?}"
    );
    assert_eq!(paths.iter().filter(|p| *p == "/api/embed").count(), 1);
}

//! The official OpenAI Python SDK as the client (installed by the README's setup command).

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_works_unchanged() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_client.py");
    let url = format!("{}/v1", gw.url());
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&url)
        .arg(KEY)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'openai'"),
        "the openai package is missing: run the README's setup command \
         (pip install -r tests/sdk/requirements.txt)"
    );
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}\nsluice log:\n{}",
        gw.log()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert_eq!(
        m.request_count(),
        4,
        "chat, two streams and embeddings reached the provider"
    );
}

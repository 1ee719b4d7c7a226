//! The official SDKs as clients: the Python scripts in tests/sdk, installed by the README's
//! setup command.

use super::Gateway;

/// Runs `tests/sdk/<script> args…` and asserts it printed "all checks passed"; the gateway's
/// log is shown when it did not.
pub async fn run_sdk_script(gw: &Gateway, script: &str, args: &[&str]) {
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "an SDK is missing: run the README's setup command \
         (pip install -r tests/sdk/requirements.txt)\n{stderr}"
    );
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{stderr}\nsluice log:\n{}",
        gw.log()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

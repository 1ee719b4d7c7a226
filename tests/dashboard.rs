//! The usage dashboard (`/ui/` on the admin listener) in a real browser: real traffic through
//! the gateway (two keys, whole and streamed answers, a guardrail block, a provider failing
//! every attempt, a key with a budget), then headless Chromium driven by Selenium
//! (`tests/browser/dashboard.py`) logs in and reads the numbers back off the page. Then the
//! Keys view: a managed key created through the page's form, its secret read off the page and
//! used at the client port, rotated and revoked; and the admin API's rule that the session
//! cookie counts for a change only with the dashboard's header.
//!
//! Needs `/usr/bin/chromium`, `/usr/bin/chromedriver` and Python's `selenium` (README: Setup).
//! Without them the test passes with "skipped: no chromium", unless `SLUICE_REQUIRE_BROWSER=1`
//! (CI) makes that a failure.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "dashboard-admin-token-5f2c9e17";
/// A key name with markup: the page must show it as text.
const OPS: &str = "<b>ops</b>";
/// The managed key the browser makes, and its team (markup, to be shown as text).
const MADE: &str = "browser-made";
const MADE_TEAM: &str = "<i>red</i> & co";

/// Debian's Chromium and its driver (`SLUICE_CHROMIUM`, `SLUICE_CHROMEDRIVER` override them;
/// the script reads the same variables).
fn browser_paths() -> [String; 2] {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    [
        var("SLUICE_CHROMIUM", "/usr/bin/chromium"),
        var("SLUICE_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ]
}

/// What is missing to run a browser, if anything.
fn browser_missing() -> Option<String> {
    for bin in browser_paths() {
        if !Path::new(&bin).is_file() {
            return Some(format!("{bin} not found"));
        }
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match selenium {
        Ok(s) if s.success() => None,
        _ => Some("python3 cannot import selenium".into()),
    }
}

fn config(upstream: &str, db: &Path) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY}, limits: {{ budget: {{ daily_usd: 10 }} }} }}
  - {{ name: "{OPS}", key: {LIMITED_KEY}, models: ["gpt-*"] }}
providers:
  mock: {{ kind: openai_compatible, base_url: "{upstream}/v1", api_key: {PROVIDER_KEY} }}
models:
  gpt-4o-mini:
    - {{ provider: mock, model: upstream-gpt }}
pricing:
  gpt-4o-mini: {{ input: 1000, output: 2000 }}
retry:
  max_attempts: 2
  backoff_base: 10ms
guardrails:
  - {{ name: codenames, type: regex, patterns: ["(?i)project falcon"], action: block, apply_to: [input] }}
default_guardrails: [codenames]
usage:
  path: {}
"#,
        db.display()
    )
}

/// Eight requests: five for team-a (three whole, one streamed, one blocked by a guardrail),
/// three for the second key (two answered, one failing every attempt with a 500).
async fn traffic(gw: &Gateway, m: &MockProvider) {
    for _ in 0..3 {
        chat_ok(gw.port).await;
    }
    let s =
        read_all(post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await)
            .await;
    assert_eq!(s.status, 200, "{}", s.text());
    for _ in 0..2 {
        let r = post_chat_as(gw.port, LIMITED_KEY, &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut body = chat("gpt-4o-mini", false);
    body["messages"][0]["content"] = json!("what is Project Falcon?");
    post(gw.port, "/v1/chat/completions", &body)
        .await
        .assert_error(400, "content_filter");
    m.set_sticky_fault(Some(Fault::Status {
        status: 500,
        body: json!({"error": {"message": "mock says 500", "type": "server_error"}}).to_string(),
        retry_after: None,
    }));
    let r = post_chat_as(gw.port, LIMITED_KEY, &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 500, "{}", r.text());
    m.set_sticky_fault(None);
}

/// Polls an admin endpoint (with the token) until `pred` holds.
async fn admin_until(gw: &Gateway, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let r = get(gw.admin_port, path, ADMIN_TOKEN).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        last = r.json();
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never matched; last: {last}");
}

/// Runs the Selenium script with `args`, at most five minutes; its output, and whether it
/// passed.
fn run_browser(args: &Value, dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    let out_path = dir.join("browser.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("python3")
        .arg(script)
        .arg(args.to_string())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start python3");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) => (s.success(), output),
        None => (
            false,
            format!("{output}\n(the browser script ran over 5 minutes)"),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_real_traffic_in_a_browser() {
    if let Some(why) = browser_missing() {
        assert!(
            std::env::var("SLUICE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "SLUICE_REQUIRE_BROWSER=1 but {why} (README: Setup installs chromium, \
             chromium-driver and selenium)"
        );
        eprintln!("skipped: no chromium ({why})");
        return;
    }
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with_admin_token(
        &config(&m.url(), &dir.path().join("usage.db")),
        ADMIN_TOKEN,
    );
    traffic(&gw, &m).await;

    // Once the writer has stored all eight, the report must agree with the traffic.
    let totals = admin_until(&gw, "/usage?since=1h", |v| v[0]["requests"] == 8).await;
    assert_eq!(totals[0]["errors"], 2, "{totals}");
    let report = admin_until(&gw, "/usage/report?since=24h", |v| {
        v["totals"]["requests"] == 8
    })
    .await;
    let tokens = ["prompt_tokens", "completion_tokens"]
        .iter()
        .map(|f| report["totals"][f].as_u64().unwrap())
        .sum::<u64>();
    assert!(tokens > 0, "{report}");

    // Without a token: 401 and no data, before any browser.
    let r = request(gw.admin_port, "GET", "/ui/", &[], b"").await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("name=\"token\"") && !r.text().contains("team-a"));

    // A gateway without a ledger and without a token, for the ledger-off notice.
    let off = Gateway::start(&standard_config(&m.url()));

    let args = json!({
        "url": format!("http://127.0.0.1:{}", gw.admin_port),
        "off_url": format!("http://127.0.0.1:{}", off.admin_port),
        "token": ADMIN_TOKEN,
        "keys": ["team-a", OPS],
        "requests": 8,
        "errors": 2,
        "error_rate": "25%",
        "tokens": tokens,
        "key_requests": {"team-a": 5, OPS: 3},
        "model": "gpt-4o-mini",
        "failure": {"key": OPS, "status": 500, "error": "upstream"},
        "budget": {"key": "team-a", "budget": "$10.00", "period": "daily"},
        "guardrail": "codenames",
        "client_url": format!("http://127.0.0.1:{}", gw.port),
        "chat": chat("gpt-4o-mini", false),
        "new_key": {"name": MADE, "team": MADE_TEAM},
        "off_keys": ["team-a", "limited"],
    });
    let (passed, output) = run_browser(&args, dir.path());
    println!("{output}");
    assert!(passed, "the browser checks failed:\n{output}");

    // What the page did, as the API sees it.
    let made = get(gw.admin_port, &format!("/keys/{MADE}"), ADMIN_TOKEN).await;
    assert_eq!(made.status, 200, "{}", made.text());
    let made = made.json();
    assert_eq!(made["status"], "revoked", "{made}");
    assert_eq!(made["metadata"]["team"], MADE_TEAM, "{made}");
    assert_eq!(made["models"], json!(["gpt-*"]), "{made}");
    cookie_changes_need_the_header(&gw).await;
}

/// The session cookie: enough for a GET; for a change only with `X-Sluice-Dashboard: 1`.
async fn cookie_changes_need_the_header(gw: &Gateway) {
    let r = with_cookie(gw, "GET", "/keys", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    with_cookie(gw, "POST", "/keys", false)
        .await
        .assert_error(401, "unauthorized");
    let r = with_cookie(gw, "POST", "/keys", true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    with_cookie(gw, "DELETE", "/keys/cookie-made", false)
        .await
        .assert_error(401, "unauthorized");
    let r = with_cookie(gw, "DELETE", "/keys/cookie-made", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "revoked");
}

/// An admin request with the session cookie (and the dashboard's header when `marked`); a
/// POST creates key `cookie-made`.
async fn with_cookie(gw: &Gateway, method: &str, path: &str, marked: bool) -> Response {
    let cookie = format!("sluice_admin={ADMIN_TOKEN}");
    let mut headers = vec![
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
    ];
    if marked {
        headers.push(("x-sluice-dashboard", "1"));
    }
    let body = match method {
        "POST" => json!({"name": "cookie-made"}).to_string(),
        _ => String::new(),
    };
    request(gw.admin_port, method, path, &headers, body.as_bytes()).await
}

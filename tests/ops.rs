//! Operations: Prometheus metrics, the access log, secrets kept out of every output, and the
//! shipped Prometheus and systemd files.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

fn metric_lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(family) && !l.starts_with('#'))
        .collect()
}

/// The value of the sample whose line starts with `family{` and contains every label in `labels`.
fn sample(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
    metric_lines(text, family)
        .into_iter()
        .find(|l| l.starts_with(&format!("{family}{{")) && labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_traffic() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  a: {{ kind: openai_compatible, base_url: "{}/v1" }}
  b: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: a, model: model-a }}
    - {{ provider: b, model: model-b, priority: 1 }}
"#,
        a.url(),
        b.url()
    ));
    assert_eq!(
        post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false))
            .await
            .status,
        200
    );
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    s.rest().await;
    a.push_fault(Fault::Status {
        status: 503,
        body: "{}".into(),
        retry_after: None,
    });
    assert_eq!(
        post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false))
            .await
            .status,
        200
    );
    post(
        gw.port,
        "/v1/chat/completions",
        &chat("no-such-model", false),
    )
    .await;
    request(gw.port, "GET", "/v1/models", &[], b"").await;

    let text = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = get(gw.admin_port, "/metrics", "").await;
            assert_eq!(m.status, 200);
            assert!(m.header("content-type").unwrap().starts_with("text/plain"));
            let text = m.text();
            // The access log and metrics are written after the response; wait for the last.
            let total: f64 = metric_lines(&text, "sluice_requests_total{")
                .iter()
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if total == 5.0 {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("metrics reflect the traffic");

    let ok = [
        "model=\"gpt-4o-mini\"",
        "key=\"team-a\"",
        "status_class=\"2xx\"",
    ];
    assert_eq!(
        sample(
            &text,
            "sluice_requests_total",
            &[&ok[..], &["stream=\"true\""]].concat()
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_requests_total",
            &["model=\"none\"", "status_class=\"4xx\""]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "sluice_requests_total",
            &["key=\"none\"", "status_class=\"4xx\""]
        ),
        Some(1.0),
        "the unauthenticated request"
    );
    assert!(
        !text.contains("no-such-model"),
        "client input never becomes a label"
    );
    assert!(
        text.contains("\nsluice_access_log_dropped_total 0\n"),
        "nothing dropped from the access log: {text}"
    );
    assert!(sample(
        &text,
        "sluice_request_duration_seconds_count",
        &["model=\"gpt-4o-mini\""]
    )
    .is_some());
    assert!(sample(
        &text,
        "sluice_time_to_first_token_seconds_count",
        &["provider=\"a\""]
    )
    .is_some());
    assert!(
        sample(
            &text,
            "sluice_stream_chunk_gap_seconds_count",
            &["provider=\"a\""]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        sample(
            &text,
            "sluice_tokens_total",
            &["kind=\"completion\"", "key=\"team-a\""]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        sample(
            &text,
            "sluice_upstream_attempts_total",
            &["provider=\"a\"", "outcome=\"retry\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_upstream_attempts_total",
            &["provider=\"b\"", "outcome=\"success\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sluice_failovers_total", &["model=\"gpt-4o-mini\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sluice_deployment_available", &["provider=\"b\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "sluice_active_streams", &[]).or_else(|| {
            metric_lines(&text, "sluice_active_streams")
                .first()?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        }),
        Some(0.0)
    );

    // Not on the client listener.
    let auth = format!("Bearer {KEY}");
    let r = request(gw.port, "GET", "/metrics", &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_the_admin_token_when_set() {
    let m = mock().await;
    let gw = Gateway::start_with_admin_token(&standard_config(&m.url()), "test-admin-token");
    assert_eq!(get(gw.admin_port, "/metrics", "wrong").await.status, 401);
    assert_eq!(
        request(gw.admin_port, "GET", "/metrics", &[], b"")
            .await
            .status,
        401
    );
    assert_eq!(
        get(gw.admin_port, "/health/deployments", "wrong")
            .await
            .status,
        401
    );
    let ok = get(gw.admin_port, "/metrics", "test-admin-token").await;
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("sluice_requests_total") || ok.text().contains("# HELP sluice_"));
}

/// The access log is written in batches off the request path; what is queued when the
/// server stops is written before it exits — here the line of a stream that ended during
/// the shutdown's drain, moments before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_queued_at_shutdown_are_written() {
    let m = paced_mock("tok ".repeat(10), Duration::from_millis(30)).await;
    let mut gw = Gateway::start(&standard_config(&m.url()));
    for _ in 0..5 {
        let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 200);
    }
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    s.next_chunk().await.expect("stream started");
    gw.signal("TERM");
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(eventually(Duration::from_secs(15), || gw.exited()).await);
    let lines = gw.access_log();
    assert_eq!(lines.len(), 6, "{}", gw.log());
    assert!(lines.iter().all(|l| l["status"] == 200));
    let streams = lines.iter().filter(|l| l["stream"] == true).count();
    assert_eq!(streams, 1, "the stream's line: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_json_with_the_documented_fields() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("x-request-id", "trace-42")],
        chat("gpt-4o-mini", false).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    s.rest().await;
    assert!(eventually(Duration::from_secs(3), || gw.access_log().len() == 2).await);
    let lines = gw.access_log();
    // Lines are in the order requests ended, which a loaded machine can swap.
    let line = |stream: bool| lines.iter().find(|l| l["stream"] == stream).unwrap();
    let (first, streamed) = (line(false), line(true));
    for field in [
        "ts",
        "request_id",
        "method",
        "path",
        "status",
        "key",
        "model",
        "provider",
        "upstream_model",
        "upstream_status",
        "attempts",
        "stream",
        "ttfb_ms",
        "duration_ms",
        "prompt_tokens",
        "completion_tokens",
        "client",
        "http",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["request_id"], "trace-42");
    assert_eq!(first["key"], "team-a");
    assert_eq!(first["model"], "gpt-4o-mini");
    assert_eq!(first["upstream_model"], "upstream-gpt");
    assert_eq!(first["status"], 200);
    assert_eq!(first["attempts"], 1);
    assert!(first["completion_tokens"].as_u64().unwrap() > 0);
    assert!(streamed["ttfb_ms"].is_u64());
    assert!(
        streamed["completion_tokens"].as_u64().unwrap() > 0,
        "streamed usage is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_appear_in_any_output() {
    const CANARY_GATEWAY: &str = "sk-canary-gateway-7f3a9c1e5b";
    const CANARY_PROVIDER: &str = "sk-canary-provider-2d8e4f6a0c";
    let m = mock().await;
    let cfg = format!(
        r#"
keys:
  - {{ name: canary, key: {CANARY_GATEWAY} }}
providers:
  p: {{ kind: openai_compatible, base_url: "{}/v1", api_key: {CANARY_PROVIDER} }}
models:
  gpt-4o-mini:
    - {{ provider: p, model: upstream }}
"#,
        m.url()
    );
    let gw = Gateway::start(&cfg);
    let mut bodies = Vec::new();
    let body = chat("gpt-4o-mini", false).to_string();
    let stream = chat("gpt-4o-mini", true).to_string();
    let send = |headers: Vec<(&'static str, String)>, body: String| {
        let port = gw.port;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request(port, "POST", "/v1/chat/completions", &h, body.as_bytes())
                .await
                .text()
        }
    };
    let auth = || vec![("authorization", format!("Bearer {CANARY_GATEWAY}"))];
    bodies.push(send(auth(), body.clone()).await);
    bodies.push(send(auth(), stream.clone()).await);
    bodies.push(send(auth(), "{bad json".into()).await);
    bodies.push(get(gw.port, "/v1/models", CANARY_GATEWAY).await.text());
    // A wrong key that contains the canary as a prefix, and the canary in another header.
    let wrong = vec![("authorization", format!("Bearer {CANARY_GATEWAY}x"))];
    bodies.push(send(wrong, body.clone()).await);
    bodies.push(
        send(
            vec![("x-api-key", CANARY_PROVIDER.to_string())],
            body.clone(),
        )
        .await,
    );
    // The provider rejects the key and echoes it, as OpenAI does; then it fails with the key in
    // its error message on every attempt; then it fails mid-stream.
    m.set_behaviour(Behaviour {
        expected_key: Some("sk-test-other".into()),
        ..Behaviour::default()
    });
    bodies.push(send(auth(), body.clone()).await);
    m.set_behaviour(Behaviour::default());
    for _ in 0..3 {
        m.push_fault(Fault::Status {
            status: 500,
            body: json!({"error": {"message": format!("upstream saw key {CANARY_PROVIDER}")}})
                .to_string(),
            retry_after: None,
        });
    }
    bodies.push(send(auth(), body.clone()).await);
    m.push_fault(Fault::ErrorEventAfterChunks(2));
    bodies.push(send(auth(), stream.clone()).await);
    m.push_fault(Fault::ErrorEventSaying(
        2,
        format!("stream broke for key {CANARY_PROVIDER}"),
    ));
    bodies.push(send(auth(), stream.clone()).await);

    bodies.push(get(gw.admin_port, "/metrics", "").await.text());
    bodies.push(get(gw.admin_port, "/health/deployments", "").await.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    assert!(log.lines().count() > 10, "the logs were captured: {log}");
    for (what, text) in bodies
        .iter()
        .map(|b| ("response", b))
        .chain([("log", &log)])
    {
        for canary in [CANARY_GATEWAY, CANARY_PROVIDER] {
            assert!(
                !text.contains(canary),
                "{canary} leaked into a {what}:\n{text}"
            );
        }
    }
    // The provider did get its key, and only that.
    assert!(m
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(&format!("Bearer {CANARY_PROVIDER}"))));
}

fn tool(name: &str) -> std::path::PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} is not installed: run the README's setup command"
    );
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn prometheus_config_and_alert_rules_are_valid() {
    let promtool = tool("promtool");
    let root = env!("CARGO_MANIFEST_DIR");
    // promtool checks that the token file exists: point it at a stand-in.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "test-token").unwrap();
    let cfg = std::fs::read_to_string(format!("{root}/prometheus.yml"))
        .unwrap()
        .replace(
            "/etc/sluice/credentials/admin-token",
            token.to_str().unwrap(),
        );
    std::fs::create_dir(dir.path().join("prometheus")).unwrap();
    std::fs::copy(
        format!("{root}/prometheus/alerts.yml"),
        dir.path().join("prometheus/alerts.yml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), cfg).unwrap();
    let out = Command::new(&promtool)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&promtool)
        .args(["check", "rules", &format!("{root}/prometheus/alerts.yml")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
}

#[test]
fn systemd_unit_exposure_is_below_two() {
    let analyze = tool("systemd-analyze");
    let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/sluice.service");
    let out = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for sluice.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(score < 2.0, "exposure {score}:\n{text}");
}

/// The soft and hard "Max open files" of a process.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let hard = open_file_limits(std::process::id()).1;
    if hard <= 256 {
        eprintln!("skipped: the hard open-file limit is {hard}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sluice.yaml");
    let admin = free_port();
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:{}\nadmin: {{ listen: 127.0.0.1:{admin} }}\n\
             allow_inline_secrets: true\n{}",
            free_port(),
            standard_config("http://127.0.0.1:9")
        ),
    )
    .unwrap();
    // Started with a soft limit of 256, as a shell's `ulimit -S -n 256` leaves it.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -S -n 256 && exec \"$0\" run -c \"$1\""])
        .arg(bin())
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "sluice exited");
        assert!(std::time::Instant::now() < end, "sluice did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (soft, now_hard) = open_file_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(now_hard, hard);
    assert_eq!(soft, hard, "the soft limit was not raised");
}

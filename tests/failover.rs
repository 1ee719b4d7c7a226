//! Retries and failover before the first byte reaches the client, passive and active health,
//! `Retry-After`, and the retry budget — against fault-injecting mock providers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Model `gpt-4o-mini` served by provider `a` (first) and `b`, with the given extra options
/// per deployment (e.g. `priority: 1`).
fn two_providers(a: &MockProvider, b_url: &str, a_opts: &str, b_opts: &str, extra: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  a: {{ kind: openai_compatible, base_url: "{}/v1" }}
  b: {{ kind: openai_compatible, base_url: "{b_url}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: a, model: model-a{a_opts} }}
    - {{ provider: b, model: model-b{b_opts} }}
{extra}"#,
        a.url()
    )
}

fn status_fault(status: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        body: json!({"error": {"message": format!("mock says {status}"), "type": "server_error", "code": null}}).to_string(),
        retry_after: retry_after.map(str::to_string),
    }
}

fn log_attempts(gw: &Gateway) -> Vec<u64> {
    gw.access_log()
        .iter()
        .filter_map(|l| l["attempts"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_until_success() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}retry:\n  backoff_base: 10ms\n",
        standard_config(&m.url())
    ));
    m.push_fault(status_fault(500, None));
    m.push_fault(status_fault(502, None));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(m.request_count(), 3, "two failures, then the success");
    assert!(
        eventually(Duration::from_secs(2), || log_attempts(&gw) == vec![3]).await,
        "{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_never_retried() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    for status in [400, 401, 403, 404, 413, 422] {
        m.push_fault(status_fault(status, None));
        let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        let expected = if status == 401 || status == 403 {
            502
        } else {
            status
        };
        assert_eq!(r.status, expected, "{status}: {}", r.text());
    }
    assert_eq!(m.request_count(), 6, "one attempt each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_everywhere_is_bounded_and_clear() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}retry:\n  max_attempts: 3\n  backoff_base: 10ms\n",
        standard_config(&m.url())
    ));
    m.set_sticky_fault(Some(status_fault(500, None)));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.json();
    assert_eq!(r.status, 500, "{v}");
    assert_eq!(v["error"]["message"], "mock says 500");
    assert_eq!(m.request_count(), 3, "exactly max_attempts");

    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(
        s.status, 500,
        "a stream that never started is a plain error"
    );
    s.rest().await;
    assert_eq!(m.request_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_deployment_is_retried_after_retry_after() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    m.push_fault(status_fault(429, Some("1")));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(m.request_count(), 2);
    assert!(
        took >= Duration::from_secs(1),
        "retried after {took:?}, before Retry-After"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_deployment_fails_over_immediately_when_another_exists() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "",
    ));
    a.push_fault(status_fault(429, Some("30")));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((a.request_count(), b.request_count()), (1, 1));
    assert_eq!(
        b.requests()[0].json()["model"],
        "model-b",
        "translated for the other deployment"
    );
    // While `a` cools down, traffic goes to `b` without touching `a`.
    for _ in 0..5 {
        chat_ok(gw.port).await;
    }
    assert_eq!((a.request_count(), b.request_count()), (1, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_beyond_max_wait_is_returned_to_the_client() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}retry:\n  max_wait: 2s\n",
        standard_config(&m.url())
    ));
    m.push_fault(status_fault(429, Some("120")));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((118..=120).contains(&ra), "{ra}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The provider is left alone until its Retry-After has passed.
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(429, "rate_limit_exceeded");
    assert!(r.header("retry-after").is_some(), "{v}");
    assert_eq!(m.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_deployment_beside_a_healthy_one() {
    let b = mock().await;
    let dead = free_port();
    let cfg = format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  dead: {{ kind: openai_compatible, base_url: "http://127.0.0.1:{dead}/v1" }}
  b: {{ kind: openai_compatible, base_url: "{}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: dead, model: model-a }}
    - {{ provider: b, model: model-b }}
"#,
        b.url()
    );
    let gw = Gateway::start(&cfg);
    for i in 0..20 {
        let stream = i % 2 == 1;
        let mut s = post_stream(
            gw.port,
            "/v1/chat/completions",
            &chat("gpt-4o-mini", stream),
        )
        .await;
        assert_eq!(s.status, 200, "request {i}");
        let body = s.rest().await;
        if stream {
            assert_eq!(sse_data(&body).last().unwrap(), "[DONE]");
        }
    }
    assert_eq!(b.request_count(), 20);
    let health = get(gw.admin_port, "/health/deployments", "").await.json();
    let deps = health["models"]["gpt-4o-mini"].as_array().unwrap().clone();
    assert_eq!(deps[0]["provider"], "dead");
    assert!(deps[0]["failures"].as_u64().unwrap() >= 1);
    assert_eq!(deps[0]["available"], false, "{health}");
    assert_eq!(deps[1]["available"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_before_first_byte_fails_over() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "timeouts:\n  first_byte: 400ms\n",
    ));
    a.push_fault(Fault::StallBeforeHeaders(Duration::from_secs(10)));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(b.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_failing_before_its_first_event_fails_over() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "",
    ));
    a.push_fault(Fault::DisconnectAfterChunks(0));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(s.status, 200);
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]", "{events:?}");
    assert!(stream_text(&events).contains("Say hello"));
    assert_eq!((a.request_count(), b.request_count()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_body_survives_a_failover() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "",
    ));
    a.push_fault(status_fault(503, None));
    let big: String = (0..1_200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let req = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]});
    let r = post(gw.port, "/v1/chat/completions", &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for m in [&a, &b] {
        let body = m.requests()[0].json();
        assert_eq!(
            body["messages"][0]["content"],
            req["messages"][0]["content"]
        );
    }
    assert_eq!(a.requests()[0].json()["model"], "model-a");
    assert_eq!(b.requests()[0].json()["model"], "model-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_tiers_and_weights() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "",
    ));
    for _ in 0..10 {
        chat_ok(gw.port).await;
    }
    assert_eq!(
        (a.request_count(), b.request_count()),
        (10, 0),
        "the lower tier waits"
    );

    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", weight: 3",
        ", weight: 1",
        "",
    ));
    for _ in 0..200 {
        chat_ok(gw.port).await;
    }
    let share = a.request_count() as f64 / 200.0;
    assert!((0.62..0.88).contains(&share), "weight 3:1 gave {share}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_eject_and_readmit() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        "",
        "",
        "health:\n  check:\n    interval: 200ms\n    timeout: 500ms\n    unhealthy_threshold: 2\n    healthy_threshold: 1\n",
    ));
    let provider_healthy = |name: &'static str| {
        let port = gw.admin_port;
        async move {
            get(port, "/health/deployments", "").await.json()["providers"][name]["healthy"]
                .as_bool()
                .unwrap()
        }
    };
    assert!(provider_healthy("a").await);
    a.set_sticky_fault(Some(status_fault(500, None)));
    let mut ejected = false;
    for _ in 0..50 {
        if !provider_healthy("a").await {
            ejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ejected, "a provider failing its checks is taken out");
    let ready = get(gw.admin_port, "/readyz", "").await;
    assert_eq!(ready.status, 200, "b still serves the model");
    let before = a.request_count();
    for _ in 0..10 {
        chat_ok(gw.port).await;
    }
    let chat_to_a = a
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(chat_to_a, 0, "no traffic to an ejected provider");

    a.set_sticky_fault(None);
    let mut back = false;
    for _ in 0..50 {
        if provider_healthy("a").await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "a provider passing its checks again is readmitted");
    assert!(a
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == "/v1/models"));
}

/// A server that answers `GET` with 503 to requests carrying `Authorization: Bearer <down>`
/// and 200 to the others (keep-alive), counting the requests per key.
async fn keyed_health_server(down: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let key = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("authorization")
                                .then(|| value.trim().trim_start_matches("Bearer ").to_string())
                        })
                        .unwrap_or_default();
                    let status = if key == down {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    log.lock().unwrap().push(key);
                    let body = r#"{"object":"list","data":[]}"#;
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_sharing_an_address_keep_their_own_health() {
    let (port, seen) = keyed_health_server("sk-test-key-down").await;
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  up: {{ kind: openai_compatible, base_url: "http://127.0.0.1:{port}/v1", api_key: sk-test-key-up }}
  down: {{ kind: openai_compatible, base_url: "http://127.0.0.1:{port}/v1", api_key: sk-test-key-down }}
models:
  gpt-4o-mini:
    - {{ provider: up, model: m }}
    - {{ provider: down, model: m }}
health:
  check:
    interval: 100ms
    timeout: 500ms
    unhealthy_threshold: 2
    healthy_threshold: 1
"#
    ));
    let providers = || async {
        get(gw.admin_port, "/health/deployments", "").await.json()["providers"].clone()
    };
    let mut ejected = false;
    for _ in 0..60 {
        let p = providers().await;
        assert_eq!(p["up"]["healthy"], json!(true), "{p}");
        if p["down"]["healthy"] == json!(false) {
            assert_eq!(p["down"]["last_check_error"], json!("HTTP 503"));
            assert_eq!(p["up"]["last_check_error"], json!(null));
            ejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ejected, "the provider whose key fails is taken out");
    // A few more passes: the failing provider stays out, the other stays in.
    let checks_now = seen.lock().unwrap().len();
    assert!(
        eventually(Duration::from_secs(5), || seen.lock().unwrap().len()
            >= checks_now + 4)
        .await
    );
    let p = providers().await;
    assert_eq!(p["up"]["healthy"], json!(true), "{p}");
    assert_eq!(p["down"]["healthy"], json!(false), "{p}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().filter(|k| *k == "sk-test-key-up").count() >= 2,
        "{seen:?}"
    );
    assert!(
        seen.iter().filter(|k| *k == "sk-test-key-down").count() >= 2,
        "{seen:?}"
    );
    let log = gw.log();
    assert!(
        log.contains("provider 'down' failed its health checks (HTTP 503): taken out of rotation"),
        "{log}"
    );
    assert!(!log.contains("provider 'up' failed"), "{log}");
    assert!(!log.contains("becomes unhealthy"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_models_without_an_available_deployment() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}health:\n  failure_threshold: 1\n  cooldown: 60s\n  check: {{ enabled: false }}\n",
        standard_config(&m.url())
    ));
    assert_eq!(get(gw.admin_port, "/readyz", "").await.status, 200);
    m.set_sticky_fault(Some(status_fault(500, None)));
    post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let r = get(gw.admin_port, "/readyz", "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["unavailable_models"], json!(["gpt-4o-mini"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_stops_amplification() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}retry:\n  max_attempts: 3\n  backoff_base: 1ms\n  backoff_max: 2ms\n  budget_ratio: 0.2\n  budget_min_per_second: 0\n\
         health:\n  failure_threshold: 1000\n  check: {{ enabled: false }}\n",
        standard_config(&m.url())
    ));
    m.set_sticky_fault(Some(status_fault(500, None)));
    let n = 50;
    for _ in 0..n {
        let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 500);
    }
    let attempts = m.request_count();
    // Without a budget: 150 attempts. With it: the requests plus at most 20% of them.
    assert!(
        attempts <= n + n / 5,
        "{attempts} attempts for {n} requests"
    );
    assert!(attempts > n, "some retries are still allowed: {attempts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_healthy_deployment_is_not_limited_by_the_retry_budget() {
    let a = mock().await;
    let b = mock().await;
    let gw = Gateway::start(&two_providers(
        &a,
        &b.url(),
        ", priority: 0",
        ", priority: 1",
        "retry:\n  budget_ratio: 0\n  budget_min_per_second: 0\n\
         health:\n  failure_threshold: 1000\n  check: { enabled: false }\n",
    ));
    a.set_sticky_fault(Some(status_fault(500, None)));
    for _ in 0..10 {
        let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!((a.request_count(), b.request_count()), (10, 10));
    // With no budget at all, the same deployment is never tried twice.
    b.set_sticky_fault(Some(status_fault(500, None)));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 500);
    assert_eq!((a.request_count(), b.request_count()), (11, 11));
}

//! Bad input and provider failures: every one is a precise OpenAI-shaped error, never a
//! panic, a hang or a leaked secret.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Config fragment: one attempt per request, so provider answers reach the client as they are.
const NO_RETRY: &str = "retry:\n  max_attempts: 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_with_a_precise_message() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {KEY}");
    let h = [("authorization", auth.as_str())];
    let raw =
        |body: &'static str| request(gw.port, "POST", "/v1/chat/completions", &h, body.as_bytes());

    let v = raw("{\"model\": \"gpt-4o-mini\", \"messages\": [}")
        .await
        .assert_error(400, "invalid_json");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{v}"
    );
    raw("").await.assert_error(400, "invalid_json");
    raw("[1,2]").await.assert_error(400, "invalid_json");

    let v = raw("{\"messages\": [{\"role\":\"user\",\"content\":\"x\"}]}")
        .await
        .assert_error(400, "missing_required_parameter");
    assert_eq!(v["error"]["param"], "model");
    let v = raw("{\"model\": \"gpt-4o-mini\"}")
        .await
        .assert_error(400, "missing_required_parameter");
    assert_eq!(v["error"]["param"], "messages");
    let v = raw("{\"model\": 42, \"messages\": []}")
        .await
        .assert_error(400, "invalid_value");
    assert_eq!(v["error"]["param"], "model");
    let v = raw("{\"model\": \"gpt-4o-mini\", \"messages\": []}")
        .await
        .assert_error(400, "invalid_value");
    assert_eq!(v["error"]["param"], "messages");
    let v = raw("{\"model\": \"gpt-4o-mini\", \"messages\": \"hi\"}")
        .await
        .assert_error(400, "invalid_value");
    assert_eq!(v["error"]["param"], "messages");
    let v = raw("{\"model\": \"gpt-4o-mini\", \"messages\": [{}], \"stream\": \"yes\"}")
        .await
        .assert_error(400, "invalid_value");
    assert_eq!(v["error"]["param"], "stream");
    let v = raw("{\"model\": \"nope\", \"messages\": [{}]}")
        .await
        .assert_error(404, "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    let gz = request(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", auth.as_str()),
            ("content-encoding", "gzip"),
        ],
        b"\x1f\x8b\x08\x00",
    )
    .await;
    gz.assert_error(415, "unsupported_content_encoding");
    assert_eq!(m.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {KEY}");
    let h = [("authorization", auth.as_str())];
    request(gw.port, "GET", "/v1/nothing-here", &h, b"")
        .await
        .assert_error(404, "unknown_url");
    request(gw.port, "GET", "/v1/chat/completions", &h, b"")
        .await
        .assert_error(405, "method_not_allowed");
    request(gw.port, "DELETE", "/v1/models", &h, b"")
        .await
        .assert_error(405, "method_not_allowed");
    // The admin endpoints are not served on the client listener.
    request(gw.port, "GET", "/healthz", &h, b"")
        .await
        .assert_error(404, "unknown_url");
    request(gw.port, "GET", "/metrics", &h, b"")
        .await
        .assert_error(404, "unknown_url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_413() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}limits:\n  max_body_bytes: 64KiB\n",
        standard_config(&m.url())
    ));
    let auth = format!("Bearer {KEY}");
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(70_000)}]}).to_string();

    // Declared length over the limit: refused before the body is read.
    let r = request(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        big.as_bytes(),
    )
    .await;
    let v = r.assert_error(413, "request_too_large");
    assert!(v["error"]["message"].as_str().unwrap().contains("65536"));

    // Chunked body that grows past the limit.
    let mut chunked = Vec::new();
    for part in big.as_bytes().chunks(10_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = request(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth), ("transfer-encoding", "chunked")],
        &chunked,
    )
    .await;
    r.assert_error(413, "request_too_large");

    // Just under the limit is fine.
    let ok = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(60_000)}]});
    assert_eq!(post(gw.port, "/v1/chat/completions", &ok).await.status, 200);
    assert_eq!(m.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_502() {
    let dead = free_port(); // nothing listens here
    let gw = Gateway::start(&standard_config(&format!("http://127.0.0.1:{dead}")));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(502, "upstream_unreachable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("'mock'"),
        "{v}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(
        s.status, 502,
        "a stream that cannot start is a plain error response"
    );
    s.rest().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_host_is_502_not_a_panic() {
    let gw = Gateway::start(&format!(
        "{}timeouts:\n  connect: 2s\n",
        standard_config("http://sluice-test-host.invalid:9")
    ));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(502, "upstream_unreachable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sluice-test-host.invalid"),
        "{v}"
    );
    // Still serving afterwards.
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 502);
    assert!(!gw.log().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_before_first_byte_is_504() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}timeouts:\n  first_byte: 500ms\n{NO_RETRY}",
        standard_config(&m.url())
    ));
    m.push_fault(Fault::StallBeforeHeaders(Duration::from_secs(5)));
    let started = Instant::now();
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    r.assert_error(504, "upstream_timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The next request is served normally.
    assert_eq!(
        post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_pass_through_normalised() {
    let m = mock().await;
    // One attempt and no cooldown, so that each provider answer is seen as it is.
    let gw = Gateway::start(&format!(
        "{}{NO_RETRY}health:\n  cooldown: 0s\n  check: {{ enabled: false }}\n",
        standard_config(&m.url())
    ));
    let body = chat("gpt-4o-mini", false);

    m.push_fault(Fault::Status {
        status: 400,
        body: json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}).to_string(),
        retry_after: None,
    });
    let r = post(gw.port, "/v1/chat/completions", &body).await;
    let v = r.assert_error(400, "invalid_value");
    assert_eq!(v["error"]["param"], "temperature");
    assert_eq!(v["error"]["message"], "Invalid value for 'temperature'");

    m.push_fault(Fault::Status {
        status: 503,
        body: "<html>upstream overloaded</html>".into(),
        retry_after: None,
    });
    let r = post(gw.port, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 503);
    let v = r.json();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("503"),
        "{v}"
    );
    assert!(!r.text().contains("<html>"), "provider HTML is not relayed");

    m.push_fault(Fault::Garbage);
    let r = post(gw.port, "/v1/chat/completions", &body).await;
    r.assert_error(502, "bad_gateway");

    m.push_fault(Fault::Garbage);
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": "x"}),
    )
    .await;
    r.assert_error(502, "bad_gateway");

    m.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}).to_string(),
        retry_after: Some("7".into()),
    });
    let r = post(gw.port, "/v1/chat/completions", &body).await;
    r.assert_error(429, "rate_limit_exceeded");
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(m.request_count(), 5, "one attempt each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_rejecting_the_gateway_key_is_502_without_the_key() {
    let m = mock().await;
    m.set_behaviour(Behaviour {
        expected_key: Some("sk-test-some-other-provider-key".into()),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&m.url()));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(502, "upstream_auth_failed");
    assert!(!r.text().contains(PROVIDER_KEY), "{v}");
    let log = gw.settled_log().await;
    assert!(
        !log.contains(PROVIDER_KEY),
        "the provider key is never logged"
    );
    assert!(!log.contains(KEY), "the gateway key is never logged");
}

/// A provider (or the proxy in front of it) that refuses a request from its header alone —
/// here a body too large — answers and closes the connection without reading the rest, so
/// the gateway's write of the body fails: the client gets that answer (not "closed without
/// answering"), and the request is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_before_it_reads_the_body_is_heard() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error":{"message":"Request too large.","type":"invalid_request_error","param":null,"code":"request_too_large"}}"#;
                let answer = format!(
                    "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n\
                     connection: close\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                // Closed with the body unread: the kernel resets the connection.
            });
        }
    });
    let gw = Gateway::start(&standard_config(&format!("http://127.0.0.1:{port}")));
    // Larger than what the sockets' buffers hold between the two: the write cannot finish.
    let mut big = chat("gpt-4o-mini", false);
    big["messages"][0]["content"] = "x".repeat(6 << 20).into();
    let r = post(gw.port, "/v1/chat/completions", &big).await;
    let v = r.assert_error(413, "request_too_large");
    assert_eq!(v["error"]["message"], "Request too large.", "{v}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "sent once, not retried");
    // The connection is not reused: the next request opens another.
    let r = post(gw.port, "/v1/chat/completions", &big).await;
    r.assert_error(413, "request_too_large");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// Sends `wire` on a new connection and returns what the gateway answered before closing.
async fn answer_to(port: u16, wire: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    sock.write_all(wire).await.unwrap();
    let mut got = Vec::new();
    // Ends when the gateway closes the connection; the bound only keeps a broken build from
    // hanging the test.
    let read = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection must be closed after the answer"
    );
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_http_or_ask_for_a_tunnel_are_refused_and_closed() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));

    let garbage = answer_to(gw.port, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let tunnel = answer_to(
        gw.port,
        b"CONNECT api.openai.com:443 HTTP/1.1\r\nhost: api.openai.com:443\r\n\r\n",
    )
    .await;
    assert!(tunnel.starts_with("HTTP/1.1 405"), "{tunnel}");
    assert_eq!(m.requests().len(), 0, "nothing may reach the provider");

    // Two requests on one kept-alive connection, one after the other: both answered.
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    for _ in 0..2 {
        let r;
        (r, sock) = exchange_on(
            sock,
            raw_chat_request(&chat("gpt-4o-mini", false)).as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(m.requests().len(), 2);
}

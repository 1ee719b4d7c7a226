//! Streams that fail half-way are never presented as complete answers: the client gets an
//! OpenAI-shaped error event and no `[DONE]`. A client that leaves mid-stream releases the
//! upstream connection.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Streams one request and returns its events; asserts the error-event ending.
async fn failing_stream(gw: &Gateway) -> (Vec<String>, Value) {
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(s.status, 200);
    let body = tokio::time::timeout(Duration::from_secs(10), s.rest())
        .await
        .expect("the stream ends instead of hanging");
    assert!(
        s.ended_cleanly(),
        "the client stream is terminated properly"
    );
    let events = sse_data(&body);
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "no [DONE] after a failure: {events:?}"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    let err = &last["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{last}"
    );
    assert!(
        err["type"].is_string() && err.get("code").is_some(),
        "{last}"
    );
    (events, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_disconnect_mid_stream() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    m.push_fault(Fault::DisconnectAfterChunks(3));
    let (events, last) = failing_stream(&gw).await;
    assert_eq!(events.len(), 4, "three chunks, then the error: {events:?}");
    assert_eq!(last["error"]["code"], "upstream_connection_failed");
    // Counted once the request has finished, just after the client saw its last byte.
    let mut counted = false;
    for _ in 0..50 {
        let health = get(gw.admin_port, "/health/deployments", "").await.json();
        if health["models"]["gpt-4o-mini"][0]["stream_failures"] == 1 {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "the failure is counted");
    assert_eq!(
        m.request_count(),
        1,
        "a stream that reached the client is never retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_stream_without_done() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    m.push_fault(Fault::TruncateAfterChunks(4));
    let (events, last) = failing_stream(&gw).await;
    assert_eq!(events.len(), 5);
    assert_eq!(last["error"]["code"], "upstream_stream_truncated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_mid_stream_hits_the_idle_timeout() {
    let (took, events, last) = stalled_stream("timeouts:\n  idle: 600ms\n").await;
    assert!(took < Duration::from_secs(5));
    assert_eq!(events.len(), 3);
    assert_eq!(last["error"]["code"], "upstream_timeout");
    assert!(last["error"]["message"].as_str().unwrap().contains("idle"));
}

/// A stream still flowing when the request's whole time is up ends there, with an error
/// that names the total limit (not the idle one, which was not reached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_mid_stream_past_the_total_limit() {
    let (took, events, last) = stalled_stream("timeouts:\n  idle: 20s\n  total: 1500ms\n").await;
    assert!(took >= Duration::from_millis(1500));
    assert!(took < Duration::from_secs(15));
    assert_eq!(events.len(), 3);
    assert_eq!(last["error"]["code"], "upstream_timeout");
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains("total"), "{message}");
}

/// A stream through a gateway with the `timeouts` block given whose provider stalls for
/// 30 s after two chunks: how long it took, its events and the last one.
async fn stalled_stream(timeouts: &str) -> (Duration, Vec<String>, Value) {
    let m = mock().await;
    let gw = Gateway::start(&format!("{}{timeouts}", standard_config(&m.url())));
    m.push_fault(Fault::StallAfterChunks(2, Duration::from_secs(30)));
    let started = Instant::now();
    let (events, last) = failing_stream(&gw).await;
    (started.elapsed(), events, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_event_and_garbage_inside_a_200_stream() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    m.push_fault(Fault::ErrorEventAfterChunks(2));
    let (events, last) = failing_stream(&gw).await;
    assert_eq!(events.len(), 3);
    assert_eq!(last["error"]["code"], "upstream_stream_error");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("server had an error"));

    m.push_fault(Fault::Garbage);
    let (_, last) = failing_stream(&gw).await;
    assert_eq!(last["error"]["code"], "upstream_stream_error");

    // The gateway keeps serving complete streams afterwards.
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(sse_data(&s.rest().await).last().unwrap(), "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_releases_the_upstream_connection() {
    let m = paced_mock("word ".repeat(200), Duration::from_millis(20)).await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    s.next_chunk().await.unwrap();
    s.next_chunk().await.unwrap();
    assert_eq!(m.open_connections(), 1);
    drop(s);
    assert!(
        eventually(Duration::from_secs(3), || m.open_connections() == 0).await,
        "the upstream connection is closed once the client has gone"
    );
    assert_eq!(
        m.streams_completed(),
        0,
        "the provider stream was cut short, not drained"
    );
    assert_eq!(m.streams_aborted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_while_waiting_for_a_slow_answer() {
    let m = mock().await;
    m.set_behaviour(Behaviour {
        ttft: Duration::from_secs(3),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&m.url()));
    let req = chat("gpt-4o-mini", false);
    let s = post_stream(gw.port, "/v1/chat/completions", &req);
    // Give up on the request before the provider answers.
    let _ = tokio::time::timeout(Duration::from_millis(300), s).await;
    assert!(eventually(Duration::from_secs(2), || m.request_count() == 1).await);
    assert!(
        eventually(Duration::from_millis(1500), || m.open_connections() == 0).await,
        "the upstream request is abandoned as soon as the client leaves"
    );
    let log_has_gone = eventually(Duration::from_secs(2), || {
        gw.log().contains("\"client_gone\":true")
    })
    .await;
    assert!(log_has_gone, "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_holding_the_body_open_after_done_does_not_delay_the_client() {
    let m = mock().await;
    let gw = Gateway::start(&format!(
        "{}timeouts:\n  idle: 3s\n",
        standard_config(&m.url())
    ));
    m.push_fault(Fault::HoldAfterDone(Duration::from_secs(20)));
    let started = Instant::now();
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let events = sse_data(&s.rest().await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(s.ended_cleanly());
    assert_eq!(events.last().unwrap(), "[DONE]", "{events:?}");
    assert!(
        !events.iter().any(|e| e.contains("\"error\"")),
        "{events:?}"
    );
    // The held connection is not pooled: it is closed after the drain window.
    assert!(eventually(Duration::from_secs(3), || m.open_connections() == 0).await);
    assert_eq!(
        post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false))
            .await
            .status,
        200
    );
}

//! Chat completions, embeddings and models through the running gateway to a mock provider.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_stream_round_trip_renames_model_and_swaps_credentials() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {KEY}");
    let r = request(
        gw.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("x-request-id", "req-abc.123"),
            ("openai-organization", "org-client"),
            ("cookie", "session=client-secret"),
        ],
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], "temperature": 0.2, "custom_field": {"kept": true}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("req-abc.123"));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["model"], "gpt-4o-mini", "the client sees the public name");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("Say hello"));
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let reqs = m.requests();
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up.path, "/v1/chat/completions");
    let body = up.json();
    assert_eq!(
        body["model"], "upstream-gpt",
        "the provider sees its own name"
    );
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["custom_field"]["kept"], true,
        "unknown fields pass through"
    );
    assert!(body.get("stream_options").is_none());
    assert_eq!(
        up.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    for h in ["cookie", "openai-organization", "x-api-key"] {
        assert!(
            up.header(h).is_none(),
            "client header {h} must not go upstream"
        );
    }
    assert!(
        !format!("{:?}", up.headers).contains(KEY),
        "client key leaked upstream"
    );
    assert_eq!(up.header("host"), Some(m.addr.to_string().as_str()));
    assert_eq!(
        up.header("x-request-id"),
        Some("req-abc.123"),
        "the request id travels upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_round_trip() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(s.status, 200);
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(s.header("cache-control"), Some("no-cache"));
    assert!(s.header("content-length").is_none());
    let body = s.rest().await;
    assert!(s.ended_cleanly(), "stream ends with the chunked terminator");
    let events = sse_data(&body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks {
        assert_eq!(c["model"], "gpt-4o-mini");
        assert!(c.get("usage").is_none(), "no usage unless asked: {c}");
        assert!(!c["choices"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(stream_text(&events).contains("Say hello"));

    let up = m.requests()[0].json();
    assert_eq!(
        up["stream_options"]["include_usage"], true,
        "usage is always requested upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_usage_chunk_when_asked() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let mut req = chat("gpt-4o-mini", true);
    req["stream_options"] = json!({"include_usage": true});
    let mut s = post_stream(gw.port, "/v1/chat/completions", &req).await;
    let events = sse_data(&s.rest().await);
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["model"], "gpt-4o-mini");
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_is_not_buffered() {
    let m = mock().await;
    m.set_behaviour(Behaviour {
        reply: Some("one two three four five six seven eight".into()),
        gap: Duration::from_millis(250),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&m.url()));
    let started = Instant::now();
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let first = s.next_chunk().await.expect("a first chunk");
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    assert_eq!(
        m.streams_completed(),
        0,
        "the first chunk reached the client while the provider was still sending"
    );
    let rest = s.rest().await;
    let total = started.elapsed();
    assert!(sse_data(&rest).last().unwrap() == "[DONE]");
    assert!(
        first_at < total / 3,
        "first chunk at {first_at:?} of {total:?}: the stream was buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_split_across_reads_are_reassembled() {
    let m = mock().await;
    m.set_behaviour(Behaviour {
        reply: Some("Grüße aus 東京 🌸 — split me anywhere".into()),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&m.url()));

    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let expected = sse_data(&s.rest().await);

    for piece in [1usize, 3, 7, 64] {
        m.push_fault(Fault::SplitEvery(piece));
        let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        let got = sse_data(&s.rest().await);
        assert_eq!(got, expected, "pieces of {piece} bytes");
    }
    assert_eq!(
        stream_text(&expected),
        "Grüße aus 東京 🌸 — split me anywhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_round_trip() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": ["hello world", "second"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "embed");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let up = &m.requests()[0];
    assert_eq!(up.path, "/v1/embeddings");
    assert_eq!(up.json()["model"], "upstream-embed");

    let r = post(gw.port, "/v1/embeddings", &json!({"model": "embed"})).await;
    r.assert_error(400, "missing_required_parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_follows_the_key_allow_list() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let ids = |r: &Response| -> Vec<String> {
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = get(gw.port, "/v1/models", KEY).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.json()["object"], "list");
    assert_eq!(ids(&all), vec!["embed", "gpt-4o-mini", "other-model"]);
    let limited = get(gw.port, "/v1/models", LIMITED_KEY).await;
    assert_eq!(ids(&limited), vec!["gpt-4o-mini"]);

    let one = request(
        gw.port,
        "GET",
        "/v1/models/gpt-4o-mini",
        &[("x-api-key", KEY)],
        b"",
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "gpt-4o-mini");
    let hidden = get(gw.port, "/v1/models/embed", LIMITED_KEY).await;
    hidden.assert_error(404, "model_not_found");
    assert_eq!(m.request_count(), 0, "models are answered locally");
}

/// A request nothing in sluice needs to read in full goes upstream as the client wrote it —
/// spacing, number forms, member order — with only the model replaced and, for a stream,
/// `include_usage` set; a body with `\u` escapes goes through a parse (which decodes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_reaches_the_provider_as_written() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {KEY}");
    let sent = |body: &'static str| {
        let auth = auth.clone();
        async move {
            let headers = [("authorization", auth.as_str())];
            request(
                gw.port,
                "POST",
                "/v1/chat/completions",
                &headers,
                body.as_bytes(),
            )
            .await
        }
    };
    let r = sent("{ \"temperature\": 1e0,\"model\" : \"gpt-4o-mini\", \"messages\":[{\"role\":\"user\",\"content\":\"Say  hello\"}] }").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::str::from_utf8(&m.requests()[0].body).unwrap(),
        "{ \"temperature\": 1e0,\"model\" : \"upstream-gpt\", \"messages\":[{\"role\":\"user\",\"content\":\"Say  hello\"}] }"
    );

    let r = sent("{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":false,\"x\":1},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = sse_data(&r.body);
    assert!(
        events.iter().all(|e| !e.contains("\"usage\":{")),
        "no usage chunk asked for: {events:?}"
    );
    assert_eq!(
        std::str::from_utf8(&m.requests()[1].body).unwrap(),
        "{\"model\":\"upstream-gpt\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"x\":1},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
    );

    let r = sent(
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9\"}]}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = m.requests()[2].json();
    assert_eq!(up["messages"][0]["content"], "café");
    assert_eq!(up["model"], "upstream-gpt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_request_body_is_forwarded_intact() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    // ~1.5 MiB of content, e.g. an inline image.
    let big: String = (0..1_500_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let req = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]});
    let r = post(gw.port, "/v1/chat/completions", &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = m.requests()[0].json();
    assert_eq!(
        up["messages"][0]["content"].as_str().unwrap().len(),
        1_500_000
    );
    assert_eq!(up["messages"][0]["content"], req["messages"][0]["content"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    for _ in 0..10 {
        let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 200);
        let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        s.rest().await;
    }
    assert_eq!(m.request_count(), 20);
    assert!(
        m.total_connections() <= 4,
        "20 sequential requests used {} upstream connections",
        m.total_connections()
    );
}

/// A provider that ends kept-alive connections between requests (its idle timeout, a
/// restart): a connection it closed is never used again — no request fails, none reaches it
/// twice — and the open ones are reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_provider_closed_are_not_reused() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    for i in 0..10 {
        if i % 2 == 0 {
            m.push_fault(Fault::CloseAfterResponse);
        }
        if i % 4 < 2 {
            let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        } else {
            let mut s =
                post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
            assert_eq!(s.status, 200, "request {i}");
            let events = sse_data(&s.rest().await);
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "request {i}"
            );
        }
    }
    assert_eq!(m.request_count(), 10, "no request was sent twice");
    // The first on one connection; then each closed connection is replaced once: every
    // other request reuses the connection its predecessor left open.
    assert_eq!(m.total_connections(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_ignoring_stream_still_gives_the_client_a_stream() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    m.push_fault(Fault::IgnoreStream);
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(s.status, 200);
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&s.rest().await);
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(stream_text(&events).contains("Say hello"));
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "gpt-4o-mini");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let body = chat("gpt-4o-mini", false).to_string();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
        .await
        .expect("100 Continue arrives without the body being sent")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    sock.write_all(body.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut b = [0u8; 4096];
        while let Ok(n) = sock.read(&mut b).await {
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&b[..n]);
            if rest.windows(4).any(|w| w == b"\r\n\r\n") && rest.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("200 OK"), "{text}");
    assert!(text.contains("\"model\":\"gpt-4o-mini\""), "{text}");
}

//! Rate limits, token and spend budgets and concurrency caps through the running gateway —
//! in memory, and shared by two gateways through a real `redis-server` (installed by the
//! README's setup command; these tests fail without it when `SLUICE_REQUIRE_REDIS=1`).

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::*;
use serde_json::{json, Value};

fn config(limits: &str, key_limits: &str, upstream: &str) -> String {
    {
        format!(
            r#"
limits:
{limits}
pricing:
  gpt-4o-mini: {{ input: 1000000, output: 1000000 }}
keys:
  - {{ name: team-a, key: {KEY}{key_limits} }}
  - {{ name: limited, key: {LIMITED_KEY} }}
providers:
  mock: {{ kind: openai_compatible, base_url: "{upstream}/v1" }}
models:
  gpt-4o-mini:
    - {{ provider: mock, model: upstream-gpt }}
  other-model:
    - {{ provider: mock, model: upstream-other }}
"#
        )
    }
}

async fn chat_as(port: u16, key: &str, model: &str, extra: Value) -> Response {
    let mut body = chat(model, false);
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post_chat_as(port, key, &body).await
}

fn header(r: &Response, name: &str) -> Option<u64> {
    r.header(name).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_admits_exactly_the_limit_under_concurrency() {
    let m = mock().await;
    let gw = Gateway::start(&config(
        "  default: { requests_per_minute: 7 }",
        "",
        &m.url(),
    ));
    let tasks: Vec<_> = (0..20)
        .map(|_| tokio::spawn(chat_as(gw.port, KEY, "gpt-4o-mini", json!({}))))
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(
            header(&r, "x-ratelimit-limit-requests"),
            Some(7),
            "on every answer"
        );
        assert!(r.header("x-ratelimit-reset-requests").is_some());
        match r.status {
            200 => ok += 1,
            429 => {
                let v = r.assert_error(429, "rate_limit_exceeded");
                assert_eq!(v["error"]["type"], "rate_limit_error");
                let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "{wait}");
                assert_eq!(header(&r, "x-ratelimit-remaining-requests"), Some(0));
            }
            s => panic!("unexpected status {s}: {}", r.text()),
        }
    }
    assert_eq!(ok, 7, "exactly the limit was admitted");
    assert_eq!(
        m.request_count(),
        7,
        "refused requests never reach the provider"
    );
    // The other key has its own bucket.
    assert_eq!(
        chat_as(gw.port, LIMITED_KEY, "gpt-4o-mini", json!({}))
            .await
            .status,
        200
    );
    let metrics = get(gw.admin_port, "/metrics", "").await.text();
    assert!(
        metrics.contains(r#"sluice_rate_limit_rejections_total{limit="requests",scope="key"} 13"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limits_are_settled_from_streamed_usage() {
    let m = mock().await;
    // 1,200 tokens a minute; each request pre-charges ~500 (its max_tokens) and really uses
    // a few dozen. Without settlement the third request would be refused.
    let gw = Gateway::start(&config(
        "  default: { tokens_per_minute: 1200 }",
        "",
        &m.url(),
    ));
    for i in 0..4 {
        let mut body = chat("gpt-4o-mini", true);
        body["max_tokens"] = json!(500);
        let mut s = post_stream(gw.port, "/v1/chat/completions", &body).await;
        assert_eq!(
            s.status, 200,
            "request {i} was refused: settlement did not refund"
        );
        let remaining: u64 = s
            .header("x-ratelimit-remaining-tokens")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            remaining < 1200 - 500,
            "{remaining}: the estimate was pre-charged"
        );
        let events = sse_data(&s.rest().await);
        assert_eq!(events.last().unwrap(), "[DONE]");
    }
    // A request whose estimate alone exceeds what is left is refused with the tokens code.
    let r = chat_as(gw.port, KEY, "gpt-4o-mini", json!({"max_tokens": 1150})).await;
    r.assert_error(429, "rate_limit_exceeded");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tokens"));
    assert!(header(&r, "x-ratelimit-limit-tokens") == Some(1200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_slot_is_released_when_the_client_leaves_mid_stream() {
    let m = MockProvider::start(
        "127.0.0.1:0",
        Behaviour {
            gap: Duration::from_millis(50),
            reply: Some("one two three four five six seven eight nine ten eleven twelve".into()),
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    let gw = Gateway::start(&config("  default: { max_concurrent: 1 }", "", &m.url()));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(s.status, 200);
    assert!(s.next_chunk().await.is_some());
    let r = chat_as(gw.port, KEY, "gpt-4o-mini", json!({})).await;
    let v = r.assert_error(429, "rate_limit_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("concurren"),
        "{v}"
    );
    drop(s);
    let mut ok = false;
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && !ok {
        ok = chat_as(gw.port, KEY, "gpt-4o-mini", json!({})).await.status == 200;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the slot was not released after the client left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_budgets_and_model_limits() {
    let m = mock().await;
    // $1 per token: the first answer spends the whole daily budget of the key.
    let gw = Gateway::start(&config(
        "  models:\n    other-model: { requests_per_minute: 2 }",
        ", limits: { budget: { daily_usd: 5 } }",
        &m.url(),
    ));
    assert_eq!(
        chat_as(gw.port, KEY, "gpt-4o-mini", json!({})).await.status,
        200
    );
    let r = chat_as(gw.port, KEY, "gpt-4o-mini", json!({})).await;
    let v = r.assert_error(429, "budget_exceeded");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("daily"),
        "{v}"
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=86_400).contains(&wait),
        "until the next UTC day: {wait}"
    );
    // The model limit is shared by every key.
    assert_eq!(
        chat_as(gw.port, LIMITED_KEY, "other-model", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        chat_as(gw.port, LIMITED_KEY, "other-model", json!({}))
            .await
            .status,
        200
    );
    let r = chat_as(gw.port, LIMITED_KEY, "other-model", json!({})).await;
    r.assert_error(429, "rate_limit_exceeded");
}

fn redis_config(port: u16, policy: &str) -> String {
    format!(
        "  backend: redis\n  redis_url: redis://127.0.0.1:{port}\n  redis_timeout: 100ms\n  \
         on_backend_error: {policy}\n  default: {{ requests_per_minute: 6 }}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_through_redis() {
    let Some(redis) = Redis::start() else { return };
    let m = mock().await;
    let limits = redis_config(redis.port, "fail_closed");
    let a = Gateway::start(&config(&limits, "", &m.url()));
    let b = Gateway::start(&config(&limits, "", &m.url()));
    let mut ok = 0;
    for i in 0..12 {
        let port = if i % 2 == 0 { a.port } else { b.port };
        if chat_as(port, KEY, "gpt-4o-mini", json!({})).await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 6,
        "the two gateways admitted exactly one limit's worth together"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_the_configured_policy_then_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let m = mock().await;
    let closed = Gateway::start(&config(
        &redis_config(redis.port, "fail_closed"),
        "",
        &m.url(),
    ));
    let open = Gateway::start(&config(
        &redis_config(redis.port, "fail_open"),
        "",
        &m.url(),
    ));
    assert_eq!(
        chat_as(closed.port, KEY, "gpt-4o-mini", json!({}))
            .await
            .status,
        200
    );
    redis.kill();
    let started = Instant::now();
    let r = chat_as(closed.port, KEY, "gpt-4o-mini", json!({})).await;
    r.assert_error(503, "rate_limit_backend_unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hang while Redis is down"
    );
    assert_eq!(
        chat_as(open.port, KEY, "gpt-4o-mini", json!({}))
            .await
            .status,
        200
    );
    let metrics = get(open.admin_port, "/metrics", "").await.text();
    assert!(
        metrics.contains("sluice_rate_limit_fail_open_total 1"),
        "{metrics}"
    );
    assert!(closed.log().contains("unavailable") || closed.log().contains("Redis"));
    assert!(
        !closed.log().contains("redis://"),
        "the Redis URL is never logged"
    );

    // Redis returns (empty: the limit starts over) and limiting resumes.
    redis.spawn();
    let mut statuses = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let s = chat_as(closed.port, KEY, "gpt-4o-mini", json!({}))
            .await
            .status;
        statuses.push(s);
        if s == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "limits apply again after recovery: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        6,
        "{statuses:?}"
    );
}

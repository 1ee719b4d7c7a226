//! The memory backend, on a manual clock: no test waits for a refill.

use super::*;

const T0: u64 = 1_700_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_admission_count_under_concurrency() {
    let cfg = config(&[("a", set(100, 0, 0))], &[]);
    let (l, _t) = manual(&cfg, T0);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                if l.admit(&adm("a", "m", 0)).await.is_ok() {
                    ok += 1;
                }
                tokio::task::yield_now().await;
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 100);
    assert_eq!(
        l.counters()
            .rejections(LimitKind::Requests, Some(Scope::Key)),
        540
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_limit_is_shared_by_all_keys_exactly() {
    let cfg = config(
        &[
            ("a", set(1000, 0, 0)),
            ("b", set(1000, 0, 0)),
            ("c", LimitSet::default()),
        ],
        &[("m", set(50, 0, 0))],
    );
    let (l, _t) = manual(&cfg, T0);
    let mut tasks = Vec::new();
    for i in 0..48 {
        let l = l.clone();
        let key = ["a", "b", "c"][i % 3];
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..5 {
                if l.admit(&adm(key, "m", 0)).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 50);
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Requests, Some(Scope::Model))
    );
    // Another model is not affected.
    assert!(l.admit(&adm("a", "other", 0)).await.is_ok());
}

#[tokio::test]
async fn requests_refill_and_retry_after() {
    let cfg = config(&[("a", set(60, 0, 0))], &[]);
    let (l, t) = manual(&cfg, T0);
    let p = l.admit(&adm("a", "m", 0)).await.unwrap();
    let h: Vec<_> = p.headers().collect();
    assert_eq!(
        h,
        vec![
            ("x-ratelimit-limit-requests", "60".to_string()),
            ("x-ratelimit-remaining-requests", "59".to_string()),
            ("x-ratelimit-reset-requests", "1s".to_string()),
        ]
    );
    for _ in 0..59 {
        let _ = l.admit(&adm("a", "m", 0)).await.unwrap();
    }
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Requests);
    assert_eq!(r.scope(), Some(Scope::Key));
    assert_eq!(r.code(), "rate_limit_exceeded");
    assert_eq!(r.status(), 429);
    assert_eq!(r.retry_after(), Duration::from_secs(1));
    assert!(
        r.message().contains("60 requests per minute"),
        "{}",
        r.message()
    );
    assert!(r.message().contains("key a"), "{}", r.message());
    let rh: Vec<_> = r.headers().collect();
    assert_eq!(rh[0], ("retry-after", "1".to_string()));
    assert_eq!(
        header(r.headers(), "x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(r.headers(), "x-ratelimit-reset-requests").as_deref(),
        Some("1m0s")
    );

    advance(&t, Duration::from_millis(999));
    assert!(l.admit(&adm("a", "m", 0)).await.is_err());
    advance(&t, Duration::from_millis(1));
    assert!(l.admit(&adm("a", "m", 0)).await.is_ok());
    assert!(l.admit(&adm("a", "m", 0)).await.is_err());
    // A whole window refills the whole bucket, and no more.
    advance(&t, Duration::from_secs(120));
    let mut n = 0;
    while l.admit(&adm("a", "m", 0)).await.is_ok() {
        n += 1;
    }
    assert_eq!(n, 60);
}

#[tokio::test]
async fn tokens_precharge_refund_and_debt() {
    let cfg = config(&[("a", set(0, 1000, 0))], &[]);
    let (l, t) = manual(&cfg, T0);
    let p1 = l.admit(&adm("a", "m", 600)).await.unwrap();
    assert_eq!(
        header(p1.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("400")
    );
    assert_eq!(
        header(p1.headers(), "x-ratelimit-reset-tokens").as_deref(),
        Some("36s")
    );
    let r = l.admit(&adm("a", "m", 500)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Tokens);
    // 100 tokens must drain at 1000/min: 6s.
    assert_eq!(r.retry_after(), Duration::from_secs(6));
    assert!(r.message().contains("1000 tokens per minute"));

    // Actual usage 200: 400 refunded.
    p1.settle(Some(Usage {
        prompt: 120,
        cached: 0,
        completion: 80,
    }))
    .await;
    let p2 = l.admit(&adm("a", "m", 500)).await.unwrap();
    assert_eq!(
        header(p2.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("300")
    );

    // Actual usage 2000 against an estimate of 500: no request charges more than the
    // bucket's limit, so 1000 counts and the bucket goes 500 more into debt.
    p2.settle(Some(Usage {
        prompt: 1000,
        cached: 0,
        completion: 1000,
    }))
    .await;
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Tokens);
    // Level 1200, limit 1000: 200 tokens must drain, 12s.
    assert_eq!(r.retry_after(), Duration::from_secs(12));
    advance(&t, Duration::from_secs(12));
    assert!(l.admit(&adm("a", "m", 0)).await.is_ok());
    assert!(l.admit(&adm("a", "m", 1)).await.is_err());
}

#[tokio::test]
async fn oversized_estimate_waits_for_an_empty_bucket() {
    let cfg = config(&[("a", set(0, 1000, 0))], &[]);
    let (l, t) = manual(&cfg, T0);
    let p = l.admit(&adm("a", "m", 10)).await.unwrap();
    drop(p); // no usage: the estimate stays charged
    let r = l.admit(&adm("a", "m", 5000)).await.unwrap_err();
    assert_eq!(r.retry_after(), Duration::from_millis(600));
    advance(&t, Duration::from_millis(600));
    let p = l.admit(&adm("a", "m", 5000)).await.unwrap();
    assert_eq!(
        header(p.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("0")
    );
    // The charge is capped at the bucket's limit: one window to drain, not five.
    assert_eq!(
        header(p.headers(), "x-ratelimit-reset-tokens").as_deref(),
        Some("1m0s")
    );
    assert!(l.admit(&adm("a", "m", 1)).await.is_err());
}

#[tokio::test]
async fn concurrency_released_on_drop_and_on_settle() {
    let cfg = config(&[("a", set(0, 0, 2))], &[]);
    let (l, _t) = manual(&cfg, T0);
    let p1 = l.admit(&adm("a", "m", 0)).await.unwrap();
    let p2 = l.admit(&adm("a", "m", 0)).await.unwrap();
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Concurrency);
    assert_eq!(r.code(), "rate_limit_exceeded");
    assert_eq!(r.retry_after(), Duration::from_secs(1));
    assert!(r.message().contains("2 concurrent requests"));
    drop(p1); // client went away mid-stream
    let p3 = l.admit(&adm("a", "m", 0)).await.unwrap();
    assert!(l.admit(&adm("a", "m", 0)).await.is_err());
    p2.settle(None).await;
    let p4 = l.admit(&adm("a", "m", 0)).await.unwrap();
    assert!(l.admit(&adm("a", "m", 0)).await.is_err());
    // A dropped request future drops its permit.
    let fut = {
        let l = l.clone();
        async move {
            let _p = l.admit(&adm("a", "m", 0)).await;
            std::future::pending::<()>().await;
        }
    };
    drop(p3);
    let h = tokio::spawn(fut);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        l.admit(&adm("a", "m", 0)).await.is_err(),
        "the spawned request holds a slot"
    );
    h.abort();
    let _ = h.await;
    assert!(l.admit(&adm("a", "m", 0)).await.is_ok());
    drop(p4);
}

#[tokio::test]
async fn daily_and_monthly_budgets() {
    let a = budget(Some(1.0), Some(1.5));
    let mut cfg = config(&[("a", a)], &[]);
    // USD per million tokens.
    cfg.pricing.insert(
        "m".into(),
        Price {
            input: 1.0,
            output: 2.0,
            cached_input: None,
        },
    );
    let (l, t) = manual(&cfg, utc_us(2024, 2, 10, 12, 0));
    let p = l.admit(&adm("a", "m", 0)).await.unwrap();
    assert_eq!(p.headers().count(), 0, "no rate limits, no rate headers");
    // 0.5 + 0.5 = $1.00: the daily budget is spent.
    p.settle(Some(Usage {
        prompt: 500_000,
        cached: 0,
        completion: 250_000,
    }))
    .await;
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Budget);
    assert_eq!(r.code(), "budget_exceeded");
    assert_eq!(r.status(), 429);
    assert_eq!(r.retry_after(), Duration::from_secs(12 * 3600));
    assert!(
        r.message().contains("daily budget of $1.00"),
        "{}",
        r.message()
    );
    assert_eq!(header(r.headers(), "retry-after").as_deref(), Some("43200"));

    // Next UTC day: the daily budget is fresh, the monthly one has $0.50 left.
    advance(&t, Duration::from_secs(12 * 3600));
    let p = l.admit(&adm("a", "m", 0)).await.unwrap();
    p.settle(Some(Usage {
        prompt: 500_000,
        cached: 0,
        completion: 0,
    }))
    .await;
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert!(
        r.message().contains("monthly budget of $1.50"),
        "{}",
        r.message()
    );
    let until_march = utc_us(2024, 3, 1, 0, 0) - utc_us(2024, 2, 11, 0, 0);
    assert_eq!(r.retry_after(), Duration::from_micros(until_march));
    t.store(utc_us(2024, 3, 1, 0, 0), Ordering::Relaxed);
    assert!(l.admit(&adm("a", "m", 0)).await.is_ok());
}

#[tokio::test]
async fn budget_without_usage_charges_the_estimate_at_the_higher_price() {
    let a = budget(Some(1.0), None);
    let mut cfg = config(&[("a", a)], &[]);
    cfg.pricing.insert(
        "m".into(),
        Price {
            input: 1.0,
            output: 4.0,
            cached_input: None,
        },
    );
    let (l, _t) = manual(&cfg, T0);
    // 250k tokens × $4/M = $1.
    let p = l.admit(&adm("a", "m", 250_000)).await.unwrap();
    drop(p);
    assert_eq!(
        l.admit(&adm("a", "m", 0)).await.unwrap_err().kind(),
        LimitKind::Budget
    );
    // An unpriced model costs nothing.
    let b = budget(Some(0.01), None);
    let (l, _t) = manual(&config(&[("b", b)], &[]), T0);
    let p = l.admit(&adm("b", "free", 1_000_000)).await.unwrap();
    p.settle(Some(Usage {
        prompt: 1_000_000,
        cached: 0,
        completion: 1_000_000,
    }))
    .await;
    assert!(l.admit(&adm("b", "free", 0)).await.is_ok());
}

#[tokio::test]
async fn a_refusal_charges_nothing() {
    let cfg = config(&[("a", set(10, 0, 1))], &[("m", set(0, 100, 0))]);
    let (l, _t) = manual(&cfg, T0);
    let p = l.admit(&adm("a", "m", 60)).await.unwrap();
    drop(p);
    // The model's token bucket refuses; the key's request bucket and slot stay untouched.
    let r = l.admit(&adm("a", "m", 60)).await.unwrap_err();
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Tokens, Some(Scope::Model))
    );
    assert!(r.message().contains("model m"), "{}", r.message());
    let _held = l.admit(&adm("a", "m", 0)).await.unwrap();
    // Two admitted so far: 8 requests left, although three were tried.
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(r.kind(), LimitKind::Concurrency);
    assert_eq!(
        header(r.headers(), "x-ratelimit-remaining-requests").as_deref(),
        Some("8")
    );
    assert_eq!(
        header(r.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("40")
    );
}

#[tokio::test]
async fn retry_after_is_the_longest_of_the_refusing_limits() {
    let cfg = config(&[("a", set(60, 0, 0))], &[("m", set(6, 0, 0))]);
    let (l, _t) = manual(&cfg, T0);
    for _ in 0..6 {
        let _ = l.admit(&adm("a", "m", 0)).await.unwrap();
    }
    let r = l.admit(&adm("a", "m", 0)).await.unwrap_err();
    // The model's bucket (6/min) needs 10s; the key's passes.
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Requests, Some(Scope::Model))
    );
    assert_eq!(r.retry_after(), Duration::from_secs(10));
    assert_eq!(
        header(r.headers(), "x-ratelimit-limit-requests").as_deref(),
        Some("6")
    );
}

#[tokio::test]
async fn inactive_and_unknown_names() {
    let l = Limiter::new(&LimitsConfig::default()).unwrap();
    assert!(!l.is_active());
    let p = l.admit(&adm("x", "y", 10)).await.unwrap();
    assert_eq!(p.headers().count(), 0);
    // `limits: {}` on a key exempts it.
    let cfg = config(&[("free", LimitSet::default()), ("a", set(1, 0, 0))], &[]);
    let l = Limiter::new(&cfg).unwrap();
    assert!(l.is_active());
    for _ in 0..5 {
        let _ = l.admit(&adm("free", "m", 0)).await.unwrap();
        let _ = l.admit(&adm("unknown", "m", 0)).await.unwrap();
    }
    let _ = l.admit(&adm("a", "m", 0)).await.unwrap();
    assert!(l.admit(&adm("a", "m", 0)).await.is_err());
}

#[test]
fn permits_release_without_a_runtime() {
    let cfg = config(&[("a", set(0, 0, 1))], &[]);
    let (l, _t) = manual(&cfg, T0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let p = rt.block_on(l.admit(&adm("a", "m", 0))).unwrap();
    drop(rt);
    drop(p);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(l.admit(&adm("a", "m", 0))).is_ok());
}

#[tokio::test]
async fn counters_export_as_prometheus_metrics() {
    let cfg = config(&[("a", set(1, 0, 0))], &[("m", set(0, 0, 1))]);
    let (l, _t) = manual(&cfg, T0);
    let registry = prometheus::Registry::new();
    registry.register(Box::new(l.collector())).unwrap();
    let p = l.admit(&adm("b", "m", 0)).await.unwrap();
    for _ in 0..2 {
        assert!(l.admit(&adm("b", "m", 0)).await.is_err());
    }
    drop(p);
    let _ = l.admit(&adm("a", "x", 0)).await.unwrap();
    for _ in 0..3 {
        assert!(l.admit(&adm("a", "x", 0)).await.is_err());
    }
    let text = || {
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    };
    let t = text();
    assert!(
        t.contains(r#"sluice_rate_limit_rejections_total{limit="requests",scope="key"} 3"#),
        "{t}"
    );
    assert!(
        t.contains(r#"sluice_rate_limit_rejections_total{limit="concurrency",scope="model"} 2"#),
        "{t}"
    );
    assert!(
        t.contains("sluice_rate_limit_backend_errors_total 0"),
        "{t}"
    );
    assert!(t.contains("sluice_rate_limit_fail_open_total 0"), "{t}");
    // Scraping again does not count twice.
    assert!(l.admit(&adm("a", "x", 0)).await.is_err());
    let t = text();
    assert!(
        t.contains(r#"sluice_rate_limit_rejections_total{limit="requests",scope="key"} 4"#),
        "{t}"
    );
}

#[tokio::test]
async fn two_stage_admission_settles_like_one() {
    let cfg = config(&[("a", set(10, 0, 2))], &[("m", set(0, 1000, 0))]);
    let (l, _t) = manual(&cfg, T0);
    let mut p = l.admit_key("a").await.unwrap();
    l.admit_rest(&adm("a", "m", 200_000), &mut p).await.unwrap();
    assert_eq!(
        header(p.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("0"),
        "the charge is capped at the bucket's limit"
    );
    assert_eq!(
        header(p.headers(), "x-ratelimit-remaining-requests").as_deref(),
        Some("9")
    );
    p.settle(Some(Usage {
        prompt: 2,
        cached: 0,
        completion: 10,
    }))
    .await;
    // Refunded to the actual 12 tokens: another key's request fits at once.
    let p = l.admit(&adm("b", "m", 900)).await.unwrap();
    assert_eq!(
        header(p.headers(), "x-ratelimit-remaining-tokens").as_deref(),
        Some("88")
    );
    // A refusal in the second stage keeps the request counted and frees the slot.
    let mut p1 = l.admit_key("a").await.unwrap();
    let r = l
        .admit_rest(&adm("a", "m", 500), &mut p1)
        .await
        .unwrap_err();
    assert_eq!(
        (r.kind(), r.scope()),
        (LimitKind::Tokens, Some(Scope::Model))
    );
    drop(p1);
    let _p2 = l.admit_key("a").await.unwrap();
    let p3 = l.admit_key("a").await.unwrap();
    assert_eq!(
        header(p3.headers(), "x-ratelimit-remaining-requests").as_deref(),
        Some("6")
    );
    assert_eq!(
        l.admit_key("a").await.unwrap_err().kind(),
        LimitKind::Concurrency
    );
}

#[tokio::test]
async fn a_reconfigured_limiter_keeps_the_state_of_what_stays() {
    let cfg = config(&[("a", set(2, 0, 1))], &[]);
    let (l, _t) = manual(&cfg, T0);
    l.admit(&adm("a", "m", 0)).await.unwrap().settle(None).await;
    let held = l.admit(&adm("a", "m", 0)).await.unwrap();
    // A reload adds key b and keeps a: a's bucket and its slot in use stay.
    let next = l
        .reconfigured(&config(&[("a", set(2, 0, 1)), ("b", set(1, 0, 0))], &[]))
        .unwrap();
    let refused = next.admit(&adm("a", "m", 0)).await.unwrap_err();
    assert_eq!(refused.kind(), LimitKind::Requests);
    drop(next.admit(&adm("b", "m", 0)).await.unwrap());
    next.admit(&adm("b", "m", 0)).await.unwrap_err();
    // The permit from before the reload releases its slot into the same state.
    drop(held);
    let raised = next
        .reconfigured(&config(&[("a", set(10, 0, 1))], &[]))
        .unwrap();
    drop(raised.admit(&adm("a", "m", 0)).await.unwrap());
    // The counters go on across generations.
    assert_eq!(
        raised
            .counters()
            .rejections(LimitKind::Requests, Some(Scope::Key)),
        2
    );
}

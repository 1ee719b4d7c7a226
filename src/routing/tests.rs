use super::*;
use crate::config::parse;

fn router(models: &str) -> Router {
    let yaml = format!(
        "listen: 127.0.0.1:8080\nallow_inline_secrets: true\n\
         keys: [{{ name: a, key: sk-test-a }}]\n\
         providers:\n  p1: {{ kind: openai_compatible, base_url: http://127.0.0.1:1/v1 }}\n  \
         p2: {{ kind: openai_compatible, base_url: http://127.0.0.1:2/v1 }}\n  \
         p3: {{ kind: openai_compatible, base_url: http://127.0.0.1:3/v1 }}\n\
         health: {{ failure_threshold: 2, cooldown: 5s, max_cooldown: 60s }}\n\
         retry: {{ budget_ratio: 0.2, budget_min_per_second: 0 }}\n\
         models:\n{models}"
    );
    Router::new(&parse(&yaml).unwrap())
}

fn fail(r: &Router, d: &DeploymentState, status: u16, retry_after: Option<u64>) {
    r.record_failure(
        d,
        Failure {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        },
    );
}

#[test]
fn weights_shape_the_traffic() {
    let r = router("  m:\n    - { provider: p1, weight: 3 }\n    - { provider: p2, weight: 1 }\n");
    let route = r.route("m").unwrap();
    let mut counts = [0u32; 2];
    for _ in 0..20_000 {
        counts[r.choose(route, &[]).0] += 1;
    }
    let share = f64::from(counts[0]) / 20_000.0;
    // Two weighted samples, ties to the first: with no load the first pick wins, so the
    // share follows the weights.
    assert!((0.70..0.80).contains(&share), "share {share}");
}

#[test]
fn in_flight_load_moves_traffic_away() {
    let r = router("  m:\n    - { provider: p1 }\n    - { provider: p2 }\n");
    let route = r.route("m").unwrap();
    let _busy: Vec<InFlight> = (0..10).map(|_| r.begin(&route.deployments[0])).collect();
    let mut to_busy = 0;
    for _ in 0..1000 {
        if r.choose(route, &[]).0 == 0 {
            to_busy += 1;
        }
    }
    // Only when both samples land on the busy one (about a quarter of the time).
    assert!(to_busy < 350, "{to_busy}");
}

#[test]
fn priority_tiers_and_exclusions() {
    let r = router(
        "  m:\n    - { provider: p1, priority: 1 }\n    - { provider: p2, priority: 0 }\n    - { provider: p3, priority: 1 }\n",
    );
    let route = r.route("m").unwrap();
    for _ in 0..50 {
        assert_eq!(r.choose(route, &[]), (1, Reason::Fresh));
    }
    let (next, why) = r.choose(route, &[1]);
    assert!(next == 0 || next == 2);
    assert_eq!(why, Reason::Fresh);
    assert_eq!(r.choose(route, &[1, 0]), (2, Reason::Fresh));
    let (again, why) = r.choose(route, &[0, 1, 2]);
    assert_eq!(why, Reason::Again);
    assert_eq!(again, 1, "the preferred tier again");
}

#[test]
fn throttling_and_repeated_failures_cool_a_deployment_down() {
    let r = router("  m:\n    - { provider: p1 }\n    - { provider: p2 }\n");
    let route = r.route("m").unwrap();
    let (d0, d1) = (&route.deployments[0], &route.deployments[1]);

    fail(&r, d0, 500, None);
    assert!(r.is_available(d0), "one failure is below the threshold");
    fail(&r, d0, 502, None);
    assert!(!r.is_available(d0), "two consecutive failures cool it down");
    let left = r.cooldown_left(d0);
    assert!(
        left > Duration::from_secs(4) && left <= Duration::from_secs(5),
        "{left:?}"
    );
    for _ in 0..20 {
        assert_eq!(r.choose(route, &[]), (1, Reason::Fresh));
    }
    assert_eq!(
        r.choose(route, &[1]),
        (0, Reason::Fresh),
        "a failing deployment is a last resort, not waited for"
    );

    fail(&r, d1, 429, Some(30));
    assert_eq!(r.cooldown_status(d1), 429);
    assert!(r.cooldown_left(d1) > Duration::from_secs(29));
    assert_eq!(r.choose(route, &[]), (0, Reason::Fresh));
    assert_eq!(r.choose(route, &[0]), (0, Reason::Again));
    assert_eq!(r.unavailable_models(), vec!["m"]);

    fail(&r, d0, 503, Some(10));
    let (i, why) = r.choose(route, &[]);
    assert_eq!(i, 0, "both throttled: the one whose Retry-After ends first");
    assert!(
        matches!(why, Reason::Cooldown(d) if d > Duration::from_secs(9) && d <= Duration::from_secs(10))
    );

    fail(&r, d1, 503, Some(3600));
    assert!(
        r.cooldown_left(d1) <= Duration::from_secs(60),
        "capped by max_cooldown"
    );

    r.record_success(d0);
    assert_eq!(d0.consecutive_failures.load(Ordering::Relaxed), 0);
}

#[test]
fn unhealthy_provider_is_used_only_when_nothing_else_is() {
    let r = router("  m:\n    - { provider: p1 }\n    - { provider: p2 }\n");
    let route = r.route("m").unwrap();
    let p1 = &route.deployments[0].provider;
    p1.record_check_error("refused".into());
    p1.set_healthy(false);
    for _ in 0..20 {
        assert_eq!(r.choose(route, &[]).0, 1);
    }
    assert_eq!(
        r.choose(route, &[1]),
        (0, Reason::Fresh),
        "better than failing"
    );
    assert_eq!(p1.last_check_error().as_deref(), Some("refused"));
    p1.set_healthy(true);
    assert_eq!(p1.last_check_error(), None);
    assert!(p1.is_healthy());
}

#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
    let future = std::time::SystemTime::now() + Duration::from_secs(120);
    let d = parse_retry_after(&httpdate::fmt_http_date(future)).unwrap();
    assert!(
        d > Duration::from_secs(110) && d <= Duration::from_secs(120),
        "{d:?}"
    );
    let past = std::time::SystemTime::now() - Duration::from_secs(120);
    assert_eq!(
        parse_retry_after(&httpdate::fmt_http_date(past)),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
    assert_eq!(parse_retry_after("-3"), None);
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(1);
    for _ in 0..100 {
        let b1 = backoff(1, base, max);
        assert!(b1 >= Duration::from_millis(50) && b1 <= base, "{b1:?}");
        let b3 = backoff(3, base, max);
        assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
        assert!(backoff(30, base, max) <= max);
    }
}

#[test]
fn retry_budget_is_a_share_of_requests() {
    let r = router("  m:\n    - { provider: p1 }\n");
    assert!(
        !r.budget.try_retry(),
        "nothing saved, no per-second allowance"
    );
    for _ in 0..100 {
        r.budget.on_request();
    }
    let granted = (0..100).filter(|_| r.budget.try_retry()).count();
    assert_eq!(granted, 20);
}

#[test]
fn a_reloaded_router_keeps_cooldowns_and_provider_health() {
    let models = "  m:\n    - { provider: p1 }\n    - { provider: p2 }\n";
    let r = router(models);
    let route = r.route("m").unwrap();
    fail(&r, &route.deployments[0], 429, Some(60));
    r.providers()
        .find(|p| p.provider.name == "p2")
        .unwrap()
        .set_healthy(false);
    let next = Router::after(
        &parse(&format!(
            "listen: 127.0.0.1:8080\nallow_inline_secrets: true\n\
             keys: [{{ name: a, key: sk-test-a }}]\n\
             providers:\n  p1: {{ kind: openai_compatible, base_url: http://127.0.0.1:1/v1 }}\n  \
             p2: {{ kind: openai_compatible, base_url: http://127.0.0.1:2/v1 }}\n  \
             p3: {{ kind: openai_compatible, base_url: http://127.0.0.1:3/v1 }}\n\
             models:\n{models}    - {{ provider: p3 }}\n"
        ))
        .unwrap(),
        &r,
    );
    let route = next.route("m").unwrap();
    assert_eq!(route.deployments.len(), 3);
    assert!(!next.is_available(&route.deployments[0]), "cooldown kept");
    assert_eq!(next.cooldown_status(&route.deployments[0]), 429);
    assert!(!next.is_available(&route.deployments[1]), "health kept");
    assert!(
        next.is_available(&route.deployments[2]),
        "a new deployment starts available"
    );
}

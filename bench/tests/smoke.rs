//! Smoke test of the bench itself: every scenario at a tiny scale produces a complete, sane
//! report. It checks the bench, not sluice's speed.

use std::time::Duration;

use sluice_bench::{load::Mode, run_scenario, scenarios, Redis, Variant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_reports_sane_figures() {
    for mut s in scenarios(0.01) {
        s.duration = Duration::from_secs(1);
        s.ramp = Duration::ZERO;
        s.chunks = s.chunks.min(5);
        s.gap = s.gap.min(Duration::from_millis(20));
        if let Mode::Closed { concurrency } = &mut s.mode {
            *concurrency = (*concurrency).min(8);
        }
        if let Mode::Open { rate, .. } = &mut s.mode {
            *rate = rate.min(50.0);
        }
        let mut report = run_scenario(&s, &|_, _, _, _| {}).await.unwrap();
        let r = report.to_json();
        assert_eq!(r["scenario"], s.name);
        for target in ["direct", "sluice"] {
            let t = &r[target];
            assert!(t["requests_ok"].as_u64().unwrap() > 0, "{}: {r}", s.name);
            assert_eq!(t["errors"], 0, "{}: {r}", s.name);
            assert!(t["throughput_rps"].as_f64().unwrap() > 0.0);
            assert!(
                t["latency_ms"]["p99"].as_f64().unwrap()
                    >= t["latency_ms"]["p50"].as_f64().unwrap()
            );
            if s.stream {
                assert!(t["ttft_ms"]["p50"].as_f64().is_some(), "{r}");
                assert!(t["chunk_gap_ms"]["p50"].as_f64().is_some(), "{r}");
            }
        }
        let p = &r["sluice_process"];
        assert!(p["rss_peak_kib"].as_u64().unwrap() > 1000, "{r}");
        // Each client holds a connection to sluice, and sluice one to the mock.
        assert!(
            p["fds_peak"].as_u64().unwrap() > p["fds_baseline"].as_u64().unwrap(),
            "{r}"
        );
        assert!(p["cpu_seconds"].as_f64().unwrap() >= 0.0);
        assert_eq!(
            p["cpu_us_per_chunk"].as_f64().is_some(),
            s.stream,
            "CPU per streamed chunk for stream scenarios only: {r}"
        );
        assert!(
            r["ratios_sluice_over_direct"]["throughput"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        let md = sluice_bench::markdown(&r);
        assert!(
            md.contains("through sluice") && md.contains("sluice / direct"),
            "{md}"
        );
        check_nginx(&s, &r, &md);
        if s.variants.is_empty() {
            assert!(r.get("variants").is_none(), "{r}");
            continue;
        }
        let off = s.variants[0].off_label();
        assert_eq!(r["sluice_label"], off);
        assert_eq!(r["variants"].as_array().unwrap().len(), s.variants.len());
        for (v, out) in s.variants.iter().zip(r["variants"].as_array().unwrap()) {
            assert_eq!(out["name"], v.label());
            if let Some(why) = out["skipped"].as_str() {
                // Only the Redis and PostgreSQL runs may be skipped (their server is absent).
                assert!(
                    matches!(*v, Variant::LimitsRedis | Variant::LedgerPostgres),
                    "{r}"
                );
                assert!(md.contains(why), "{md}");
                continue;
            }
            let t = &out["sluice"];
            assert!(
                t["requests_ok"].as_u64().unwrap() > 0,
                "{}: {out}",
                v.label()
            );
            assert_eq!(t["errors"], 0, "{}: {out}", v.label());
            assert!(out["sluice_process"]["cpu_us_per_request"]
                .as_f64()
                .is_some());
            let on_off = &out["ratios_on_over_off"];
            assert!(on_off["throughput"].as_f64().unwrap() > 0.0, "{out}");
            assert!(on_off["latency_p99"].as_f64().unwrap() > 0.0, "{out}");
            if s.stream {
                assert!(on_off["ttft_p50"].as_f64().unwrap() > 0.0, "{out}");
                assert!(on_off["ttft_p99"].as_f64().unwrap() > 0.0, "{out}");
            }
            let counters = out["sluice_counters"].as_object().unwrap();
            assert!(!counters.is_empty(), "{out}");
            if matches!(*v, Variant::LedgerSqlite | Variant::LedgerPostgres) {
                // The ledger stored records and never fell behind.
                assert!(
                    counters["usage_records_written"].as_u64() > Some(0),
                    "{out}"
                );
                assert_eq!(counters["usage_records_spilled"], 0, "{out}");
            } else if *v == Variant::CacheMemory {
                // The first answer was stored; every request after it was a hit.
                assert!(counters["cache_stores"].as_u64() >= Some(1), "{out}");
                assert!(counters["cache_hits"].as_u64() > Some(0), "{out}");
            } else {
                // The feature did nothing visible: the prose has nothing to redact and the
                // limits are never reached nor their backend unreachable.
                assert!(counters.values().all(|n| n == 0), "{out}");
            }
            assert_eq!(
                out["redis_process"].is_object(),
                *v == Variant::LimitsRedis,
                "{out}"
            );
            assert!(
                md.contains(&format!("through sluice, {}", v.label()))
                    && md.contains(&format!("**{} / {off}**", v.label())),
                "{md}"
            );
        }
    }
}

#[tokio::test]
async fn a_missing_redis_server_is_reported_not_fatal() {
    let err = Redis::start("/nonexistent/redis-server")
        .await
        .err()
        .unwrap();
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn the_prose_reply_has_the_words_asked_for() {
    let p = sluice_bench::prose(19);
    assert_eq!(p.split(' ').count(), 19);
    assert!(!p.contains('@'), "{p}");
    assert_eq!(sluice_bench::prose(300).split(' ').count(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_soak_reports_every_connection_closed() {
    let r = sluice_bench::idle_soak(40, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(r["open_errors"], 0, "{r}");
    assert_eq!(r["closed_by_sluice"], 40, "{r}");
    assert_eq!(r["not_closed"], 0, "{r}");
    assert_eq!(r["open_in_sluice_after"], 0.0, "{r}");
    assert!(r["rss_kib"]["peak"].as_u64().unwrap() > 1000, "{r}");
    assert!(r["header_timeouts_counted"].as_f64().unwrap() >= 1.0, "{r}");
    let md = sluice_bench::soak_markdown(&r);
    assert!(md.contains("closed by sluice | 40"), "{md}");
}

/// The nginx `proxy_pass` baseline: measured like sluice for the scenarios that have it (or
/// skipped with the reason, only where nginx is not installed), absent for the others.
fn check_nginx(s: &sluice_bench::Scenario, r: &serde_json::Value, md: &str) {
    if !s.nginx {
        assert!(
            r.get("nginx").is_none() && r.get("nginx_skipped").is_none(),
            "{r}"
        );
        return;
    }
    if let Some(why) = r["nginx_skipped"].as_str() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_NGINX").is_none(),
            "nginx is required (SLUICE_REQUIRE_NGINX) but the baseline was skipped: {why}"
        );
        assert!(md.contains(why), "{md}");
        return;
    }
    let n = &r["nginx"];
    assert!(n["requests_ok"].as_u64().unwrap() > 0, "{}: {r}", s.name);
    assert_eq!(n["errors"], 0, "{}: {r}", s.name);
    // Master and workers were sampled: more than one small process's memory.
    assert!(
        r["nginx_process"]["rss_peak_kib"].as_u64().unwrap() > 1000,
        "{r}"
    );
    let ratios = &r["ratios_sluice_over_nginx"];
    assert!(ratios["throughput"].as_f64().unwrap() > 0.0, "{r}");
    // CPU per request may be too small to measure in a one-second run (clock ticks): a
    // ratio or nothing, never garbage.
    assert!(
        ratios["cpu_per_request"].is_null() || ratios["cpu_per_request"].as_f64() > Some(0.0),
        "{r}"
    );
    assert!(
        md.contains("through nginx proxy_pass") && md.contains("/ nginx**"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_samples_memory_through_a_steady_mixed_load() {
    // The shortest soak (20 s): the load runs clean and the curve and trend are filled in.
    let r = sluice_bench::stream_soak::stream_soak(0.001).await.unwrap();
    assert_eq!(r["duration_s"], 20, "{r}");
    for load in ["streams", "small"] {
        assert!(r[load]["requests_ok"].as_u64().unwrap() > 100, "{r}");
        assert_eq!(r[load]["errors"], 0, "{r}");
    }
    assert!(r["abandoned_streams"].as_u64().unwrap() > 10, "{r}");
    let curve = r["curve"].as_array().unwrap();
    assert!(curve.len() >= 2, "{r}");
    assert!(
        curve.iter().all(|p| p["rss_kib"].as_u64().unwrap() > 1000),
        "{r}"
    );
    assert!(r["rss_slope_kib_per_hour"].as_f64().is_some(), "{r}");
    let md = sluice_bench::stream_soak::markdown(&r);
    assert!(md.contains("| t (s) | RSS (KiB) | fds |"), "{md}");
}

#[test]
fn the_soak_trend_is_a_least_squares_slope() {
    use sluice_bench::stream_soak::slope;
    assert_eq!(slope(&[0.0, 1.0, 2.0], &[5.0, 7.0, 9.0]), 2.0);
    assert_eq!(slope(&[0.0, 1.0, 2.0, 3.0], &[4.0, 4.0, 4.0, 4.0]), 0.0);
    assert!((slope(&[0.0, 1.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-9);
    assert_eq!(slope(&[1.0], &[3.0]), 0.0);
}

//! Smoke test of the bench itself: every scenario at a tiny scale produces a complete, sane
//! report. It checks the bench, not sluice's speed.

use std::time::Duration;

use sluice_bench::{load::Mode, run_scenario, scenarios};

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
        assert!(p["cpu_seconds"].as_f64().unwrap() >= 0.0);
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
    }
}

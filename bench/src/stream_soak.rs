//! The stream soak: a steady mixed load for a long time — streams, small completions, and
//! clients that hang up in the middle of a stream — with the usage ledger and output
//! guardrails on, sampling sluice's resident memory and open descriptors all along. A leak
//! shows as a trend after warm-up; the report gives the curve and the trend's slope.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::{self, LoadSpec, Mode};
use crate::{process, scenarios, sluice_binary, start_gateway, start_mock, Variant, KEY};

/// The soak's name on the command line and in reports.
pub const NAME: &str = "soak";

/// Streams started per second (each ~1.1 s long: 100 ms to the first token, 20 chunks 50 ms
/// apart), small completions per second, and streams abandoned by their client per second,
/// at full scale.
const STREAM_RATE: f64 = 40.0;
const SMALL_RATE: f64 = 100.0;
const ABORT_EVERY: Duration = Duration::from_millis(250);

/// Full-scale length, and the part of it counted as warm-up (allocator and pools growing to
/// their working size), left out of the trend.
const FULL: Duration = Duration::from_secs(60 * 60);
const WARM_UP_SHARE: f64 = 0.1;

/// Least-squares slope of `ys` over `xs` (units of y per unit of x).
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// Opens a stream, reads until the answer has begun, and hangs up.
async fn abandon(port: u16, request: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    // The head, then at least one event.
    while got < 2 {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) => return Err("closed before the answer".into()),
            Ok(Ok(_)) => got += 1,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer in 10 s".into()),
        }
    }
    Ok(())
}

/// Runs the soak for `FULL × scale` (20 s at least); returns the report.
pub async fn stream_soak(scale: f64) -> Result<Value, String> {
    let bin = sluice_binary()?;
    let s = scenarios(1.0)
        .into_iter()
        .find(|s| s.name == "streams-1k")
        .expect("streams-1k is a scenario");
    let reply = vec!["x".repeat(15); s.chunks - 1].join(" ");
    let (mut mock, mock_port) = start_mock(&bin, &s, &reply).await?;
    let extra = format!(
        "{}{}",
        Variant::LedgerSqlite.config(None),
        Variant::OutputGuardrails.config(None)
    );
    let mut gw = start_gateway(&bin, mock_port, &s, &extra).await?;
    let pid = gw.child.id().ok_or("sluice exited")?;
    let duration = FULL.mul_f64(scale).max(Duration::from_secs(20));
    let body = |stream: bool| {
        json!({
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello"}]
        })
        .to_string()
    };
    let spec = |stream: bool, rate: f64| LoadSpec {
        port: gw.port,
        mode: Mode::Open {
            rate,
            max_in_flight: 2000,
        },
        duration,
        stream,
        request: std::sync::Arc::new(load::post_request(
            gw.port,
            "/v1/chat/completions",
            Some(KEY),
            &body(stream),
        )),
        ramp: Duration::ZERO,
        timeout: Duration::from_secs(30),
        label: if stream { "streams" } else { "small" }.into(),
    };
    let (streams, small) = (spec(true, STREAM_RATE), spec(false, SMALL_RATE));
    let abort_request = streams.request.clone();
    let started = Instant::now();
    let end = started + duration;
    let port = gw.port;
    let aborts = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut tick = tokio::time::interval(ABORT_EVERY);
        while Instant::now() < end {
            tick.tick().await;
            match abandon(port, &abort_request).await {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        (ok, failed)
    });
    // Every 10 s: (seconds since start, RSS KiB, open descriptors).
    let sampler = tokio::spawn(async move {
        let mut samples: Vec<(f64, u64, u64)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        while Instant::now() < end {
            tick.tick().await;
            if Instant::now() >= end {
                break;
            }
            if let (Some(rss), Some(fds)) = (process::rss_kib(pid), process::open_fds(pid)) {
                samples.push((started.elapsed().as_secs_f64(), rss, fds));
            }
        }
        samples
    });
    let cpu0 = process::cpu_seconds(pid).unwrap_or(0.0);
    let quiet = |_: u64, _: u64, _: usize| {};
    let (mut streams_m, mut small_m) =
        tokio::join!(load::run(&streams, &quiet), load::run(&small, &quiet));
    let cpu = process::cpu_seconds(pid).unwrap_or(cpu0) - cpu0;
    let (aborted, abort_failed) = aborts.await.unwrap_or_default();
    let samples = sampler.await.unwrap_or_default();
    let _ = gw.child.start_kill();
    let _ = gw.child.wait().await;
    let _ = mock.start_kill();
    crate::remove_ledger();

    let warm = duration.as_secs_f64() * WARM_UP_SHARE;
    let after: Vec<_> = samples.iter().filter(|s| s.0 >= warm).collect();
    let hours: Vec<f64> = after.iter().map(|s| s.0 / 3600.0).collect();
    let rss: Vec<f64> = after.iter().map(|s| s.1 as f64).collect();
    let fds: Vec<f64> = after.iter().map(|s| s.2 as f64).collect();
    let first = rss.first().copied().unwrap_or(0.0);
    let (lo, hi) = rss
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    // The curve, one point a minute (every sample for a short run).
    let step = (duration.as_secs_f64() / 60.0).clamp(10.0, 60.0);
    let mut curve = Vec::new();
    let mut next = 0.0;
    for s in &samples {
        if s.0 >= next {
            curve.push(json!({"t_s": s.0.round(), "rss_kib": s.1, "fds": s.2}));
            next += step;
        }
    }
    let rss_slope = slope(&hours, &rss);
    Ok(json!({
        "scenario": NAME,
        "duration_s": duration.as_secs(),
        "warm_up_s": warm.round(),
        "streams": crate::summary(&mut streams_m),
        "small": crate::summary(&mut small_m),
        "abandoned_streams": aborted,
        "abandon_errors": abort_failed,
        "cpu_seconds": cpu,
        "rss_kib_after_warm_up": {"first": first, "min": lo, "max": hi,
            "last": rss.last().copied().unwrap_or(0.0)},
        "rss_slope_kib_per_hour": rss_slope.round(),
        "rss_trend_over_run_pct": if first > 0.0 {
            (rss_slope * (hours.last().unwrap_or(&0.0) - hours.first().unwrap_or(&0.0))
                / first * 1000.0).round() / 10.0
        } else { 0.0 },
        "fd_slope_per_hour": (slope(&hours, &fds) * 10.0).round() / 10.0,
        "curve": curve,
    }))
}

/// The soak's report as Markdown.
pub fn markdown(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut out = format!(
        "### soak — {d} s of steady load ({sr} streams/s, {mr} small completions/s, a stream \
         abandoned every {ab} ms), usage ledger (SQLite) and output guardrails on\n\n\
         | | |\n|---|---|\n\
         | streams ok / errors | {so} / {se} |\n\
         | small ok / errors | {mo} / {me} |\n\
         | streams abandoned (errors) | {a} ({ae}) |\n\
         | CPU | {cpu:.0} s |\n\
         | RSS after {w} s warm-up: first / min / max / last | {r0:.0} / {rmin:.0} / {rmax:.0} / {rl:.0} KiB |\n\
         | RSS trend after warm-up (least squares) | {slope} KiB/hour ({pct} % over the run) |\n\
         | open descriptors trend | {fd} per hour |\n\n\
         | t (s) | RSS (KiB) | fds |\n|---|---|---|\n",
        d = r["duration_s"],
        sr = STREAM_RATE,
        mr = SMALL_RATE,
        ab = ABORT_EVERY.as_millis(),
        so = r["streams"]["requests_ok"],
        se = r["streams"]["errors"],
        mo = r["small"]["requests_ok"],
        me = r["small"]["errors"],
        a = r["abandoned_streams"],
        ae = r["abandon_errors"],
        cpu = f(&r["cpu_seconds"]),
        w = r["warm_up_s"],
        r0 = f(&r["rss_kib_after_warm_up"]["first"]),
        rmin = f(&r["rss_kib_after_warm_up"]["min"]),
        rmax = f(&r["rss_kib_after_warm_up"]["max"]),
        rl = f(&r["rss_kib_after_warm_up"]["last"]),
        slope = r["rss_slope_kib_per_hour"],
        pct = r["rss_trend_over_run_pct"],
        fd = r["fd_slope_per_hour"],
    );
    for p in r["curve"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            p["t_s"], p["rss_kib"], p["fds"]
        ));
    }
    out
}

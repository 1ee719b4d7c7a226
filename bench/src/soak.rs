//! The idle-connection soak: many client connections that hold a socket and do nothing —
//! half after one answered request (kept alive), half without ever sending a byte — then
//! checks that sluice closes every one of them by its timeouts (`timeouts.client_idle`,
//! `timeouts.request_header`) and that its memory comes back near where it started.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{
    admin_metrics, load, process, scenarios, sluice_binary, start_gateway, start_mock, KEY,
};

/// How long after the last close the memory left is measured.
const SETTLE: Duration = Duration::from_secs(12);

/// Connections opened at once while the soak builds up.
const OPEN_BATCH: usize = 500;

/// The value of an unlabelled metric in `/metrics` text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Opens one connection; with `request`, sends a request and reads its whole answer first.
async fn open(port: u16, request: Option<&[u8]>) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if let Some(req) = request {
        s.write_all(req).await.map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        loop {
            let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
                .await
                .map_err(|_| "no answer in 30s".to_string())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before the answer".into());
            }
            got.extend_from_slice(&buf[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = resp.parse(&got) {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                if got.len() >= head + len {
                    break;
                }
            }
        }
    }
    Ok(s)
}

/// Runs the soak with `connections` idle connections and sluice's client timeouts set to
/// `timeout`; returns the report.
pub async fn idle_soak(connections: usize, timeout: Duration) -> Result<Value, String> {
    let bin = sluice_binary()?;
    let s = scenarios(1.0).remove(0);
    let (mut mock, mock_port) = start_mock(&bin, &s, "ok").await?;
    let secs = timeout.as_secs().max(1);
    let extra = format!("timeouts: {{ client_idle: {secs}s, request_header: {secs}s }}\n");
    let mut gw = start_gateway(&bin, mock_port, &s, &extra).await?;
    let pid = gw.child.id().ok_or("sluice exited")?;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let request = load::post_request(gw.port, "/v1/chat/completions", Some(KEY), &body);
    // Warm-up: the first requests allocate what every later one reuses.
    for _ in 0..20 {
        drop(open(gw.port, Some(&request)).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = process::rss_kib(pid).unwrap_or(0);

    let started = Instant::now();
    let mut socks = Vec::with_capacity(connections);
    let mut open_errors = 0u64;
    let mut i = 0;
    while i < connections {
        let batch: Vec<_> = (i..connections.min(i + OPEN_BATCH))
            .map(|k| {
                let req = (k % 2 == 0).then(|| request.clone());
                let port = gw.port;
                tokio::spawn(async move { open(port, req.as_deref()).await })
            })
            .collect();
        for t in batch {
            match t.await {
                Ok(Ok(s)) => socks.push(s),
                _ => open_errors += 1,
            }
        }
        i += OPEN_BATCH;
    }
    let opened_in = started.elapsed();
    let text = admin_metrics(gw.admin).await.unwrap_or_default();
    let open_in_sluice = gauge(&text, "sluice_client_connections").unwrap_or(0.0);
    let peak = process::rss_kib(pid).unwrap_or(0);

    // Every connection must be closed by sluice: a read returns end-of-file (or an error).
    let limit = timeout * 2 + Duration::from_secs(30);
    let waits: Vec<_> = socks
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let t0 = Instant::now();
                let mut buf = [0u8; 256];
                loop {
                    match tokio::time::timeout(limit, s.read(&mut buf)).await {
                        Err(_) => return None,
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
                        Ok(Ok(_)) => continue,
                    }
                }
            })
        })
        .collect();
    let (mut closed, mut not_closed, mut slowest) = (0u64, 0u64, Duration::ZERO);
    for w in waits {
        match w.await.ok().flatten() {
            Some(d) => {
                closed += 1;
                slowest = slowest.max(d);
            }
            None => not_closed += 1,
        }
    }
    // sluice gives memory back within a few seconds of a burst closing (its allocator trim
    // looks every 5 s): wait for that, then measure what is left.
    tokio::time::sleep(SETTLE).await;
    let after = process::rss_kib(pid).unwrap_or(0);
    let text = admin_metrics(gw.admin).await.unwrap_or_default();
    let open_after = gauge(&text, "sluice_client_connections").unwrap_or(-1.0);
    let timeouts_counted = gauge(&text, "sluice_client_header_timeouts_total").unwrap_or(0.0);
    let _ = gw.child.start_kill();
    let _ = gw.child.wait().await;
    let _ = mock.start_kill();
    let n = connections.max(1) as f64;
    Ok(json!({
        "scenario": "idle-soak",
        "connections": connections,
        "timeout_s": secs,
        "open_errors": open_errors,
        "opened_in_s": opened_in.as_secs_f64(),
        "open_in_sluice_at_peak": open_in_sluice,
        "closed_by_sluice": closed,
        "not_closed": not_closed,
        "slowest_close_s": slowest.as_secs_f64(),
        "header_timeouts_counted": timeouts_counted,
        "open_in_sluice_after": open_after,
        "rss_kib": {"baseline": baseline, "peak": peak, "after": after},
        "rss_per_idle_connection_kib": (peak.saturating_sub(baseline)) as f64 / n,
        "rss_after_over_baseline": (after as f64 / baseline.max(1) as f64 * 100.0).round() / 100.0,
    }))
}

/// The soak's report as Markdown.
pub fn soak_markdown(r: &Value) -> String {
    format!(
        "### idle-soak — {c} idle client connections (half kept alive after a request, half \
         silent), client timeouts {t}s\n\n\
         | | |\n|---|---|\n\
         | opened (errors) | {c} ({oe}) in {oi:.1}s; sluice counted {op} open |\n\
         | closed by sluice | {cl} (not closed: {nc}); slowest after {sc:.1}s |\n\
         | RSS baseline → peak → after close | {b} → {p} → {a} KiB ({ratio}× baseline) |\n\
         | RSS per idle connection | {per:.1} KiB |\n\
         | open in sluice after | {oa} |\n",
        c = r["connections"],
        t = r["timeout_s"],
        oe = r["open_errors"],
        oi = r["opened_in_s"].as_f64().unwrap_or(0.0),
        op = r["open_in_sluice_at_peak"],
        cl = r["closed_by_sluice"],
        nc = r["not_closed"],
        sc = r["slowest_close_s"].as_f64().unwrap_or(0.0),
        b = r["rss_kib"]["baseline"],
        p = r["rss_kib"]["peak"],
        a = r["rss_kib"]["after"],
        ratio = r["rss_after_over_baseline"],
        per = r["rss_per_idle_connection_kib"].as_f64().unwrap_or(0.0),
        oa = r["open_in_sluice_after"],
    )
}

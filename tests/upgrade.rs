//! Zero-downtime upgrade: a new process takes over the listening sockets (`--upgrade` plus
//! SIGQUIT to the old one) while streams are open; none of them is lost.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_with_open_streams_loses_none() {
    let m = paced_mock("tok ".repeat(30), Duration::from_millis(60)).await;
    let ledger = tempfile::tempdir().unwrap();
    let db = ledger.path().join("usage.db");
    let cfg = format!(
        "{}usage:\n  path: {}\n",
        standard_config(&m.url()),
        db.display()
    );
    let mut gw = Gateway::start(&cfg);
    let port = gw.port;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut s = post_stream(port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        assert_eq!(s.status, 200);
        let mut body = s.next_chunk().await.expect("stream started");
        streams.push(tokio::spawn(async move {
            body.extend(s.rest().await);
            sse_data(&body)
        }));
    }
    gw.upgrade();
    // New requests are served by the new process while the old one drains.
    for _ in 0..5 {
        let r = post(port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for s in streams {
        let events = s.await.unwrap();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "a stream was cut: {events:?}"
        );
        assert_eq!(stream_text(&events).matches("tok").count(), 30);
    }
    assert!(
        eventually(Duration::from_secs(10), || gw.old_processes_exited()).await,
        "the old process exits once its streams are done"
    );
    // Both processes wrote to one ledger: the old one stored its streams' records before
    // exiting; nothing lost, nothing twice.
    let stored = || {
        use sluice::ledger::store::Store as _;
        sluice::ledger::sqlite::Sqlite::open_read_only(&db)
            .and_then(|mut s| s.recent(0, 1000, false))
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(10), || stored().len() >= 25).await,
        "records: {}",
        stored().len()
    );
    let records = stored();
    let ids: std::collections::HashSet<&str> =
        records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!((records.len(), ids.len()), (25, 25));
    assert_eq!(records.iter().filter(|r| r.stream).count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_open_streams_finish() {
    let m = paced_mock("tok ".repeat(20), Duration::from_millis(50)).await;
    let mut gw = Gateway::start(&standard_config(&m.url()));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    let mut body = s.next_chunk().await.expect("stream started");
    gw.signal("TERM");
    body.extend(s.rest().await);
    let events = sse_data(&body);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert_eq!(stream_text(&events).matches("tok").count(), 20);
    assert!(
        eventually(Duration::from_secs(10), || gw.exited()).await,
        "the process exits after draining"
    );
}

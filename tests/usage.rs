//! The usage ledger against the real binary: one record per request for every client API,
//! whole and streamed, failed and refused, queried through the admin listener and the CLI.

mod common;

use std::time::Duration;

use sluice::ledger::store::Store as _;

use common::*;
use serde_json::{json, Value};

/// Polls `GET /usage` until `pred` holds (the writer batches every 200 ms).
async fn usage_until(gw: &Gateway, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let r = get(gw.admin_port, &format!("/usage?{query}"), "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json();
        if pred(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("usage never matched; last: {last}");
}

fn row<'a>(rows: &'a Value, key: &str, model: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key && r["model"] == model)
        .unwrap_or_else(|| panic!("no row for {key}/{model} in {rows}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_and_queryable() {
    let m = mock().await;
    let db = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}pricing:\n  gpt-4o-mini: {{ input: 1000, output: 2000 }}\nusage:\n  path: {}\n  retention: 7d\n",
        standard_config(&m.url()),
        db.path().join("usage.db").display()
    );
    let gw = Gateway::start(&cfg);

    // Whole and streamed chat, embeddings, Anthropic Messages, Responses: five answers.
    assert_eq!(chat_ok(gw.port).await.status, 200);
    let s =
        read_all(post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await)
            .await;
    assert_eq!(s.status, 200);
    let r = post(
        gw.port,
        "/v1/embeddings",
        &json!({"model": "embed", "input": "hello"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        gw.port,
        "/v1/messages",
        &json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        gw.port,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Refused: an unknown model, a key that may not use the model, a missing key.
    post(
        gw.port,
        "/v1/chat/completions",
        &chat("no-such-model", false),
    )
    .await
    .assert_error(404, "model_not_found");
    let r = post_chat_as(gw.port, LIMITED_KEY, &chat("embed", false)).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post_chat_as(gw.port, "", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 401);

    let totals = usage_until(&gw, "since=1h", |v| v[0]["requests"] == 8).await;
    assert_eq!(totals[0]["errors"], 3, "{totals}");

    let rows = usage_until(&gw, "since=1h&by=key,model", |v| {
        v.as_array().is_some_and(|a| a.len() >= 4)
    })
    .await;
    let gpt = row(&rows, "team-a", "gpt-4o-mini");
    assert_eq!(gpt["requests"], 4, "{rows}");
    assert_eq!(gpt["errors"], 0);
    let (prompt, completion) = (
        gpt["prompt_tokens"].as_u64().unwrap(),
        gpt["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && completion > 0, "{gpt}");
    // Priced at 1000 / 2000 USD per million tokens.
    let cost = gpt["cost_usd"].as_f64().unwrap();
    let expected = (prompt as f64 * 1000.0 + completion as f64 * 2000.0) / 1e6;
    assert!((cost - expected).abs() < 1e-6, "{cost} vs {expected}");
    assert_eq!(row(&rows, "team-a", "embed")["requests"], 1);
    // A refused model is not recorded by name (client-chosen text stays out of the ledger's
    // groups); the unauthenticated request has neither key nor model.
    assert_eq!(row(&rows, "team-a", "")["errors"], 1);
    assert_eq!(row(&rows, "limited", "")["errors"], 1);
    assert_eq!(row(&rows, "", "")["errors"], 1);

    // CSV from the admin listener, and the same numbers from the CLI.
    let csv = get(gw.admin_port, "/usage?since=1h&by=model&format=csv", "").await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        csv.text()
            .starts_with("model,requests,errors,prompt_tokens"),
        "{}",
        csv.text()
    );
    let out = std::process::Command::new(bin())
        .args(["usage", "-c"])
        .arg(gw.dir.path().join("sluice.yaml"))
        .args(["--since", "1h", "--by", "key,model", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row(&cli, "team-a", "gpt-4o-mini"), gpt);
    // Config keys belong to no team: every request is in the empty team, on the admin
    // listener and from the CLI.
    let teams = get(gw.admin_port, "/usage?since=1h&by=team", "").await;
    assert_eq!(teams.status, 200, "{}", teams.text());
    let teams = teams.json();
    let total = totals[0]["requests"].as_u64().unwrap();
    assert_eq!(teams.as_array().unwrap().len(), 1, "{teams}");
    assert_eq!(
        (teams[0]["team"].as_str(), teams[0]["requests"].as_u64()),
        (Some(""), Some(total))
    );
    let out = std::process::Command::new(bin())
        .args(["usage", "-c"])
        .arg(gw.dir.path().join("sluice.yaml"))
        .args(["--since", "1h", "--by", "team", "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("team,requests,") && csv.contains(&format!("\n,{total},")),
        "{csv}"
    );
    let out = std::process::Command::new(bin())
        .args(["usage", "-c"])
        .arg(gw.dir.path().join("sluice.yaml"))
        .args(["--by", "tenant"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown group \"tenant\" (known: key, team,"),
        "{stderr}"
    );

    // The writer's counter, on the admin listener's metrics.
    let text = get(gw.admin_port, "/metrics", "").await.text();
    let written: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sluice_usage_records_written_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no written counter in metrics"));
    assert!(written >= 8.0, "{written}");

    // Bad queries get a precise error.
    let r = get(gw.admin_port, "/usage?since=soon", "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("since"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usage_the_endpoint_says_the_ledger_is_off() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let r = get(gw.admin_port, "/usage", "").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("usage_off"), "{}", r.text());
}

/// The records stored since the last call, once there are `n` of them. Found by id, not by
/// position: two requests can start in the same millisecond.
async fn fresh(
    db: &std::path::Path,
    seen: &mut std::collections::HashSet<u64>,
    n: usize,
) -> Vec<sluice::ledger::UsageRecord> {
    for _ in 0..100 {
        if let Ok(mut store) = sluice::ledger::sqlite::Sqlite::open_read_only(db) {
            if let Ok(r) = store.recent(0, 100, false) {
                let new: Vec<_> = r.into_iter().filter(|x| !seen.contains(&x.id)).collect();
                if new.len() >= n {
                    seen.extend(new.iter().map(|x| x.id));
                    return new;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ledger never held {n} new records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stream_failures_guardrails_limits_and_leaving_clients_are_recorded() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let cfg = format!(
        "{}retry:\n  backoff_base: 10ms\nguardrails:\n  - {{ name: codenames, type: regex, patterns: [\"(?i)project falcon\"], action: block, apply_to: [input] }}\ndefault_guardrails: [codenames]\nlimits:\n  models:\n    embed: {{ requests_per_minute: 1 }}\nusage:\n  path: {}\n",
        standard_config(&m.url()),
        db.display()
    );
    let gw = Gateway::start(&cfg);
    let mut seen = std::collections::HashSet::new();

    // 1. A 500, then the answer: one record, two attempts.
    m.push_fault(Fault::Status {
        status: 500,
        body: json!({"error": {"message": "mock says 500", "type": "server_error"}}).to_string(),
        retry_after: None,
    });
    assert_eq!(chat_ok(gw.port).await.status, 200);
    let r = fresh(&db, &mut seen, 1).await;
    assert_eq!(
        (r[0].status, r[0].attempts, r[0].error.as_deref()),
        (200, 2, None),
        "{:?}",
        r[0]
    );

    // 2. A stream that fails after two chunks: answered (200), recorded as an upstream error.
    m.push_fault(Fault::ErrorEventAfterChunks(2));
    let s =
        read_all(post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await)
            .await;
    assert_eq!(s.status, 200);
    let r = fresh(&db, &mut seen, 1).await;
    assert!(r[0].stream);
    assert_eq!(
        (r[0].status, r[0].error.as_deref()),
        (200, Some("upstream")),
        "{:?}",
        r[0]
    );

    // 3. Blocked by an input guardrail: never sent, the guardrail named (not the text).
    let mut body = chat("gpt-4o-mini", false);
    body["messages"][0]["content"] = json!("tell me about Project Falcon");
    post(gw.port, "/v1/chat/completions", &body)
        .await
        .assert_error(400, "content_filter");
    let r = fresh(&db, &mut seen, 1).await;
    assert_eq!(
        r[0].guardrails,
        vec!["input:codenames:block:codenames".to_string()],
        "{:?}",
        r[0]
    );
    assert_eq!((r[0].status, r[0].attempts), (400, 0));
    assert!(!serde_json::to_string(&r[0])
        .unwrap()
        .to_lowercase()
        .contains("falcon"));

    // 4. Over a model's rate: the second embeddings request is refused by the limits.
    let e = json!({"model": "embed", "input": "x"});
    assert_eq!(post(gw.port, "/v1/embeddings", &e).await.status, 200);
    assert_eq!(post(gw.port, "/v1/embeddings", &e).await.status, 429);
    let r = fresh(&db, &mut seen, 2).await;
    let mut got: Vec<_> = r.iter().map(|x| (x.status, x.error.as_deref())).collect();
    got.sort();
    assert_eq!(got, vec![(200, None), (429, Some("limit"))], "{r:?}");
    let refused = r.iter().find(|x| x.status == 429).unwrap();
    assert_eq!(refused.limit.as_deref(), Some("model:requests"));

    // 5. A client that leaves mid-stream: recorded with what the provider had reported.
    m.push_fault(Fault::StallAfterChunks(2, Duration::from_secs(30)));
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert!(s.next_chunk().await.is_some());
    drop(s);
    let r = fresh(&db, &mut seen, 1).await;
    assert!(r[0].stream && r[0].status == 200, "{:?}", r[0]);

    // Six requests, six records: none lost, none twice.
    let all = sluice::ledger::sqlite::Sqlite::open_read_only(&db)
        .unwrap()
        .recent(0, 100, false)
        .unwrap();
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(all
        .iter()
        .all(|x| x.request_id.len() >= 8 && x.api == "openai"));

    // The dashboard's report reads the same records.
    let rep = get(gw.admin_port, "/usage/report?since=1h", "").await;
    assert_eq!(rep.status, 200, "{}", rep.text());
    let v: Value = serde_json::from_str(&rep.text()).unwrap();
    assert_eq!(v["totals"]["requests"], 6, "{v}");
    assert_eq!(v["latency"][0]["model"], Value::Null);
    // Latency of the four that reached the provider (not the two refusals).
    assert_eq!(v["latency"][0]["requests"], 4);
    assert!(v["latency"][0]["ttft_ms"]["p50"].is_u64(), "{v}");
    assert_eq!(
        v["guardrails"],
        json!([{"direction": "input", "guardrail": "codenames", "action": "block",
                "count": 1, "kinds": {"codenames": 1}}])
    );
    let failures = v["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["status"] == 429 && f["limit"] == "model:requests"),
        "{v}"
    );
    assert!(failures.iter().any(|f| f["status"] == 400), "{v}");
    let models: Vec<&str> = v["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["model"].as_str())
        .collect();
    assert!(models.contains(&"embed") && models.contains(&"gpt-4o-mini"));
    // No key of this config has a team: one group, the empty team, with every request.
    assert_eq!(v["by_team"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        (&v["by_team"][0]["team"], &v["by_team"][0]["requests"]),
        (&json!(""), &json!(6))
    );
    assert_eq!(
        get(gw.admin_port, "/usage/report?since=later", "")
            .await
            .status,
        400
    );
}

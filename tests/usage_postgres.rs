//! The usage ledger in PostgreSQL (`usage.store: postgres`), against a real server started
//! by the test (`common::postgres`): two gateways writing one ledger, the database stopped
//! and started again under traffic (records spill and arrive exactly once), a graceful stop
//! while it is down, the store's own queries next to SQLite's, TLS, and config errors.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::postgres::{Pg, PASSWORD};
use common::*;
use sluice::core::secret::Secret;
use sluice::ledger::postgres::Postgres;
use sluice::ledger::query::{Group, Row};
use sluice::ledger::sqlite::Sqlite;
use sluice::ledger::store::Store;
use sluice::ledger::UsageRecord;

/// The standard config with a priced model and the ledger in PostgreSQL at `url`.
fn config(upstream: &str, url: &str) -> String {
    format!(
        "{}pricing:\n  gpt-4o-mini: {{ input: 1000, output: 2000 }}\n\
         usage:\n  store: postgres\n  url: {url}\n  retention: 7d\n",
        standard_config(upstream)
    )
}

/// A client of the test's own (plain TCP), its connection driven on the test's runtime.
async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

/// Request id → how many records the ledger holds for it.
async fn stored(url: &str) -> BTreeMap<String, i64> {
    let c = client(url).await;
    let rows = c
        .query(
            "SELECT request_id, COUNT(*) FROM sluice_usage GROUP BY request_id",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Polls the table until it holds `n` records.
async fn stored_until(url: &str, n: usize) -> BTreeMap<String, i64> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stored(url).await;
        if s.values().sum::<i64>() as usize >= n || Instant::now() > end {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A chat completion as `key`; returns its request id.
async fn request_as(port: u16, key: &str) -> String {
    let started = Instant::now();
    let r = post_chat_as(port, key, &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The ledger is off the request path: a database that is down adds no latency.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    r.header("x-request-id").unwrap().to_string()
}

/// A counter from the admin listener's metrics.
async fn counter(gw: &Gateway, name: &str) -> u64 {
    let text = get(gw.admin_port, "/metrics", "").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Every id exactly once, and nothing else.
fn exactly_once(stored: &BTreeMap<String, i64>, ids: &[String]) {
    let expected: BTreeMap<String, i64> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(stored, &expected);
}

/// The spill file (or the one being replayed) in a state directory: its records.
fn spilled_lines(state: &Path) -> usize {
    ["usage.spill", "usage.spill.replaying"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(state.join(f)).ok())
        .map(|t| t.lines().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_write_one_ledger() {
    let Some(pg) = Pg::start() else { return };
    let m = mock().await;
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url_file = pg.dir().join("database-url");
    std::fs::write(&url_file, format!("{}\n", pg.url())).unwrap();
    let env_url = ("SLUICE_TEST_DATABASE_URL", pg.url());
    let a = Gateway::start_with_env(
        &config(&m.url(), "${SLUICE_TEST_DATABASE_URL}"),
        &[
            (env_url.0, &env_url.1),
            ("STATE_DIRECTORY", state_a.path().to_str().unwrap()),
        ],
    );
    let b = Gateway::start_with_env(
        &config(&m.url(), &format!("file:{}", url_file.display())),
        &[("STATE_DIRECTORY", state_b.path().to_str().unwrap())],
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(request_as(a.port, KEY).await);
        ids.push(request_as(b.port, KEY).await);
    }
    ids.push(request_as(b.port, LIMITED_KEY).await);
    exactly_once(&stored_until(&pg.url(), ids.len()).await, &ids);

    // Either gateway's `GET /usage` and the CLI show the combined totals.
    let mut views = Vec::new();
    for gw in [&a, &b] {
        let r = get(gw.admin_port, "/usage?since=1h&by=key", "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        views.push(r.json());
    }
    let out = Command::new(bin())
        .args(["usage", "-c"])
        .arg(a.dir.path().join("sluice.yaml"))
        .args(["--since", "1h", "--by", "key", "--format", "json"])
        .env(env_url.0, &env_url.1)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    views.push(serde_json::from_slice(&out.stdout).unwrap());
    for v in &views {
        assert_eq!(v, &views[0]);
    }
    let rows = views[0].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (&rows[0]["key"], &rows[0]["requests"]),
        (&"limited".into(), &1.into())
    );
    assert_eq!(
        (&rows[1]["key"], &rows[1]["requests"]),
        (&"team-a".into(), &6.into())
    );
    assert!(rows[1]["cost_usd"].as_f64().unwrap() > 0.0);
    let report = get(b.admin_port, "/usage/report?since=1h", "").await;
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!(report.json()["totals"]["requests"], 7, "{}", report.text());
    assert_eq!(counter(&a, "sluice_usage_records_spilled_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_spills_and_every_record_arrives_once() {
    let Some(mut pg) = Pg::start() else { return };
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with_env(
        &config(&m.url(), &pg.url()),
        &[("STATE_DIRECTORY", state.path().to_str().unwrap())],
    );
    let mut ids = vec![
        request_as(gw.port, KEY).await,
        request_as(gw.port, KEY).await,
    ];
    exactly_once(&stored_until(&pg.url(), 2).await, &ids);

    pg.stop();
    for _ in 0..20 {
        ids.push(request_as(gw.port, KEY).await);
    }
    let spilled = "sluice_usage_records_spilled_total";
    let all_spilled = eventually(Duration::from_secs(10), || {
        spilled_lines(state.path()) == 20
    })
    .await;
    assert!(all_spilled, "{} spilled lines", spilled_lines(state.path()));
    assert_eq!(counter(&gw, spilled).await, 20);
    assert!(counter(&gw, "sluice_usage_write_failures_total").await >= 1);

    pg.restart();
    exactly_once(&stored_until(&pg.url(), ids.len()).await, &ids);
    let replayed = eventually(Duration::from_secs(10), || spilled_lines(state.path()) == 0).await;
    assert!(replayed, "the spill file is removed once replayed");
    // Nothing arrives twice later either.
    tokio::time::sleep(Duration::from_millis(600)).await;
    exactly_once(&stored(&pg.url()).await, &ids);
    assert_eq!(counter(&gw, "sluice_usage_records_written_total").await, 22);
    let log = gw.log();
    assert!(log.contains("the store failed"), "{log}");
    assert!(log.contains("the store is reachable again"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the URL's password is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_while_the_database_is_down_is_replayed_by_the_next_start() {
    let Some(mut pg) = Pg::start() else { return };
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let env = [("STATE_DIRECTORY", state.path().to_str().unwrap())];
    let cfg = config(&m.url(), &pg.url());
    let mut gw = Gateway::start_with_env(&cfg, &env);
    let mut ids = vec![request_as(gw.port, KEY).await];
    exactly_once(&stored_until(&pg.url(), 1).await, &ids);

    pg.stop();
    for _ in 0..5 {
        ids.push(request_as(gw.port, KEY).await);
    }
    gw.signal("TERM");
    assert!(eventually(Duration::from_secs(15), || gw.exited()).await);
    assert_eq!(spilled_lines(state.path()), 5, "{}", gw.log());

    // The next start does not need the database; once it is back, the spill is stored.
    let next = Gateway::start_with_env(&cfg, &env);
    ids.push(request_as(next.port, KEY).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.restart();
    exactly_once(&stored_until(&pg.url(), ids.len()).await, &ids);
    assert!(eventually(Duration::from_secs(10), || spilled_lines(state.path()) == 0).await);
}

#[test]
fn config_errors_name_the_key_and_never_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let check = |usage: &str| {
        let path = dir.path().join("sluice.yaml");
        let text = format!("{}usage:\n{usage}", standard_config("http://127.0.0.1:9"));
        let text = format!("listen: 127.0.0.1:8080\nallow_inline_secrets: true\n{text}");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin())
            .args(["check", "--resolve-secrets", "-c"])
            .arg(&path)
            .env(
                "SLUICE_TEST_DB",
                "postgres://sluice:hunter2@db.internal/ledger",
            )
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("hunter2"), "{text}");
        (out.status.success(), text)
    };
    let refused = [
        ("  store: postgres\n", "usage.url: is required"),
        (
            "  store: postgres\n  url: ${SLUICE_TEST_DB}\n  path: /tmp/usage.db\n",
            "usage.path",
        ),
        (
            "  store: postgres\n  url: mysql://u:hunter2@h/d\n",
            "usage.url: must start with postgres://",
        ),
        (
            "  store: postgres\n  url: postgres://u:hunter2@h:x/d\n",
            "usage.url: is not a valid",
        ),
        (
            "  store: postgres\n  url: ${SLUICE_NO_SUCH_VAR}\n",
            "usage.url: environment variable",
        ),
        (
            "  store: postgres\n  url: postgres://u:hunter2@h/d?sslmode=always\n",
            "usage.url: unknown sslmode",
        ),
        (
            "  store: sqlite\n  url: ${SLUICE_TEST_DB}\n",
            "usage.url: is for store: postgres",
        ),
    ];
    for (usage, expected) in refused {
        let (ok, text) = check(usage);
        assert!(!ok && text.contains(expected), "{usage}: {text}");
    }
    for usage in [
        "  store: postgres\n  url: ${SLUICE_TEST_DB}\n",
        "  store: postgres\n  url: postgresql://u:hunter2@h:6432/d?sslmode=verify-full\n",
    ] {
        let (ok, text) = check(usage);
        assert!(ok && text.contains("OK"), "{usage}: {text}");
    }
}

// The store itself, next to SQLite, on the same records.

/// 2025-11-29T14:00:00Z.
const T: u64 = 1_764_424_800_000;

fn rec(id: u64, ts_ms: u64, key: Option<&str>, status: u16, error: Option<&str>) -> UsageRecord {
    UsageRecord {
        id,
        ts_ms,
        request_id: format!("req-{id}"),
        key: key.map(str::to_string),
        model: Some(if id % 2 == 0 { "gpt-4o-mini" } else { "Other" }.into()),
        provider: Some("mock".into()),
        upstream_model: Some("upstream-gpt".into()),
        api: "openai".into(),
        stream: id % 3 == 0,
        status,
        error: error.map(str::to_string),
        prompt_tokens: 10 + id,
        completion_tokens: 20 + id,
        cached_tokens: id % 4,
        reasoning_tokens: id % 5,
        cost_usd: 0.001 * id as f64,
        latency_ms: 100 * id,
        ttft_ms: (id % 2 == 0).then_some(7 * id),
        attempts: 1 + (id % 2) as u32,
        failovers: (id % 2) as u32,
        guardrails: if id % 4 == 0 {
            vec!["input:pii".into(), "output:codenames".into()]
        } else {
            vec![]
        },
        limit: (status == 429).then(|| "key:requests".to_string()),
        team: key.and_then(|k| (id % 3 != 0).then(|| format!("team of {k}"))),
        cache: (id % 5 == 1).then(|| "hit".to_string()),
    }
}

/// Records over two UTC days and hours, with every outcome and keys that sort differently
/// by byte and by locale (and none).
fn records() -> Vec<UsageRecord> {
    vec![
        rec(1, T, Some("team-a"), 200, None),
        rec(2, T + 1, Some("Team-B"), 200, None),
        rec(3, T + 3_600_000, Some("team-a"), 502, Some("upstream")),
        rec(4, T + 10 * 3_600_000 - 1, None, 401, Some("auth")),
        rec(5, T + 10 * 3_600_000, Some("_ops"), 429, Some("limit")),
        rec(6, T + 10 * 3_600_000 + 5, Some("team-a"), 0, None),
        rec(7, T - 86_400_000, Some("team-a"), 404, None),
        rec(8, T + 2, Some("Team-B"), 200, None),
    ]
}

fn same_rows(pg: &[Row], lite: &[Row]) {
    assert_eq!(pg.len(), lite.len(), "{pg:?}\n{lite:?}");
    for (p, l) in pg.iter().zip(lite) {
        assert_eq!(
            (
                &p.groups,
                p.requests,
                p.errors,
                p.prompt_tokens,
                p.completion_tokens
            ),
            (
                &l.groups,
                l.requests,
                l.errors,
                l.prompt_tokens,
                l.completion_tokens
            )
        );
        assert!((p.cost_usd - l.cost_usd).abs() < 1e-9, "{p:?} {l:?}");
    }
}

#[test]
fn the_store_answers_as_the_sqlite_store_does() {
    let Some(server) = Pg::start() else { return };
    let url = Secret::new(server.url());
    let dir = tempfile::tempdir().unwrap();
    let mut lite = Sqlite::open(&dir.path().join("usage.db")).unwrap();
    let mut pg = Postgres::open(&url).unwrap();
    let recs = records();
    lite.insert(&recs).unwrap();
    pg.insert(&recs[..5]).unwrap();
    // A record stored twice (a replay), even twice in one batch, is kept once.
    let mut again = recs.clone();
    again.push(recs[5].clone());
    pg.insert(&again).unwrap();
    pg.insert(&[]).unwrap();

    let groups = [
        Group::Key,
        Group::Team,
        Group::Model,
        Group::Provider,
        Group::Day,
        Group::Hour,
    ];
    let mut bys: Vec<Vec<Group>> = vec![vec![]];
    bys.extend(groups.iter().map(|g| vec![*g]));
    bys.extend([
        vec![Group::Key, Group::Model],
        vec![Group::Day, Group::Key],
        vec![Group::Team, Group::Key],
    ]);
    for by in &bys {
        same_rows(&pg.summary(0, by).unwrap(), &lite.summary(0, by).unwrap());
    }
    let hours = pg.summary(0, &[Group::Hour]).unwrap();
    let labels: Vec<&str> = hours.iter().map(|r| r.groups[0].as_str()).collect();
    assert_eq!(
        labels,
        [
            "2025-11-28T14:00Z",
            "2025-11-29T14:00Z",
            "2025-11-29T15:00Z",
            "2025-11-29T23:00Z",
            "2025-11-30T00:00Z"
        ]
    );
    let days = pg.summary(T, &[Group::Day]).unwrap();
    let days: Vec<(&str, u64)> = days
        .iter()
        .map(|r| (r.groups[0].as_str(), r.requests))
        .collect();
    assert_eq!(days, [("2025-11-29", 5), ("2025-11-30", 2)]);

    for (since, limit, failed) in [
        (0, 100, false),
        (0, 3, false),
        (0, 100, true),
        (T, 100, true),
    ] {
        assert_eq!(
            pg.recent(since, limit, failed).unwrap(),
            lite.recent(since, limit, failed).unwrap()
        );
    }
    let failed: Vec<u64> = pg
        .recent(0, 100, true)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        failed,
        [5, 4, 3, 7],
        "errors and statuses of 400 or more, newest first"
    );
    assert_eq!(pg.timings(0, 100).unwrap(), lite.timings(0, 100).unwrap());
    assert_eq!(
        pg.guardrail_actions(0, 100).unwrap(),
        lite.guardrail_actions(0, 100).unwrap()
    );
    assert_eq!(
        pg.prune(Duration::from_secs(3600)).unwrap(),
        8,
        "all are older than an hour"
    );
}

#[test]
fn migrations_run_once_and_queries_need_the_schema() {
    let Some(server) = Pg::start() else { return };
    let url = Secret::new(server.url());
    let err = Postgres::open_read_only(&url).err().unwrap();
    assert!(err.contains("no schema yet"), "{err}");
    // Four instances starting together: the advisory lock lets one migrate.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Postgres::open(&url).map(drop))
        })
        .collect();
    for o in opens {
        o.join().unwrap().unwrap();
    }
    let mut pg = Postgres::open(&url).unwrap();
    pg.insert(&records()).unwrap();
    drop(pg);
    let mut again = Postgres::open(&url).unwrap();
    assert_eq!(again.summary(0, &[]).unwrap()[0].requests, 8);
    let mut ro = Postgres::open_read_only(&url).unwrap();
    assert_eq!(ro.recent(0, 1, false).unwrap()[0].id, 6);
    let refused = ro.insert(&[rec(99, T, None, 200, None)]).err().unwrap();
    assert!(refused.contains("read-only"), "{refused}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let versions: Vec<i32> = rt.block_on(async {
        let c = client(&server.url()).await;
        let rows = c
            .query("SELECT version FROM sluice_schema", &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    });
    assert_eq!(versions, [4]);
    // A newer schema than this build knows is refused, not altered.
    rt.block_on(async {
        let c = client(&server.url()).await;
        c.batch_execute("UPDATE sluice_schema SET version = 5")
            .await
            .unwrap();
    });
    let err = Postgres::open(&url).err().unwrap();
    assert!(err.contains("schema version 5 is newer"), "{err}");
}

/// A CA and a server certificate for `localhost` (not for 127.0.0.1) it signed, as PEM:
/// (CA, certificate, key).
fn certificates() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_encrypts_and_verifies_as_libpq_does() {
    let (ca, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    // The server takes TLS connections only.
    let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
    let files = [
        ("server.crt", &*cert),
        ("server.key", &*key),
        ("pg_hba.conf", hba),
    ];
    let args = [
        "-c",
        "ssl=on",
        "-c",
        "ssl_cert_file=server.crt",
        "-c",
        "ssl_key_file=server.key",
    ];
    let Some(server) = Pg::start_with(&files, &args) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let (ca, other_ca) = (write("ca.pem", &ca), write("other.pem", &other_ca));
    let port = server.port;
    let open = |host: &str, query: &str| {
        let url = format!("postgres://sluice@{host}:{port}/postgres?{query}");
        Postgres::open(&Secret::new(url)).map(drop)
    };
    let ok = [
        ("127.0.0.1", String::new()),
        ("127.0.0.1", "sslmode=require".into()),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}")),
        ("127.0.0.1", format!("sslmode=require&sslrootcert={ca}")),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}")),
    ];
    for (host, query) in &ok {
        open(host, query).unwrap_or_else(|e| panic!("{host} {query}: {e}"));
    }
    let e = open("127.0.0.1", "sslmode=disable").err().unwrap();
    assert!(e.contains("no encryption"), "{e}");
    let refused = [
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}")),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        ),
        (
            "localhost",
            format!("sslmode=require&sslrootcert={other_ca}"),
        ),
        ("localhost", "sslmode=verify-full".into()),
    ];
    for (host, query) in &refused {
        let e = open(host, query)
            .err()
            .unwrap_or_else(|| panic!("{host} {query} connected"));
        // (Without system roots at all, the last one fails before the handshake.)
        let verified = e.contains("TLS handshake") || e.contains("no CA certificate");
        assert!(verified, "{host} {query}: {e}");
    }
}

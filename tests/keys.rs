//! Managed keys: created, listed, rotated, revoked and expiring through the admin API and
//! `sluice keys`, in force at once on the instance that made the change and within
//! `usage.key_refresh` on the others; two instances sharing a real PostgreSQL.

mod common;

use std::process::Command;
use std::time::Duration;

use common::postgres::Pg;
use common::*;
use serde_json::{json, Value};

/// The standard config with the ledger (and the keys) in SQLite at `db`.
fn sqlite_config(upstream: &str, db: &std::path::Path) -> String {
    format!(
        "{}usage:\n  path: {}\n  key_refresh: 200ms\n",
        standard_config(upstream),
        db.display()
    )
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: &Value) -> Response {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    request(
        gw.admin_port,
        method,
        path,
        &[("content-type", "application/json")],
        &body,
    )
    .await
}

async fn chat_as(port: u16, key: &str) -> Response {
    post_chat_as(port, key, &chat("gpt-4o-mini", false)).await
}

/// Runs `sluice keys ARGS -c CONFIG`: (exit success, stdout, stderr).
fn cli(gw: &Gateway, args: &[&str]) -> (bool, String, String) {
    let cfg = gw.dir.path().join("sluice.yaml");
    let mut all = vec!["keys", args[0], "-c", cfg.to_str().unwrap()];
    all.extend(&args[1..]);
    let out = Command::new(bin()).args(&all).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_creates_rotates_and_revokes_keys_in_force_at_once() {
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&sqlite_config(&m.url(), &state.path().join("usage.db")));
    let port = gw.port;

    let r = admin(
        &gw,
        "POST",
        "/keys",
        &json!({"name": "svc-a", "models": "gpt-*", "metadata": {"team": "search", "owner": "ana"},
                "limits": {"requests_per_minute": 100}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let first = created["key"].as_str().unwrap().to_string();
    assert!(
        first.starts_with("sk-sluice-") && first.len() > 40,
        "{first}"
    );
    assert_eq!(created["prefix"].as_str().unwrap(), &first[..14]);
    assert_eq!(created["metadata"]["team"], "search");
    assert!(created.get("sha256").is_none());

    // In force before the answer was sent; its allow-list holds.
    assert_eq!(chat_as(port, &first).await.status, 200);
    post_chat_as(port, &first, &chat("other-model", false))
        .await
        .assert_error(404, "model_not_found");

    // Listed beside the config's keys, never with a secret.
    let list = admin(&gw, "GET", "/keys", &Value::Null).await;
    assert_eq!(list.status, 200);
    assert!(!list.text().contains(&first));
    let data = list.json()["data"].as_array().unwrap().clone();
    let names: Vec<(&str, &str)> = data
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("team-a", "config"),
            ("limited", "config"),
            ("svc-a", "managed")
        ]
    );
    let one = admin(&gw, "GET", "/keys/svc-a", &Value::Null).await;
    assert_eq!(one.json()["status"], "active");
    admin(&gw, "GET", "/keys/nope", &Value::Null)
        .await
        .assert_error(404, "key_not_found");

    // Refusals, each precise.
    admin(&gw, "POST", "/keys", &json!({"name": "svc-a"}))
        .await
        .assert_error(409, "key_exists");
    admin(&gw, "POST", "/keys", &json!({"name": "team-a"}))
        .await
        .assert_error(409, "config_key");
    let bad = admin(
        &gw,
        "POST",
        "/keys",
        &json!({"name": "x", "limits": {"requests_per_minute": 0}}),
    )
    .await;
    assert_eq!(
        bad.assert_error(400, "invalid_value")["error"]["param"],
        "limits"
    );
    admin(&gw, "POST", "/keys", &json!({"name": "bad name!"}))
        .await
        .assert_error(400, "invalid_value");
    let garbage = request(gw.admin_port, "POST", "/keys", &[], b"{not json").await;
    garbage.assert_error(400, "invalid_json");
    admin(&gw, "DELETE", "/keys/team-a", &Value::Null)
        .await
        .assert_error(409, "config_key");
    admin(&gw, "POST", "/keys/team-a/rotate", &Value::Null)
        .await
        .assert_error(409, "config_key");

    // The ledger records the key's team and groups by it.
    let by_team = || async {
        let r = request(gw.admin_port, "GET", "/usage?since=1h&by=team", &[], b"").await;
        r.json().as_array().is_some_and(|rows| {
            rows.iter()
                .any(|row| row["team"] == "search" && row["requests"] == 2)
        })
    };
    assert!(eventually_async(Duration::from_secs(20), by_team).await);

    // Rotation: both secrets work during the grace period.
    let r = admin(&gw, "POST", "/keys/svc-a/rotate", &json!({"grace": "1h"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json()["key"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert!(r.json()["previous_valid_until"].as_u64().is_some());
    assert_eq!(chat_as(port, &first).await.status, 200);
    assert_eq!(chat_as(port, &second).await.status, 200);
    // A rotation without grace ends the secret it replaces at once.
    let r = admin(&gw, "POST", "/keys/svc-a/rotate", &json!({"grace": "0s"})).await;
    let third = r.json()["key"].as_str().unwrap().to_string();
    chat_as(port, &second)
        .await
        .assert_error(401, "invalid_api_key");
    chat_as(port, &first)
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(chat_as(port, &third).await.status, 200);

    // Revoked: refused at once, still listed as revoked.
    let r = admin(&gw, "DELETE", "/keys/svc-a", &Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "revoked");
    chat_as(port, &third)
        .await
        .assert_error(401, "invalid_api_key");
    admin(&gw, "DELETE", "/keys/svc-a", &Value::Null)
        .await
        .assert_error(404, "key_not_found");
    // The name can be used again after a revocation.
    let again = admin(&gw, "POST", "/keys", &json!({"name": "svc-a"})).await;
    assert_eq!(again.status, 201, "{}", again.text());
    let log = gw.settled_log().await;
    assert!(!log.contains(&first) && !log.contains(&third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_keys_that_a_running_gateway_follows() {
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&sqlite_config(&m.url(), &state.path().join("usage.db")));
    let port = gw.port;

    let (ok, out, err) = cli(
        &gw,
        &[
            "create",
            "--name",
            "ci-bot",
            "--models",
            "gpt-*,claude-*",
            "--team",
            "ops",
        ],
    );
    assert!(ok, "{err}");
    let secret = out.lines().last().unwrap().to_string();
    assert!(secret.starts_with("sk-sluice-"), "{out}");
    // Taken up by the running gateway within key_refresh.
    let works = || async { chat_as(port, &secret).await.status == 200 };
    assert!(eventually_async(Duration::from_secs(20), works).await);

    let (ok, out, _) = cli(&gw, &["list", "--format", "json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    let bot = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci-bot")
        .unwrap()
        .clone();
    assert_eq!(bot["models"], json!(["gpt-*", "claude-*"]));
    assert_eq!(bot["metadata"]["team"], "ops");
    let (ok, table, _) = cli(&gw, &["list"]);
    assert!(
        ok && table.starts_with("NAME") && table.contains("ci-bot"),
        "{table}"
    );
    assert!(!table.contains(&secret));

    // Rotation from the CLI: the new secret on the last line; the old one still works.
    let (ok, out, err) = cli(&gw, &["rotate", "ci-bot", "--grace", "1h"]);
    assert!(ok, "{err}");
    let rotated = out.lines().last().unwrap().to_string();
    assert!(rotated.starts_with("sk-sluice-") && rotated != secret);
    let works = || async { chat_as(port, &rotated).await.status == 200 };
    assert!(eventually_async(Duration::from_secs(20), works).await);
    assert_eq!(chat_as(port, &secret).await.status, 200);

    // Revoked from the CLI: refused by the gateway within key_refresh.
    let (ok, _, err) = cli(&gw, &["revoke", "ci-bot"]);
    assert!(ok, "{err}");
    let refused = || async { chat_as(port, &rotated).await.status == 401 };
    assert!(eventually_async(Duration::from_secs(20), refused).await);
    assert_eq!(chat_as(port, &secret).await.status, 401);

    // Config keys are not the CLI's to change; bad input names the flag.
    let (ok, _, err) = cli(&gw, &["revoke", "team-a"]);
    assert!(!ok && err.contains("config file"), "{err}");
    let (ok, _, err) = cli(&gw, &["create", "--name", "x", "--expires", "soon"]);
    assert!(!ok && err.contains("expires"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused_as_expired() {
    let m = mock().await;
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&sqlite_config(&m.url(), &state.path().join("usage.db")));
    let r = admin(
        &gw,
        "POST",
        "/keys",
        &json!({"name": "brief", "expires": "3s"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert!(r.json()["expires_at"].as_u64().is_some());
    assert_eq!(chat_as(gw.port, &key).await.status, 200);
    let expired = || async { chat_as(gw.port, &key).await.status == 401 };
    assert!(eventually_async(Duration::from_secs(30), expired).await);
    let r = chat_as(gw.port, &key).await;
    assert!(r.text().contains("expired"), "{}", r.text());
    let shown = admin(&gw, "GET", "/keys/brief", &Value::Null).await;
    assert_eq!(shown.json()["status"], "expired");
}

/// Polls an async condition every 100 ms until it holds or `timeout` passes.
async fn eventually_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_by_another_sharing_postgres() {
    let Some(pg) = Pg::start() else { return };
    let m = mock().await;
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = format!(
        "{}usage:\n  store: postgres\n  url: {}\n  key_refresh: 1s\n",
        standard_config(&m.url()),
        pg.url()
    );
    let a = Gateway::start_with_env(
        &cfg,
        &[("STATE_DIRECTORY", state_a.path().to_str().unwrap())],
    );
    let b = Gateway::start_with_env(
        &cfg,
        &[("STATE_DIRECTORY", state_b.path().to_str().unwrap())],
    );

    let r = admin(
        &a,
        "POST",
        "/keys",
        &json!({"name": "fleet", "metadata": {"team": "infra"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(chat_as(a.port, &key).await.status, 200);
    // The other instance takes it up within its refresh interval (documented: key_refresh
    // plus one query; generous here for a loaded machine).
    let on_b = || async { chat_as(b.port, &key).await.status == 200 };
    assert!(eventually_async(Duration::from_secs(15), on_b).await);

    // Revoked on B: B refuses at once, A within the bound.
    let r = admin(&b, "DELETE", "/keys/fleet", &Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text());
    chat_as(b.port, &key)
        .await
        .assert_error(401, "invalid_api_key");
    let started = std::time::Instant::now();
    let refused_on_a = || async { chat_as(a.port, &key).await.status == 401 };
    assert!(eventually_async(Duration::from_secs(15), refused_on_a).await);
    eprintln!(
        "revocation reached the other instance in {:?}",
        started.elapsed()
    );
    // Both instances list the same keys.
    let names = |r: Response| {
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("{}:{}", k["name"], k["status"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(admin(&a, "GET", "/keys", &Value::Null).await),
        names(admin(&b, "GET", "/keys", &Value::Null).await)
    );
}

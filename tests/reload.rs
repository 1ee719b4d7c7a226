//! Live config reload: SIGHUP and `POST /reload` swap a new config in while streams are in
//! flight; the streams finish on the config they started with, new requests follow the new
//! one, and an invalid file changes nothing.

mod common;

use std::time::Duration;

use common::*;

/// Reads the running config file.
fn config_text(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.dir.path().join("sluice.yaml")).unwrap()
}

/// Rewrites the running config file.
fn write_config(gw: &Gateway, text: &str) {
    std::fs::write(gw.dir.path().join("sluice.yaml"), text).unwrap();
}

/// A metric's value on the admin listener (0 when absent).
async fn metric(gw: &Gateway, line_prefix: &str) -> f64 {
    let r = request(gw.admin_port, "GET", "/metrics", &[], b"").await;
    r.text()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn post_reload(gw: &Gateway) -> Response {
    request(gw.admin_port, "POST", "/reload", &[], b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_under_load_breaks_no_stream_and_new_requests_follow_the_new_config() {
    let old = paced_mock("tok ".repeat(40), Duration::from_millis(100)).await;
    let new = mock().await;
    new.set_behaviour(Behaviour {
        reply: Some("from the new deployment".into()),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&old.url()));
    let port = gw.port;

    // 200 streams in flight on the first config.
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut s = post_stream(port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
        assert_eq!(s.status, 200);
        let mut body = s.next_chunk().await.expect("stream started");
        streams.push(tokio::spawn(async move {
            body.extend(s.rest().await);
            sse_data(&body)
        }));
    }
    assert!(
        old.streams_completed() < 200,
        "the streams must still be in flight when the config changes"
    );

    // The model moves to another deployment; the `limited` key gets 1 request per minute.
    let text = config_text(&gw).replace(&old.url(), &new.url()).replace(
        "models: [\"gpt-*\"] }",
        "models: [\"gpt-*\"], limits: { requests_per_minute: 1 } }",
    );
    assert!(text.contains("requests_per_minute: 1"), "{text}");
    write_config(&gw, &text);
    gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(gw.dir.path().join("sluice.log"))
                .unwrap_or_default()
                .contains("config reloaded (SIGHUP): generation 2")
        })
        .await,
        "{}",
        gw.log()
    );

    // New requests: the new deployment, the new limit.
    let before = old.request_count();
    let r = chat_ok(port).await;
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "from the new deployment"
    );
    assert_eq!(
        old.request_count(),
        before,
        "the old deployment got a new request"
    );
    let limited =
        |port| async move { post_chat_as(port, LIMITED_KEY, &chat("gpt-4o-mini", false)).await };
    assert_eq!(limited(port).await.status, 200);
    limited(port).await.assert_error(429, "rate_limit_exceeded");

    // Every stream that started on the old config finished on it, whole.
    for s in streams {
        let events = s.await.unwrap();
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "a stream was cut: {events:?}"
        );
        assert_eq!(stream_text(&events).matches("tok").count(), 40);
    }
    assert_eq!(old.streams_completed(), 200);
    assert_eq!(
        metric(&gw, "sluice_config_reloads_total{result=\"ok\"}").await,
        1.0
    );
    assert_eq!(metric(&gw, "sluice_config_generation").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_and_the_running_one_keeps_serving() {
    let m = mock().await;
    m.set_behaviour(Behaviour {
        reply: Some("still here".into()),
        ..Behaviour::default()
    });
    let gw = Gateway::start(&standard_config(&m.url()));
    let good = config_text(&gw);

    // Two errors in two sections: both are reported, with their key paths.
    let bad = good
        .replace("kind: openai_compatible", "kind: openai_compatibel")
        .replace("name: limited", "name: team-a");
    write_config(&gw, &bad);
    let r = post_reload(&gw).await;
    let body = r.assert_error(400, "invalid_config");
    let errors: Vec<String> = body["error"]["errors"]
        .as_array()
        .expect("the errors listed")
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert!(
        errors.iter().any(|e| e.starts_with("providers.mock")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("keys[1].name")),
        "{errors:?}"
    );
    assert!(!r.text().contains(PROVIDER_KEY), "a secret in the answer");
    assert_eq!(
        metric(&gw, "sluice_config_reloads_total{result=\"error\"}").await,
        1.0
    );
    assert_eq!(metric(&gw, "sluice_config_generation").await, 1.0);
    assert!(
        gw.log().contains("config reload (POST /reload"),
        "{}",
        gw.log()
    );

    // The same by SIGHUP: refused, logged, counted.
    gw.signal("HUP");
    assert!(
        eventually(Duration::from_secs(20), || {
            gw.log()
                .matches("refused, the running config stays")
                .count()
                >= 2 * errors.len()
        })
        .await,
        "{}",
        gw.log()
    );
    let r = chat_ok(gw.port).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "still here");

    // A valid file again: POST /reload puts it in force and says which generation.
    write_config(&gw, &good.replace("other-model:", "renamed-model:"));
    let r = post_reload(&gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
    let models = get(gw.port, "/v1/models", KEY).await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"renamed-model") && !ids.contains(&"other-model"),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_names_the_settings_that_need_an_upgrade() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let text = config_text(&gw).replace("threads: 2", "threads: 3");
    write_config(&gw, &text);
    let r = post_reload(&gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["needs_upgrade"], serde_json::json!(["server"]));
    assert!(gw
        .log()
        .contains("server changed but take effect only after an upgrade"));
    chat_ok(gw.port).await;
}

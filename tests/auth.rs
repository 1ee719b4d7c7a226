//! Gateway-key authentication and per-key model allow-lists.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_malformed_keys_are_401() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let body = chat("gpt-4o-mini", false).to_string();
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("authorization", "Bearer sk-test-wrong-key")],
        &[("authorization", "Basic dXNlcjpwYXNz")],
        &[("authorization", "Bearer ")],
        &[("x-api-key", "sk-test-wrong-key")],
    ];
    for headers in cases {
        let r = request(
            gw.port,
            "POST",
            "/v1/chat/completions",
            headers,
            body.as_bytes(),
        )
        .await;
        let v = r.assert_error(401, "invalid_api_key");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(
            !v.to_string().contains("sk-test-wrong-key"),
            "the key is never echoed"
        );
    }
    // Paths sluice does not serve still demand a key first.
    let r = request(gw.port, "GET", "/admin", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        m.request_count(),
        0,
        "nothing unauthenticated reaches the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_x_api_key_are_accepted() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let body = chat("gpt-4o-mini", false).to_string();
    for headers in [
        vec![("authorization", format!("Bearer {KEY}"))],
        vec![("authorization", format!("bearer {KEY}"))],
        vec![("x-api-key", KEY.to_string())],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = request(gw.port, "POST", "/v1/chat/completions", &h, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
    }
    for up in m.requests() {
        assert!(up.header("x-api-key").is_none());
        assert_eq!(
            up.header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_hides_models_like_unknown_ones() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let auth = format!("Bearer {LIMITED_KEY}");
    let ask = |model: &'static str| {
        let auth = auth.clone();
        async move {
            request(
                gw.port,
                "POST",
                "/v1/chat/completions",
                &[("authorization", &auth)],
                chat(model, false).to_string().as_bytes(),
            )
            .await
        }
    };
    let allowed = ask("gpt-4o-mini").await;
    assert_eq!(allowed.status, 200);
    let forbidden = ask("other-model").await;
    let unknown = ask("no-such-model").await;
    let f = forbidden.assert_error(404, "model_not_found");
    let u = unknown.assert_error(404, "model_not_found");
    let strip = |v: &serde_json::Value, name: &str| {
        v["error"]["message"]
            .as_str()
            .unwrap()
            .replace(name, "<model>")
    };
    assert_eq!(
        strip(&f, "other-model"),
        strip(&u, "no-such-model"),
        "a key cannot tell a forbidden model from a missing one"
    );
    assert_eq!(m.request_count(), 1);
}

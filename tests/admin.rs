//! The admin listener: probes on their own loopback socket, token-protected otherwise.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_on_the_admin_listener_only() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let r = request(gw.admin_port, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = request(gw.admin_port, "GET", "/readyz", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ready");
    let r = request(gw.admin_port, "GET", "/v1/models", &[], b"").await;
    assert_eq!(
        r.status, 404,
        "client API is not served on the admin listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_everything_but_the_probes() {
    let m = mock().await;
    let cfg = standard_config(&m.url());
    let gw = Gateway::start_with_admin_token(&cfg, "test-admin-token");
    let r = request(gw.admin_port, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);
    let r = request(gw.admin_port, "GET", "/anything", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request(
        gw.admin_port,
        "GET",
        "/anything",
        &[("authorization", "Bearer wrong")],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        gw.admin_port,
        "GET",
        "/anything",
        &[("authorization", "Bearer test-admin-token")],
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
}

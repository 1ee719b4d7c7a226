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

const TOKEN: &str = "test-admin-token";

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_behind_the_admin_token() {
    let m = mock().await;
    let gw = Gateway::start_with_admin_token(&standard_config(&m.url()), TOKEN);
    let port = gw.admin_port;
    let r = request(port, "GET", "/ui", &[], b"").await;
    assert_eq!((r.status, header(&r, "location")), (302, "/ui/"));

    // No token: 401, the login form, nothing else.
    let r = request(port, "GET", "/ui/", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(
        header(&r, "content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    assert!(r.text().contains("action=\"/ui/login\"") && !r.text().contains("app.js"));

    // The bearer header, as for every admin endpoint.
    let r = get(port, "/ui/", TOKEN).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/ui/app.js"), "{}", r.text());
    assert!(r.text().contains("action=\"/ui/logout\""));
    assert_eq!(header(&r, "cache-control"), "no-store");

    // Static code, no data: served to anyone (the login page needs the style sheet).
    for (path, ctype) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = request(port, "GET", path, &[], b"").await;
        assert_eq!(
            (r.status, header(&r, "content-type")),
            (200, ctype),
            "{path}"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    }
    let r = request(port, "GET", "/ui/secrets", &[], b"").await;
    assert_eq!(r.status, 404);

    // The login form: a wrong token gets the form again, the right one a session cookie.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = request(
        port,
        "POST",
        "/ui/login",
        &form,
        b"username=admin&token=wrong",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert!(r.text().contains("not valid"));
    let body = format!("username=admin&token={TOKEN}");
    let r = request(port, "POST", "/ui/login", &form, body.as_bytes()).await;
    assert_eq!((r.status, header(&r, "location")), (303, "/ui/"));
    let set = header(&r, "set-cookie");
    assert_eq!(
        set,
        format!("sluice_admin={TOKEN}; HttpOnly; SameSite=Strict; Path=/")
    );
    let cookie = format!("theme=dark; {}", set.split(';').next().unwrap());
    let with_cookie = [("cookie", cookie.as_str())];
    let r = request(port, "GET", "/ui/", &with_cookie, b"").await;
    assert_eq!(r.status, 200);

    // The cookie opens the other admin endpoints for GET only; the header for any method.
    let r = request(port, "GET", "/health/deployments", &with_cookie, b"").await;
    assert_eq!(r.status, 200);
    let r = request(port, "POST", "/health/deployments", &with_cookie, b"").await;
    assert_eq!(r.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let r = request(
        port,
        "POST",
        "/health/deployments",
        &[("authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let wrong = [("cookie", "sluice_admin=test-admin-tokeN")];
    let r = request(port, "GET", "/health/deployments", &wrong, b"").await;
    assert_eq!(r.status, 401);

    let r = request(port, "POST", "/ui/logout", &with_cookie, b"").await;
    assert_eq!((r.status, header(&r, "location")), (303, "/ui/"));
    assert!(header(&r, "set-cookie").contains("Max-Age=0"));

    // Without an admin token (loopback), the dashboard is open.
    let open = Gateway::start(&standard_config(&m.url()));
    let r = request(open.admin_port, "GET", "/ui/", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        !r.text().contains("/ui/logout"),
        "no token, nothing to sign out of"
    );
}

/// A raw GET with its own `Host` header; the status code.
async fn status_with_host(port: u16, path: &str, host: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_are_answered() {
    let m = mock().await;
    let gw = Gateway::start(&standard_config(&m.url()));
    let p = gw.admin_port;
    // A page on another site whose name resolves to 127.0.0.1 (DNS rebinding).
    assert_eq!(
        status_with_host(p, "/metrics", "evil.example:9091").await,
        403
    );
    assert_eq!(status_with_host(p, "/ui/", "evil.example").await, 403);
    // Probes answer whatever the host; loopback names on any port (an SSH tunnel) pass.
    assert_eq!(status_with_host(p, "/healthz", "evil.example").await, 200);
    for host in ["localhost:8000", "127.0.0.1", "[::1]:9091", "LOCALHOST"] {
        assert_eq!(status_with_host(p, "/metrics", host).await, 200, "{host}");
    }
    // With a token, the token decides (the listener may face a network).
    let gw = Gateway::start_with_admin_token(&standard_config(&m.url()), TOKEN);
    assert_eq!(
        status_with_host(gw.admin_port, "/healthz", "sluice.internal").await,
        200
    );
}

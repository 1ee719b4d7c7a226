//! The admin listener: probes on their own loopback socket, token-protected otherwise; roles,
//! network allow-lists and the audit log.

mod common;

use std::time::Duration;

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
    // Any other page under /ui/ needs a token like every unknown path; then it is not found.
    let r = request(port, "GET", "/ui/secrets", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(get(port, "/ui/secrets", TOKEN).await.status, 404);

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

    // The cookie opens the other admin endpoints for GET only; the header for any method
    // (which this read-only endpoint then refuses as such).
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
    r.assert_error(405, "method_not_allowed");
    assert_eq!(header(&r, "allow"), "GET");
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

const VIEWER: &str = "viewer-token-5a1b2c3d4e";
const OPERATOR: &str = "operator-token-6f7a8b9c0d";
const ROOT: &str = "root-token-1e2f3a4b5c6d";
/// Accepted from 10.1.2.0/24 only: never from the tests' 127.0.0.1.
const PROM: &str = "prom-token-7c8d9e0f1a2b";
/// `admin.token`: named admin, role admin.
const LEGACY: &str = "legacy-admin-token-3c4d5e6f";

/// An `admin:` section with a token of each role, the legacy one and one bound to a network.
fn roles_admin() -> String {
    format!(
        "  token: {LEGACY}\n  tokens:\n\
         \x20   - {{ name: grafana, token: {VIEWER}, role: viewer }}\n\
         \x20   - {{ name: platform-team, token: {OPERATOR}, role: operator }}\n\
         \x20   - {{ name: root, token: {ROOT}, role: admin }}\n\
         \x20   - {{ name: prometheus, token: {PROM}, role: viewer, allow: [10.1.2.0/24] }}\n"
    )
}

async fn as_token(port: u16, method: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    request(port, method, path, &headers, b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_needs_its_role() {
    let m = mock().await;
    let gw = Gateway::start_with_admin(&standard_config(&m.url()), &roles_admin());
    let port = gw.admin_port;
    // (method, path, role needed: 0 none, 1 viewer, 2 operator, 3 admin, status once admitted)
    let endpoints = [
        ("GET", "/healthz", 0, 200),
        ("GET", "/readyz", 0, 200),
        ("GET", "/metrics", 1, 200),
        ("GET", "/health/deployments", 1, 200),
        ("GET", "/usage", 1, 404),
        ("GET", "/usage/report", 1, 404),
        ("GET", "/ui/", 1, 200),
        ("GET", "/no-such-endpoint", 1, 404),
        ("POST", "/metrics", 1, 405),
        // No usage store here: the file's keys are listed and read-only, none can be made.
        ("GET", "/keys", 2, 200),
        ("GET", "/keys/team-a", 2, 200),
        ("POST", "/keys", 2, 503),
        ("DELETE", "/keys/team-a", 2, 409),
        ("POST", "/keys/team-a/rotate", 2, 409),
        ("POST", "/reload", 3, 200),
    ];
    let roles = ["", "viewer", "operator", "admin"];
    let callers = [
        (None, 0),
        (Some("not-a-configured-token-x"), 0),
        (Some(VIEWER), 1),
        (Some(OPERATOR), 2),
        (Some(ROOT), 3),
        (Some(LEGACY), 3),
    ];
    for (method, path, need, admitted) in endpoints {
        for (token, rank) in callers {
            let r = as_token(port, method, path, token).await;
            let what = format!("{method} {path} as rank {rank}");
            if need == 0 || rank >= need {
                assert_eq!(r.status, admitted, "{what}: {}", r.text());
            } else if rank == 0 {
                if path == "/ui/" {
                    assert_eq!(r.status, 401, "{what}: the login page");
                    assert!(r.text().contains("action=\"/ui/login\""));
                } else {
                    r.assert_error(401, "unauthorized");
                }
                assert_eq!(
                    r.header("www-authenticate"),
                    (path != "/ui/").then_some("Bearer")
                );
            } else {
                let v = r.assert_error(403, "forbidden");
                let message = v["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("requires the {} role", roles[need])),
                    "{what}: {message}"
                );
                assert!(!message.contains(token.unwrap()), "{what}: {message}");
            }
        }
    }
    // A token used from outside its own allow-list is as good as unknown.
    let r = as_token(port, "GET", "/metrics", Some(PROM)).await;
    r.assert_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_answers_only_its_allowed_networks() {
    let m = mock().await;
    let cfg = standard_config(&m.url());
    // 127.0.0.1 is not in 10.0.0.0/8: refused before anything else, probes and tokens too.
    let gw = Gateway::start_with_admin(&cfg, &format!("  token: {ROOT}\n  allow: [10.0.0.0/8]\n"));
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("POST", "/reload"),
    ] {
        let r = as_token(gw.admin_port, method, path, Some(ROOT)).await;
        r.assert_error(403, "forbidden");
        assert!(r.text().contains("admin.allow"), "{}", r.text());
    }
    let r = request(gw.admin_port, "POST", "/ui/login", &[], b"token=x").await;
    r.assert_error(403, "forbidden");
    let log = gw.log();
    assert!(
        log.contains(r#""who":"-","role":"-","method":"GET","path":"/healthz","status":403,"peer":"127.0.0.1","refused":"network""#),
        "{log}"
    );

    // An allow-list with loopback admits, and the token still decides.
    let gw = Gateway::start_with_admin(
        &cfg,
        &format!("  token: {ROOT}\n  allow: [10.0.0.0/8, 127.0.0.0/8, '::1/128']\n"),
    );
    assert_eq!(
        as_token(gw.admin_port, "GET", "/healthz", None)
            .await
            .status,
        200
    );
    assert_eq!(
        as_token(gw.admin_port, "GET", "/metrics", None)
            .await
            .status,
        401
    );
    assert_eq!(
        as_token(gw.admin_port, "GET", "/metrics", Some(ROOT))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_and_refusals_are_audited_without_tokens() {
    let m = mock().await;
    let gw = Gateway::start_with_admin(&standard_config(&m.url()), &roles_admin());
    let port = gw.admin_port;
    const WRONG: &str = "presented-wrong-token-9z8y";
    assert_eq!(
        as_token(port, "POST", "/reload", Some(ROOT)).await.status,
        200
    );
    assert_eq!(
        as_token(port, "GET", "/keys", Some(OPERATOR)).await.status,
        200
    );
    assert_eq!(
        as_token(port, "DELETE", "/keys/team-a", Some(VIEWER))
            .await
            .status,
        403
    );
    assert_eq!(
        as_token(port, "GET", "/metrics", Some(WRONG)).await.status,
        401
    );
    assert_eq!(
        as_token(port, "GET", "/metrics", Some(PROM)).await.status,
        401
    );
    // Reads are not admin actions: no line.
    assert_eq!(
        as_token(port, "GET", "/health/deployments", Some(VIEWER))
            .await
            .status,
        200
    );

    let expected = [
        r#"INFO  sluice::audit] {"who":"root","role":"admin","method":"POST","path":"/reload","status":200,"peer":"127.0.0.1","refused":null}"#,
        r#"INFO  sluice::audit] {"who":"platform-team","role":"operator","method":"GET","path":"/keys","status":200,"peer":"127.0.0.1","refused":null}"#,
        r#"WARN  sluice::audit] {"who":"grafana","role":"viewer","method":"DELETE","path":"/keys/team-a","status":403,"peer":"127.0.0.1","refused":"role"}"#,
        r#"WARN  sluice::audit] {"who":"-","role":"-","method":"GET","path":"/metrics","status":401,"peer":"127.0.0.1","refused":"token"}"#,
    ];
    let audited = || {
        let log = gw.log();
        expected.iter().all(|l| log.contains(l))
    };
    assert!(
        eventually(Duration::from_secs(10), audited).await,
        "{}",
        gw.log()
    );
    let log = gw.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sluice::audit"))
        .collect();
    assert_eq!(audit.len(), 5, "{audit:#?}");
    assert!(!log.contains("/health/deployments"), "{log}");
    for secret in [VIEWER, OPERATOR, ROOT, PROM, LEGACY, WRONG] {
        assert!(!log.contains(secret), "a token in the log: {log}");
    }

    let metrics = as_token(port, "GET", "/metrics", Some(VIEWER)).await.text();
    for line in [
        r#"sluice_admin_refused_total{reason="token"} 2"#,
        r#"sluice_admin_refused_total{reason="role"} 1"#,
        r#"sluice_admin_refused_total{reason="network"} 0"#,
        r#"sluice_admin_requests_total{role="admin",status="200"} 1"#,
        r#"sluice_admin_requests_total{role="none",status="401"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_token_signs_in_to_the_dashboard_with_its_role() {
    let m = mock().await;
    let gw = Gateway::start_with_admin(&standard_config(&m.url()), &roles_admin());
    let port = gw.admin_port;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let sign_in = |token: &str| format!("token={token}");
    // A token bound to another network cannot sign in from here.
    let r = request(port, "POST", "/ui/login", &form, sign_in(PROM).as_bytes()).await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());

    let r = request(port, "POST", "/ui/login", &form, sign_in(VIEWER).as_bytes()).await;
    assert_eq!((r.status, header(&r, "location")), (303, "/ui/"));
    let cookie = header(&r, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_cookie = [("cookie", cookie.as_str())];
    let r = request(port, "GET", "/ui/", &with_cookie, b"").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/ui/app.js"));
    // The page's data is a viewer's; key management is not.
    let r = request(port, "GET", "/usage/report", &with_cookie, b"").await;
    r.assert_error(404, "usage_off");
    let r = request(port, "GET", "/keys", &with_cookie, b"").await;
    r.assert_error(403, "forbidden");

    // The operator's cookie names the operator.
    let r = request(
        port,
        "POST",
        "/ui/login",
        &form,
        sign_in(OPERATOR).as_bytes(),
    )
    .await;
    let cookie = header(&r, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = request(port, "GET", "/keys", &[("cookie", cookie.as_str())], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Cookies count for GET only.
    let r = request(
        port,
        "DELETE",
        "/keys/team-a",
        &[("cookie", cookie.as_str())],
        b"",
    )
    .await;
    r.assert_error(401, "unauthorized");

    let log = gw.log();
    assert!(
        log.contains(
            r#"{"who":"grafana","role":"viewer","method":"POST","path":"/ui/login","status":303"#
        ),
        "{log}"
    );
    assert!(
        log.contains(r#"{"who":"-","role":"-","method":"POST","path":"/ui/login","status":401,"peer":"127.0.0.1","refused":"token"}"#),
        "{log}"
    );
}

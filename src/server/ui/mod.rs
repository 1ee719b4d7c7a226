//! The usage dashboard on the admin listener, `/ui/`: a page, its script and style sheet,
//! all compiled into the binary (nothing is fetched from elsewhere). The page draws what
//! `GET /usage/report` answers, and its Keys view (`/ui/#keys`) the admin API's `/keys`.
//!
//! - `GET /ui` redirects to `/ui/`;
//! - `GET /ui/`: the dashboard when the request carries an admin token of any role (bearer
//!   header or the session cookie), else 401 with a login form and no data (the admin
//!   listener decides, `server::access`, and answers [`login_page`]);
//! - `POST /ui/login` (form field `token`): any configured token sets the session cookie
//!   (`HttpOnly; SameSite=Strict`; its value is the token, so the cookie names its token and
//!   role) and redirects to `/ui/`; an invalid one gets the form again (401);
//!   `POST /ui/logout` clears the cookie;
//! - `/ui/app.js`, `/ui/keys.js`, `/ui/app.css`, `/ui/favicon.svg`: static code, no data, served to anyone.
//!
//! Every answer carries a strict content security policy: the page runs only its own script,
//! connects only to its own origin and cannot be framed.

pub mod auth;

use std::net::IpAddr;

use http::{Method, Response};
use pingora::protocols::http::ServerSession;

use crate::config::AdminToken;
use crate::server::access;

const INDEX: &str = include_str!("index.html");
const LOGIN: &str = include_str!("login.html");
const APP_JS: &str = include_str!("app.js");
const KEYS_JS: &str = include_str!("keys.js");
const APP_CSS: &str = include_str!("app.css");
const FAVICON: &str = include_str!("favicon.svg");
const LOGOUT: &str = r#"<form method="post" action="/ui/logout" class="logout"><button type="submit" class="link">Sign out</button></form>"#;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
const HTML: &str = "text/html; charset=utf-8";
/// The largest login form read.
const MAX_FORM_BYTES: usize = 4096;

/// Whether `path` belongs to the dashboard.
pub fn handles(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Answers a dashboard request other than `POST /ui/login` ([`login`]), once the admin
/// listener has checked the role it needs; `with_tokens`: whether any admin token is
/// configured (there is something to sign out of).
pub fn serve(method: &Method, path: &str, with_tokens: bool) -> Response<Vec<u8>> {
    match (method, path) {
        (&Method::GET, "/ui") => redirect(302, None),
        (&Method::GET, "/ui/") => respond(200, HTML, "no-store", index(with_tokens), None),
        (&Method::GET, "/ui/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
        (&Method::GET, "/ui/keys.js") => asset("text/javascript; charset=utf-8", KEYS_JS),
        (&Method::GET, "/ui/app.css") => asset("text/css; charset=utf-8", APP_CSS),
        (&Method::GET, "/ui/favicon.svg") => asset("image/svg+xml", FAVICON),
        (&Method::POST, "/ui/logout") => redirect(303, Some(auth::logout_cookie())),
        (_, "/ui" | "/ui/" | "/ui/app.js" | "/ui/keys.js" | "/ui/app.css" | "/ui/favicon.svg") => {
            text(405)
        }
        (_, "/ui/login" | "/ui/logout") => text(405),
        _ => text(404),
    }
}

/// The dashboard page; with a "Sign out" button when there is a token to sign in with.
fn index(with_token: bool) -> Vec<u8> {
    let logout = if with_token { LOGOUT } else { "" };
    INDEX.replace("<!--logout-->", logout).into_bytes()
}

/// `POST /ui/login`: the form's token, compared with every configured token in constant time
/// (and refused from outside the token's own `allow`); the token that signed in, if one did.
pub async fn login<'a>(
    session: &mut ServerSession,
    tokens: &'a [AdminToken],
    peer: Option<IpAddr>,
) -> (Response<Vec<u8>>, Option<&'a AdminToken>) {
    if tokens.is_empty() {
        return (redirect(303, None), None);
    }
    let body = read_form(session).await;
    let presented = body.as_deref().and_then(|b| auth::form_field(b, "token"));
    match presented.and_then(|t| access::find(tokens, &t, peer)) {
        Some(t) => (
            redirect(303, Some(auth::login_cookie(t.token.expose()))),
            Some(t),
        ),
        None => (login_page(Some("That token is not valid.")), None),
    }
}

/// The request body, if it is small and arrives in time (the admin endpoints' reader, each
/// piece within its 10 s).
async fn read_form(session: &mut ServerSession) -> Option<Vec<u8>> {
    crate::control::api::read_body(session, MAX_FORM_BYTES)
        .await
        .ok()
}

/// The login form, with 401: it holds no data.
pub fn login_page(message: Option<&str>) -> Response<Vec<u8>> {
    let html = match message {
        Some(m) => LOGIN.replace("<!--message-->", &format!("<p class=\"error\">{m}</p>")),
        None => LOGIN.to_string(),
    };
    respond(401, HTML, "no-store", html.into_bytes(), None)
}

fn asset(content_type: &str, body: &str) -> Response<Vec<u8>> {
    respond(200, content_type, "no-cache", body.into(), None)
}

/// A redirect to the dashboard, setting a cookie if given.
fn redirect(status: u16, cookie: Option<String>) -> Response<Vec<u8>> {
    let mut r = respond(
        status,
        "text/plain; charset=utf-8",
        "no-store",
        vec![],
        cookie,
    );
    r.headers_mut()
        .insert("location", http::HeaderValue::from_static("/ui/"));
    r
}

fn text(status: u16) -> Response<Vec<u8>> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = format!("{reason}\n").into_bytes();
    respond(status, "text/plain; charset=utf-8", "no-store", body, None)
}

fn respond(
    status: u16,
    content_type: &str,
    cache: &str,
    body: Vec<u8>,
    cookie: Option<String>,
) -> Response<Vec<u8>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", cache)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer");
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(body).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_nothing_from_elsewhere_and_run_no_inline_code() {
        for page in [INDEX, LOGIN] {
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(!page.contains("style="));
            let handler = page.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "an inline event handler");
            assert!(!page.contains("<script>") && !page.contains("<style"));
        }
        for script in [APP_JS, KEYS_JS] {
            assert!(!script.contains("innerHTML") && !script.contains("outerHTML"));
            assert!(!script.contains("insertAdjacentHTML") && !script.contains("DOMParser"));
            assert!(!script.contains("eval(") && !script.contains("document.write"));
        }
        // Every change the page asks for carries the header that lets the cookie count.
        assert!(KEYS_JS.contains(&format!("'{}'", auth::DASHBOARD_HEADER)));
        assert!(INDEX.contains("src=\"/ui/keys.js\""));
        assert!(LOGIN.contains("<!--message-->") && LOGIN.contains("name=\"token\""));
        assert!(INDEX.contains("<!--logout-->"));
        let page = String::from_utf8(index(true)).unwrap();
        assert!(page.contains("action=\"/ui/logout\""));
        assert!(!String::from_utf8(index(false))
            .unwrap()
            .contains("logout\""));
    }

    #[test]
    fn answers_carry_the_security_headers() {
        let r = login_page(Some("x"));
        assert_eq!(r.status(), 401);
        for h in [
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
        ] {
            assert!(r.headers().contains_key(h), "{h}");
        }
        assert_eq!(r.headers()["cache-control"], "no-store");
        let r = redirect(303, Some(auth::logout_cookie()));
        assert_eq!(r.headers()["location"], "/ui/");
        assert!(r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
    }
}

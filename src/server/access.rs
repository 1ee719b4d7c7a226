//! Who may do what on the admin listener: the role each endpoint requires, the networks the
//! listener answers, and the principal a request's token names.
//!
//! Roles are ordered viewer < operator < admin. Without any admin token configured, every
//! request is the principal `local`, role admin (the listener then answers only requests
//! naming a loopback host; see `server::admin`).

use std::net::IpAddr;

use http::{HeaderMap, Method};

use crate::config::{Admin, AdminToken, Cidr, Role};
use crate::server::ui::auth;

/// Who made a request: a token's name and role, or `local` when no token is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    pub name: &'a str,
    pub role: Role,
}

/// The principal of every request when no admin token is configured.
pub const LOCAL: Principal<'static> = Principal {
    name: "local",
    role: Role::Admin,
};

/// The role a request must hold, `None` for requests anyone may make: the probes, the
/// dashboard's static code and redirect (no data), and its login and logout forms (which
/// authenticate themselves). Unknown paths need viewer (and are then 404); a known path asked
/// with the wrong method needs its path's role (and is then 405).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    match path {
        "/healthz" | "/readyz" => None,
        "/ui" | "/ui/app.js" | "/ui/keys.js" | "/ui/app.css" | "/ui/favicon.svg" => None,
        "/ui/login" | "/ui/logout" if *method == Method::POST => None,
        "/metrics" | "/health/deployments" | "/usage" | "/usage/report" => Some(Role::Viewer),
        p if p.starts_with("/ui/") => Some(Role::Viewer),
        p if is_keys(p) => Some(Role::Operator),
        "/reload" => Some(Role::Admin),
        _ => Some(Role::Viewer),
    }
}

/// Whether `path` is under `/keys` (key management).
pub fn is_keys(path: &str) -> bool {
    path == "/keys" || path.starts_with("/keys/")
}

/// Whether `path` is one of the two probes.
pub fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Whether `peer` is in one of `nets` (always, when there is no list; never, when a list is
/// set but the peer's address is unknown).
pub fn admits(nets: Option<&[Cidr]>, peer: Option<IpAddr>) -> bool {
    match (nets, peer) {
        (None, _) => true,
        (Some(nets), Some(ip)) => nets.iter().any(|n| n.contains(ip)),
        (Some(_), None) => false,
    }
}

/// The configured token `presented` is, if it is one and may be used from `peer`. Every token
/// is compared, each in constant time, so that the time taken says nothing about which
/// matched; a token used from outside its own `allow` counts as unknown.
pub fn find<'a>(
    tokens: &'a [AdminToken],
    presented: &str,
    peer: Option<IpAddr>,
) -> Option<&'a AdminToken> {
    let mut found = None;
    for t in tokens {
        if auth::token_matches(presented, t.token.expose()) {
            found = Some(t);
        }
    }
    found.filter(|t| admits(t.allow.as_deref(), peer))
}

/// The principal a request's credentials name: its bearer token, or — for GET requests,
/// which change nothing, and for others sent by the dashboard's script with
/// `X-Sluice-Dashboard: 1` (no foreign page can add it without a CORS preflight) — the
/// dashboard's session cookie. `None` when neither is a usable
/// token. Without any token configured, [`LOCAL`].
pub fn principal<'a>(
    admin: &'a Admin,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Option<Principal<'a>> {
    if admin.tokens.is_empty() {
        return Some(LOCAL);
    }
    let by_header = auth::bearer(headers).and_then(|b| find(&admin.tokens, b, peer));
    let by_cookie = if *method == Method::GET || auth::from_dashboard(headers) {
        auth::cookie(headers, auth::COOKIE).and_then(|c| find(&admin.tokens, &c, peer))
    } else {
        None
    };
    by_header.or(by_cookie).map(|t| Principal {
        name: &t.name,
        role: t.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret::Secret;

    #[test]
    fn the_role_table() {
        let (get, post, delete, put) = (Method::GET, Method::POST, Method::DELETE, Method::PUT);
        let viewer = Some(Role::Viewer);
        let operator = Some(Role::Operator);
        let admin = Some(Role::Admin);
        for (method, path, role) in [
            (&get, "/healthz", None),
            (&get, "/readyz", None),
            (&post, "/healthz", None),
            (&get, "/ui", None),
            (&get, "/ui/app.js", None),
            (&get, "/ui/app.css", None),
            (&get, "/ui/favicon.svg", None),
            (&post, "/ui/login", None),
            (&post, "/ui/logout", None),
            (&get, "/ui/login", viewer),
            (&get, "/ui/", viewer),
            (&get, "/ui/anything", viewer),
            (&get, "/metrics", viewer),
            (&post, "/metrics", viewer),
            (&get, "/health/deployments", viewer),
            (&get, "/usage", viewer),
            (&get, "/usage/report", viewer),
            (&get, "/keys", operator),
            (&get, "/keys/team-a", operator),
            (&post, "/keys", operator),
            (&delete, "/keys/team-a", operator),
            (&post, "/keys/team-a/rotate", operator),
            (&put, "/keys", operator),
            (&post, "/reload", admin),
            (&get, "/reload", admin),
            (&get, "/keysmith", viewer),
            (&get, "/", viewer),
            (&get, "/v1/models", viewer),
            (&post, "/nothing", viewer),
        ] {
            assert_eq!(required_role(method, path), role, "{method} {path}");
        }
    }

    fn token(name: &str, value: &str, role: Role, allow: Option<&str>) -> AdminToken {
        AdminToken {
            name: name.into(),
            token: Secret::new(value),
            role,
            allow: allow.map(|a| vec![a.parse().unwrap()]),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_name_their_principal_from_allowed_networks_only() {
        let admin = Admin {
            listen: "127.0.0.1:9091".parse().unwrap(),
            tokens: vec![
                token("grafana", "viewer-token-0123456789", Role::Viewer, None),
                token(
                    "prom",
                    "prom-token-0123456789",
                    Role::Viewer,
                    Some("10.1.2.0/24"),
                ),
                token("root", "root-token-0123456789", Role::Admin, None),
            ],
            allow: None,
        };
        let local = Some("127.0.0.1".parse().unwrap());
        let inside = Some("::ffff:10.1.2.3".parse().unwrap());
        let get = Method::GET;
        let bearer = |t: &str| headers(&[("authorization", &format!("Bearer {t}"))]);
        let who = |m: &Method, h: &HeaderMap, peer| principal(&admin, m, h, peer);

        let p = who(&get, &bearer("root-token-0123456789"), local).unwrap();
        assert_eq!((p.name, p.role), ("root", Role::Admin));
        let p = who(&Method::POST, &bearer("viewer-token-0123456789"), local).unwrap();
        assert_eq!((p.name, p.role), ("grafana", Role::Viewer));
        assert_eq!(who(&get, &bearer("root-token-012345678"), local), None);
        assert_eq!(who(&get, &HeaderMap::new(), local), None);

        // A token's own allow-list: unknown elsewhere.
        assert_eq!(who(&get, &bearer("prom-token-0123456789"), local), None);
        assert_eq!(who(&get, &bearer("prom-token-0123456789"), None), None);
        let p = who(&get, &bearer("prom-token-0123456789"), inside).unwrap();
        assert_eq!(p.name, "prom");

        // The session cookie names its token, for GET requests only.
        let cookie = headers(&[("cookie", "a=b; sluice_admin=viewer-token-0123456789")]);
        assert_eq!(who(&get, &cookie, local).unwrap().name, "grafana");
        assert_eq!(who(&Method::POST, &cookie, local), None);
        let marked = headers(&[
            ("cookie", "sluice_admin=viewer-token-0123456789"),
            ("x-sluice-dashboard", "1"),
        ]);
        assert_eq!(who(&Method::POST, &marked, local).unwrap().name, "grafana");

        // A bad bearer header does not hide a good cookie.
        let both = headers(&[
            ("authorization", "Bearer wrong"),
            ("cookie", "sluice_admin=root-token-0123456789"),
        ]);
        assert_eq!(who(&get, &both, local).unwrap().name, "root");

        let open = Admin {
            tokens: vec![],
            ..admin
        };
        assert_eq!(principal(&open, &get, &HeaderMap::new(), None), Some(LOCAL));
    }

    #[test]
    fn the_listener_allow_list() {
        let nets: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(admits(None, None));
        assert!(admits(Some(&nets), Some("10.9.9.9".parse().unwrap())));
        assert!(!admits(Some(&nets), Some("127.0.0.1".parse().unwrap())));
        assert!(!admits(Some(&nets), None));
    }
}

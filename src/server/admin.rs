//! The admin listener, on its own socket — loopback by default — and never on the client
//! listener:
//!
//! - `/healthz`: the process is alive;
//! - `/readyz`: every public model has at least one available deployment (503 otherwise, with
//!   the models that have none);
//! - `/health/deployments`: health, cooldowns, load and failure counts of every deployment;
//! - `/metrics`: Prometheus text format;
//! - `/usage?since=24h&by=key,model[&format=csv]`: the usage ledger's totals per group
//!   (requests, errors, tokens, cost), when `usage:` is configured;
//! - `/usage/report?since=24h`: the dashboard's data in one document
//!   ([`crate::ledger::report`]);
//! - `/ui/`: the usage dashboard (`server::ui`), drawn from `/usage/report`.
//!
//! Who may do what is `server::access`'s: each endpoint requires a role (viewer, operator or
//! admin), which a request proves with an admin token as a bearer header — or, for GET
//! requests (and others with the dashboard's `X-Sluice-Dashboard: 1` header), as the cookie
//! the dashboard's login form sets (`SameSite=Strict`). A client
//! outside `admin.allow` gets 403 before anything else; no usable token, 401; a token whose
//! role is too low, 403. Every admin action and every refusal is written to the audit log
//! (`telemetry::audit`). Without any token configured, every request may do everything, but
//! only requests naming a loopback host are answered.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::Config;
use crate::control::Control;
use crate::server::access::{self, Principal};
use crate::server::ui;
use crate::telemetry::audit::{self, AdminRequest};
use crate::telemetry::Metrics;

pub struct Admin {
    /// The config sluice started with: the admin listener's own settings (`admin:`) are
    /// read once, like the listener's address.
    pub cfg: Arc<Config>,
    /// The control plane: the current generation's config and router, reload and keys.
    pub control: Arc<Control>,
    pub metrics: Arc<Metrics>,
    pub ledger: Option<Arc<crate::ledger::Ledger>>,
}

fn reply(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&body).expect("JSON values serialise");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .expect("valid response")
}

/// Whether the `Host` header names a loopback host (any port), or is absent.
fn loopback_host(headers: &http::HeaderMap) -> bool {
    let Some(host) = headers.get(http::header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An admin error in the OpenAI shape.
fn admin_error(status: u16, message: &str, code: &str) -> Response<Vec<u8>> {
    reply(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

/// A query parameter (`,` may come encoded).
fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%2C", ",").replace("%2c", ","))
}

/// The answer when `usage:` is not configured.
fn usage_off() -> Response<Vec<u8>> {
    admin_error(
        404,
        "the usage ledger is off (no `usage:` in the config)",
        "usage_off",
    )
}

impl Admin {
    /// `GET /usage/report`: the dashboard's data (see [`crate::ledger::report`]).
    async fn report(&self, query: &str) -> Response<Vec<u8>> {
        let Some(ledger) = &self.ledger else {
            return usage_off();
        };
        let since = match crate::ledger::query::parse_since(
            &param(query, "since").unwrap_or_else(|| "24h".into()),
        ) {
            Ok(s) => s,
            Err(m) => return admin_error(400, &format!("since: {m}"), "invalid_value"),
        };
        let limits = self.control.current().cfg.rate_limits.clone();
        match crate::ledger::query(ledger.settings.store.clone(), move |s| {
            crate::ledger::report::report(s, since, &limits)
        })
        .await
        {
            Ok(v) => reply(200, v),
            Err(m) => {
                log::warn!("usage report: {m}");
                admin_error(503, "the usage ledger cannot be read", "usage_unavailable")
            }
        }
    }

    /// `GET /usage`: grouped totals from the ledger, as JSON (default) or CSV.
    async fn usage(&self, query: &str) -> Response<Vec<u8>> {
        use crate::ledger::query::{parse_groups, parse_since, to_csv, to_json};
        let Some(ledger) = &self.ledger else {
            return usage_off();
        };
        let param = |name: &str| param(query, name);
        let since = match parse_since(&param("since").unwrap_or_else(|| "24h".into())) {
            Ok(s) => s,
            Err(m) => return admin_error(400, &format!("since: {m}"), "invalid_value"),
        };
        let by = match parse_groups(&param("by").unwrap_or_default()) {
            Ok(b) => b,
            Err(m) => return admin_error(400, &format!("by: {m}"), "invalid_value"),
        };
        let groups = by.clone();
        let rows = match crate::ledger::query(ledger.settings.store.clone(), move |s| {
            s.summary(since, &groups)
        })
        .await
        {
            Ok(r) => r,
            Err(m) => {
                log::warn!("usage query: {m}");
                return admin_error(503, "the usage ledger cannot be read", "usage_unavailable");
            }
        };
        match param("format").as_deref() {
            None | Some("json") => reply(200, to_json(&by, &rows)),
            Some("csv") => {
                let body = to_csv(&by, &rows).into_bytes();
                Response::builder()
                    .status(200)
                    .header("content-type", "text/csv; charset=utf-8")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("valid response")
            }
            Some(_) => admin_error(400, "format: json or csv", "invalid_value"),
        }
    }
}

/// What the admin listener did with a request: its answer, who made it (if a usable token
/// said so) and why it was refused (one of `metrics::ADMIN_REFUSALS`), if it was.
struct Outcome<'a> {
    response: Response<Vec<u8>>,
    who: Option<Principal<'a>>,
    refused: Option<&'static str>,
}

impl<'a> Outcome<'a> {
    fn answered(response: Response<Vec<u8>>, who: Option<Principal<'a>>) -> Self {
        Outcome {
            response,
            who,
            refused: None,
        }
    }

    fn refused(
        reason: &'static str,
        response: Response<Vec<u8>>,
        who: Option<Principal<'a>>,
    ) -> Self {
        Outcome {
            response,
            who,
            refused: Some(reason),
        }
    }
}

/// 401 for a request without a usable token: the dashboard's login form for its page, else
/// an error that asks for a bearer token.
fn unauthorized(method: &Method, path: &str) -> Response<Vec<u8>> {
    if *method == Method::GET && path == "/ui/" {
        return ui::login_page(None);
    }
    let mut r = admin_error(401, "admin token required", "unauthorized");
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}

/// 405, with the methods `path` answers.
fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut r = admin_error(405, "method not allowed", "method_not_allowed");
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

impl Admin {
    /// Admits or refuses a request (network, loopback host, token, role, in that order), then
    /// answers it.
    async fn answer(
        &self,
        session: &mut ServerSession,
        method: &Method,
        path: &str,
        peer: Option<IpAddr>,
    ) -> Outcome<'_> {
        let admin = &self.cfg.admin;
        if !access::admits(admin.allow.as_deref(), peer) {
            let r = admin_error(
                403,
                "the admin listener does not answer this client's network (admin.allow)",
                "forbidden",
            );
            return Outcome::refused("network", r, None);
        }
        let headers = &session.req_header().headers;
        // Without a token the listener is loopback-only; a page on another site whose name
        // resolves to 127.0.0.1 (DNS rebinding) still names that site as the host.
        if admin.tokens.is_empty() && !access::is_probe(path) && !loopback_host(headers) {
            let r = admin_error(
                403,
                "without admin.token the admin listener answers only requests to a loopback \
                 host name (localhost, 127.0.0.1, [::1])",
                "forbidden_host",
            );
            return Outcome::refused("host", r, None);
        }
        let who = access::principal(admin, method, headers, peer);
        if let Some(need) = access::required_role(method, path) {
            match who {
                None => return Outcome::refused("token", unauthorized(method, path), None),
                Some(p) if p.role < need => {
                    let message = format!("this endpoint requires the {} role", need.as_str());
                    let r = admin_error(403, &message, "forbidden");
                    return Outcome::refused("role", r, who);
                }
                Some(_) => {}
            }
        }
        if *method == Method::POST && path == "/ui/login" {
            return match ui::login(session, &admin.tokens, peer).await {
                (r, Some(t)) => {
                    let who = Principal {
                        name: &t.name,
                        role: t.role,
                    };
                    Outcome::answered(r, Some(who))
                }
                (r, None) if !admin.tokens.is_empty() => Outcome::refused("token", r, None),
                (r, None) => Outcome::answered(r, who),
            };
        }
        Outcome::answered(self.dispatch(session, method, path, who).await, who)
    }

    /// Answers an admitted request: the role it needs was checked.
    async fn dispatch(
        &self,
        session: &mut ServerSession,
        method: &Method,
        path: &str,
        who: Option<Principal<'_>>,
    ) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query().unwrap_or("").to_string();
        match (method, path) {
            (&Method::GET, "/healthz") => reply(200, json!({"status": "ok"})),
            (&Method::GET, "/readyz") => self.ready(),
            (_, p) if ui::handles(p) => ui::serve(method, p, !self.cfg.admin.tokens.is_empty()),
            (&Method::GET, "/health/deployments") => {
                reply(200, self.control.current().router.snapshot())
            }
            (&Method::GET, "/usage") => self.usage(&query).await,
            (&Method::GET, "/usage/report") => self.report(&query).await,
            (&Method::GET, "/metrics") => {
                let body = self.metrics.render(&self.control.current().router);
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("valid response")
            }
            // ---- Endpoints implemented elsewhere: the integrator replaces these two arms
            // (and the two functions they call). Their roles are in `access::required_role`
            // and were checked above: operator for /keys, admin for /reload.
            (_, p) if crate::control::api::handles(p) => {
                let name = who.map_or("local", |p| p.name);
                crate::control::api::serve(&self.control, session, name).await
            }
            // ---- end of the placeholder arms.
            (_, "/healthz" | "/readyz" | "/health/deployments" | "/usage" | "/usage/report")
            | (_, "/metrics") => method_not_allowed("GET"),
            _ => admin_error(404, "unknown admin endpoint", "unknown_url"),
        }
    }

    /// `GET /readyz`: 503 while a public model has no available deployment.
    fn ready(&self) -> Response<Vec<u8>> {
        let gw = self.control.current();
        let unavailable = gw.router.unavailable_models();
        if unavailable.is_empty() {
            reply(
                200,
                json!({"status": "ready", "models": gw.cfg.models.len()}),
            )
        } else {
            reply(
                503,
                json!({"status": "degraded", "unavailable_models": unavailable}),
            )
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        let (method, path) = (req.method.clone(), req.uri.path().to_string());
        let outcome = self.answer(session, &method, &path, peer).await;
        audit::admin_request(
            &self.metrics,
            &AdminRequest {
                who: outcome.who.map(|p| p.name),
                role: outcome.who.map(|p| p.role.as_str()),
                method: method.as_str(),
                path: &path,
                status: outcome.response.status().as_u16(),
                peer,
                refused: outcome.refused,
            },
        );
        outcome.response
    }
}

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
//! When `admin.token` is set, everything but the two probes requires it as a bearer token —
//! or, for GET requests, as the cookie the dashboard's login form sets (`SameSite=Strict`).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::Config;
use crate::control::Control;
use crate::routing::Router;
use crate::server::ui;
use crate::telemetry::Metrics;

pub struct Admin {
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

impl Admin {
    /// The current generation's config (a reload replaces it).
    fn cfg(&self) -> Arc<Config> {
        self.control.current().cfg.clone()
    }

    /// The current generation's router.
    fn router(&self) -> Arc<Router> {
        self.control.current().router.clone()
    }

    fn token(&self) -> Option<String> {
        self.cfg()
            .admin
            .token
            .as_ref()
            .map(|t| t.expose().to_string())
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let req = session.req_header();
        ui::auth::authorized(self.token().as_deref(), &req.method, &req.headers)
    }
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
        let limits = self.cfg().rate_limits.clone();
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

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => reply(200, json!({"status": "ok"})),
            "/readyz" => {
                let router = self.router();
                let unavailable = router.unavailable_models();
                if unavailable.is_empty() {
                    reply(
                        200,
                        json!({"status": "ready", "models": self.cfg().models.len()}),
                    )
                } else {
                    reply(
                        503,
                        json!({"status": "degraded", "unavailable_models": unavailable}),
                    )
                }
            }
            // Without a token the listener is loopback-only; a page on another site whose
            // name resolves to 127.0.0.1 (DNS rebinding) still names that site as the host.
            _ if self.token().is_none() && !loopback_host(&session.req_header().headers) => {
                admin_error(
                    403,
                    "without admin.token the admin listener answers only requests to a loopback \
                     host name (localhost, 127.0.0.1, [::1])",
                    "forbidden_host",
                )
            }
            p if ui::handles(p) => ui::serve(session, self.token().as_deref()).await,
            _ if !self.authorized(session) => reply(
                401,
                json!({"error": {"message": "admin token required", "type": "invalid_request_error", "param": null, "code": "unauthorized"}}),
            ),
            p if crate::control::api::handles(p) => {
                crate::control::api::serve(&self.control, session, "admin").await
            }
            "/health/deployments" => reply(200, self.router().snapshot()),
            "/usage" => {
                self.usage(session.req_header().uri.query().unwrap_or(""))
                    .await
            }
            "/usage/report" => {
                self.report(session.req_header().uri.query().unwrap_or(""))
                    .await
            }
            "/metrics" => {
                let body = self.metrics.render(&self.router());
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("valid response")
            }
            _ => reply(
                404,
                json!({"error": {"message": "unknown admin endpoint", "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
            ),
        }
    }
}

//! The admin listener, on its own socket — loopback by default — and never on the client
//! listener:
//!
//! - `/healthz`: the process is alive;
//! - `/readyz`: every public model has at least one available deployment (503 otherwise, with
//!   the models that have none);
//! - `/health/deployments`: health, cooldowns, load and failure counts of every deployment;
//! - `/metrics`: Prometheus text format.
//!
//! When `admin.token` is set, everything but the two probes requires it as a bearer token.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::Config;
use crate::routing::Router;
use crate::telemetry::Metrics;

pub struct Admin {
    pub cfg: Arc<Config>,
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
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
    fn authorized(&self, session: &ServerSession) -> bool {
        use subtle::ConstantTimeEq;
        let Some(token) = &self.cfg.admin.token else {
            return true;
        };
        let presented = session
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes()))
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => reply(200, json!({"status": "ok"})),
            "/readyz" => {
                let unavailable = self.router.unavailable_models();
                if unavailable.is_empty() {
                    reply(
                        200,
                        json!({"status": "ready", "models": self.cfg.models.len()}),
                    )
                } else {
                    reply(
                        503,
                        json!({"status": "degraded", "unavailable_models": unavailable}),
                    )
                }
            }
            _ if !self.authorized(session) => reply(
                401,
                json!({"error": {"message": "admin token required", "type": "invalid_request_error", "param": null, "code": "unauthorized"}}),
            ),
            "/health/deployments" => reply(200, self.router.snapshot()),
            "/metrics" => {
                let body = self.metrics.render(&self.router);
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

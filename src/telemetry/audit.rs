//! The admin audit log: one line per admin action — every request that is not a GET, every
//! request under `/keys`, every refusal — on the process log (stderr) with target
//! `sluice::audit`, as a JSON object like the access log's lines. It says who (a token's
//! name), with what role, did what (method and bounded path), with what status, from where;
//! never a token, a header or a body. Refusals are logged at WARN, the rest at INFO.

use std::net::IpAddr;

use serde_json::json;

use super::{Metrics, MAX_LOGGED_METHOD, MAX_LOGGED_PATH};
use crate::core::error::clip;

/// One answered admin-listener request.
#[derive(Debug)]
pub struct AdminRequest<'a> {
    /// The token's name (`local` without tokens); `None` when no usable token was given.
    pub who: Option<&'a str>,
    /// The token's role, `None` as `who`.
    pub role: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub peer: Option<IpAddr>,
    /// Why it was refused (one of `metrics::ADMIN_REFUSALS`), if it was.
    pub refused: Option<&'static str>,
}

impl AdminRequest<'_> {
    /// Whether the request is an admin action the audit log records.
    pub fn audited(&self) -> bool {
        self.method != "GET"
            || self.path == "/keys"
            || self.path.starts_with("/keys/")
            || self.refused.is_some()
            || matches!(self.status, 401 | 403)
    }

    /// The audit line's JSON.
    fn line(&self) -> serde_json::Value {
        json!({
            "who": self.who.unwrap_or("-"),
            "role": self.role.unwrap_or("-"),
            "method": clip(self.method, MAX_LOGGED_METHOD),
            "path": clip(self.path, MAX_LOGGED_PATH),
            "status": self.status,
            "peer": self.peer.map(|ip| ip.to_string()),
            "refused": self.refused,
        })
    }
}

/// Counts an admin-listener request in the metrics and, if it is an admin action, writes its
/// audit line.
pub fn admin_request(m: &Metrics, r: &AdminRequest<'_>) {
    let status = r.status.to_string();
    m.admin_requests
        .with_label_values(&[r.role.unwrap_or("none"), &status])
        .inc();
    if let Some(reason) = r.refused {
        m.admin_refused.with_label_values(&[reason]).inc();
    }
    if !r.audited() {
        return;
    }
    let level = if r.refused.is_some() || matches!(r.status, 401 | 403) {
        log::Level::Warn
    } else {
        log::Level::Info
    };
    log::log!(target: "sluice::audit", level, "{}", r.line());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &'static str, path: &'static str, status: u16) -> AdminRequest<'static> {
        AdminRequest {
            who: Some("root"),
            role: Some("admin"),
            method,
            path,
            status,
            peer: Some("10.1.2.3".parse().unwrap()),
            refused: None,
        }
    }

    #[test]
    fn actions_and_refusals_are_audited_reads_are_not() {
        assert!(!request("GET", "/metrics", 200).audited());
        assert!(!request("GET", "/ui/", 200).audited());
        assert!(request("POST", "/reload", 200).audited());
        assert!(request("DELETE", "/keys/a", 204).audited());
        assert!(request("GET", "/keys", 200).audited());
        assert!(request("GET", "/keys/a", 200).audited());
        assert!(!request("GET", "/keysmith", 404).audited());
        assert!(request("GET", "/metrics", 401).audited());
        assert!(request("GET", "/usage", 403).audited());
        let refused = AdminRequest {
            refused: Some("network"),
            ..request("GET", "/healthz", 403)
        };
        assert!(refused.audited());
    }

    #[test]
    fn the_line_is_bounded_and_names_no_secret() {
        let long = format!("/keys/{}", "x".repeat(1000));
        let r = AdminRequest {
            who: None,
            role: None,
            path: &long,
            ..request("POST", "/", 401)
        };
        let line = r.line();
        assert_eq!(line["who"], "-");
        assert_eq!(line["role"], "-");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["status"], 401);
        assert_eq!(line["peer"], "10.1.2.3");
        assert!(line["path"].as_str().unwrap().len() <= MAX_LOGGED_PATH + "…".len());
        let keys: Vec<_> = line.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["who", "role", "method", "path", "status", "peer", "refused"]
        );
    }
}

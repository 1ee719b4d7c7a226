//! Where a webhook guardrail is (its `url`, parsed) and the POST to it, made with sluice's
//! small HTTP/1.1 client ([`crate::core::post`]).

use crate::core::post::{self, Dest};
use crate::core::secret::Secret;

/// Where a webhook is: parsed from its `url`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Parses `http://host[:port]/path` or `https://…`. No user info (credentials belong in
    /// `headers`, where they are kept secret), no fragment.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("must not carry credentials; put them in headers".into());
        }
        if path.contains('#') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the path must not contain a fragment, spaces or control characters".into(),
            );
        }
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
        Ok(Target {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// `host[:port]`, `[v6]:port` → (host, port).
fn split_host_port(authority: &str, default: u16) -> Result<(String, u16), String> {
    let bad = || format!("invalid host and port {authority:?}");
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, tail) = r.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tail.is_empty() => default,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
    {
        return Err(bad());
    }
    Ok((host, port))
}

/// POSTs `body` (JSON) to the webhook and returns the status and the response body, which
/// may be at most `max` bytes. Errors say what failed, never a header value.
pub(crate) async fn post(
    t: &Target,
    headers: &[(String, Secret)],
    body: &[u8],
    max: usize,
) -> Result<(u16, Vec<u8>), String> {
    let authority = if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let to = Dest {
        tls: t.tls,
        host: t.host.trim_matches(['[', ']']),
        port: t.port,
        authority: &authority,
        path: &t.path,
    };
    post::post(&to, "application/json", headers, body, max).await
}

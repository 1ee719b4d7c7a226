//! The webhook keys of a guardrail: `url`, `headers`, `timeout`, `on_error`, `cache_ttl`,
//! `max_text_bytes`, `window`. Only `type: webhook` takes them.

use std::sync::Arc;
use std::time::Duration;

use super::cache::Cache;
use super::http::Target;
use super::{OnError, Webhook};
use crate::core::secret::Secret;
use crate::core::ConfigError;
use crate::guardrails::RawGuardrail;

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_MAX_TEXT_BYTES: usize = 1 << 20;
const MAX_MAX_TEXT_BYTES: usize = 16 << 20;
pub(crate) const DEFAULT_WINDOW: usize = 2048;
const MIN_WINDOW: usize = 16;

/// Headers sluice sets itself.
const RESERVED: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "connection",
    "transfer-encoding",
    "user-agent",
];

/// The webhook of guardrail `g` at `path` (`guardrails[i]`): `None` for other types, which
/// must not set webhook keys.
pub(crate) fn parse(path: &str, g: &RawGuardrail) -> Result<Option<Arc<Webhook>>, ConfigError> {
    if g.kind != "webhook" {
        return refuse_webhook_keys(path, g).map(|()| None);
    }
    let log_only = match g.action.as_str() {
        "block" => false,
        "log" => true,
        other => {
            return Err(ConfigError::new(
                format!("{path}.action"),
                format!(
                    "unknown action {other:?} for a webhook guardrail (block: apply the \
                     service's verdicts, block or redact; log: record them only)"
                ),
            ))
        }
    };
    let url = g.url.as_deref().ok_or_else(|| {
        ConfigError::new(format!("{path}.url"), "a webhook guardrail needs a url")
    })?;
    let target = Target::parse(url).map_err(|m| ConfigError::new(format!("{path}.url"), m))?;
    let timeout = duration(path, "timeout", g.timeout.as_deref(), DEFAULT_TIMEOUT)?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ConfigError::new(
            format!("{path}.timeout"),
            format!("must be more than 0 and at most {}s", MAX_TIMEOUT.as_secs()),
        ));
    }
    let on_error = match g.on_error.as_deref() {
        None | Some("fail_closed") => OnError::FailClosed,
        Some("fail_open") => OnError::FailOpen,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{path}.on_error"),
                format!("unknown value {other:?} (one of: fail_open, fail_closed)"),
            ))
        }
    };
    let cache_ttl = duration(path, "cache_ttl", g.cache_ttl.as_deref(), DEFAULT_CACHE_TTL)?;
    let max_text_bytes = bounded(
        path,
        "max_text_bytes",
        g.max_text_bytes,
        DEFAULT_MAX_TEXT_BYTES,
        1,
        MAX_MAX_TEXT_BYTES,
    )?;
    let window = bounded(
        path,
        "window",
        g.window,
        DEFAULT_WINDOW,
        MIN_WINDOW,
        max_text_bytes,
    )?;
    Ok(Some(Arc::new(Webhook {
        name: g.name.as_str().into(),
        target,
        headers: headers(path, g)?,
        timeout,
        on_error,
        log_only,
        max_text_bytes,
        window,
        cache: Cache::new(cache_ttl),
    })))
}

/// A guardrail of another type must not set webhook keys.
fn refuse_webhook_keys(path: &str, g: &RawGuardrail) -> Result<(), ConfigError> {
    for (key, set) in [
        ("url", g.url.is_some()),
        ("headers", g.headers.is_some()),
        ("timeout", g.timeout.is_some()),
        ("on_error", g.on_error.is_some()),
        ("cache_ttl", g.cache_ttl.is_some()),
        ("max_text_bytes", g.max_text_bytes.is_some()),
        ("window", g.window.is_some()),
    ] {
        if set {
            return Err(ConfigError::new(
                format!("{path}.{key}"),
                format!("only webhook guardrails take {key}"),
            ));
        }
    }
    Ok(())
}

fn duration(
    path: &str,
    key: &str,
    v: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim()).map_err(|_| {
            ConfigError::new(
                format!("{path}.{key}"),
                format!("invalid duration {s:?} (e.g. 500ms, 2s, 5m)"),
            )
        }),
    }
}

fn bounded(
    path: &str,
    key: &str,
    v: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let n = v.unwrap_or(default);
    if !(min..=max).contains(&n) {
        return Err(ConfigError::new(
            format!("{path}.{key}"),
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(n)
}

/// The headers, checked; values as the config resolved them (`resolved_headers`), or as
/// written when nothing resolved them.
fn headers(path: &str, g: &RawGuardrail) -> Result<Vec<(String, Secret)>, ConfigError> {
    let Some(raw) = &g.headers else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let hpath = format!("{path}.headers.{name}");
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            return Err(ConfigError::new(hpath, "is not a valid header name"));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(ConfigError::new(hpath, "is set by sluice"));
        }
        let value = g
            .resolved_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| Secret::new(value.clone()));
        // Never echo the value: it may be a credential.
        if !value.is_placeholder() && http::HeaderValue::from_str(value.expose()).is_err() {
            return Err(ConfigError::new(
                hpath,
                "is not a valid header value (control characters or line breaks)",
            ));
        }
        out.push((lower, value));
    }
    Ok(out)
}

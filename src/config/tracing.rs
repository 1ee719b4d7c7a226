//! `tracing:`: OpenTelemetry traces exported over OTLP/HTTP (protobuf). Off when absent.

use std::time::Duration;

use super::raw::RawTracing;
use super::secrets::Ctx;
use super::{BaseUrl, ConfigError, TracingSettings};
use crate::core::secret::Secret;

/// How long one export may take unless `tracing.timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn validate(
    ctx: &Ctx,
    raw: Option<RawTracing>,
) -> Result<Option<TracingSettings>, ConfigError> {
    let Some(t) = raw else { return Ok(None) };
    let Some(endpoint) = t.otlp_endpoint else {
        return Err(ConfigError::new(
            "tracing.otlp_endpoint",
            "is required (e.g. http://127.0.0.1:4318)",
        ));
    };
    let endpoint = BaseUrl::parse(endpoint.trim())
        .map_err(|e| ConfigError::new("tracing.otlp_endpoint", e))?;
    let sample_ratio = t.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(ConfigError::new(
            "tracing.sample_ratio",
            "must be from 0.0 to 1.0",
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in t.headers {
        let path = format!("tracing.headers.{name}");
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&path, "is not a valid header name"))?;
        if matches!(
            header.as_str(),
            "host" | "content-length" | "content-type" | "connection" | "transfer-encoding"
        ) {
            return Err(ConfigError::new(&path, "is set by sluice"));
        }
        // Auth headers are secrets: `${ENV}` or `file:` like every other; a literal is
        // accepted (a tenant id is no secret) but never printed either.
        let value = ctx
            .reference(&path, &value)?
            .unwrap_or_else(|| Secret::new(value));
        if !value.is_placeholder()
            && (value.expose().is_empty() || http::HeaderValue::from_str(value.expose()).is_err())
        {
            return Err(ConfigError::new(&path, "is not a valid header value"));
        }
        headers.push((header, value));
    }
    let service_name = t.service_name.unwrap_or_else(|| "sluice".into());
    if service_name.trim().is_empty() {
        return Err(ConfigError::new(
            "tracing.service_name",
            "must not be empty",
        ));
    }
    let timeout = t.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(ConfigError::new(
            "tracing.timeout",
            "must be more than 0 and at most 60s",
        ));
    }
    Ok(Some(TracingSettings {
        endpoint,
        sample_ratio,
        headers,
        service_name,
        timeout,
    }))
}

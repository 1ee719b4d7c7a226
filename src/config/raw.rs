//! The configuration file format, exactly as operators write it.
//!
//! Nothing outside `config` uses these types: [`super::load`] turns them into the validated
//! [`super::Config`]. Every struct refuses unknown keys so that a typo is an error, not a
//! silently ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::units::{ByteSize, Dur};
use crate::limits::config::{BackendKind, OnBackendError, RawLimitSet, RawPrice};

/// The whole file. Sections are read one by one ([`super::document`]); this shape reads the
/// whole text at once only to find the line of the first error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, Vec<RawDeployment>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub pricing: BTreeMap<String, RawPrice>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub allow_inline_secrets: bool,
    #[serde(default)]
    pub access_log: Option<bool>,
    #[serde(default)]
    pub guardrails: Vec<crate::guardrails::RawGuardrail>,
    #[serde(default)]
    pub default_guardrails: Option<Vec<String>>,
    #[serde(default)]
    pub usage: Option<RawUsage>,
    #[serde(default)]
    pub cache: Option<RawCache>,
    #[serde(default)]
    pub tracing: Option<RawTracing>,
}

/// `cache:`: the response cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub backend: Option<String>,
    pub ttl: Option<Dur>,
    pub max_entry_bytes: Option<ByteSize>,
    pub max_bytes: Option<ByteSize>,
    pub redis_url: Option<String>,
    pub redis_timeout: Option<Dur>,
    pub models: Option<Vec<String>>,
}

/// `tracing:`: OpenTelemetry traces over OTLP/HTTP.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// The collector's root; spans are POSTed to `<otlp_endpoint>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub service_name: Option<String>,
    pub timeout: Option<Dur>,
}

/// `usage:`: the usage ledger.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    pub store: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    /// A duration in days or hours (`90d`, `36h`).
    pub retention: Option<String>,
    /// How often managed keys are read from the store (`2s`).
    pub key_refresh: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminToken {
    pub name: String,
    pub token: String,
    pub role: String,
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub guardrails: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Option<RawLimitSet>,
    /// The team the key belongs to (the usage ledger groups by it).
    #[serde(default)]
    pub team: Option<String>,
    /// `false` turns the response cache off for this key.
    #[serde(default)]
    pub cache: Option<bool>,
    /// A named cache scope shared with the other keys that name it (default: the key's own).
    #[serde(default)]
    pub cache_scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_body_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_response_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_stream_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_inflight_body_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub backend: Option<BackendKind>,
    #[serde(default)]
    pub redis_url: Option<String>,
    #[serde(default)]
    pub redis_timeout: Option<Dur>,
    #[serde(default)]
    pub on_backend_error: Option<OnBackendError>,
    #[serde(default)]
    pub default: Option<RawLimitSet>,
    #[serde(default)]
    pub models: BTreeMap<String, RawLimitSet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default)]
    pub connect: Option<Dur>,
    #[serde(default)]
    pub first_byte: Option<Dur>,
    #[serde(default)]
    pub idle: Option<Dur>,
    #[serde(default)]
    pub total: Option<Dur>,
    #[serde(default)]
    pub request_header: Option<Dur>,
    #[serde(default)]
    pub request_body: Option<Dur>,
    #[serde(default)]
    pub client_idle: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub pid_file: Option<String>,
    #[serde(default)]
    pub upgrade_sock: Option<String>,
    #[serde(default)]
    pub grace_period: Option<Dur>,
    #[serde(default)]
    pub graceful_shutdown_timeout: Option<Dur>,
    #[serde(default)]
    pub max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub keepalive_pool_size: Option<usize>,
    #[serde(default)]
    pub keepalive_idle: Option<Dur>,
    #[serde(default)]
    pub max_h2_streams: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub max_wait: Option<Dur>,
    #[serde(default)]
    pub backoff_base: Option<Dur>,
    #[serde(default)]
    pub backoff_max: Option<Dur>,
    #[serde(default)]
    pub budget_ratio: Option<f64>,
    #[serde(default)]
    pub budget_min_per_second: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    #[serde(default)]
    pub cooldown: Option<Dur>,
    #[serde(default)]
    pub max_cooldown: Option<Dur>,
    #[serde(default)]
    pub check: RawHealthCheck,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
}

//! Configuration: the YAML file operators write, validated into a typed [`Config`].
//!
//! Two layers, as in River: [`raw`] is the serde shape of the file (unknown keys are errors);
//! [`load`]/[`parse`] turn it into a [`Config`] that the rest of the program uses and that is
//! already known to be consistent (every deployment names a known provider, every secret was
//! resolved). Every error names the key path, e.g.
//! `models.claude-fast[1].provider: unknown provider "gemni"`.
//!
//! Secrets never sit in the file: `api_key`, `key`, `admin.token` and `admin.tokens[].token` take `${ENV_VAR}` or
//! `file:/path` (the path may use `${CREDENTIALS_DIRECTORY}`). A literal value is refused unless
//! `allow_inline_secrets: true` is set, which exists for tests only.

mod admin;
mod cidr;
mod failover;
mod keys;
mod limits;
mod models;
pub mod pg_url;
mod providers;
mod raw;
mod secrets;
mod server;
mod timeouts;
mod types;
pub mod units;
mod upstream;
mod usage;

use std::path::Path;
use std::sync::Arc;

#[cfg(test)]
use sha2::{Digest, Sha256};

use raw::RawConfig;
use secrets::{quote_env_refs, Ctx};
pub use types::*;

pub use crate::core::ConfigError;

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    parse(&text)
}

/// Validates a config given as YAML text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let text = quote_env_refs(text);
    let de = serde_yaml::Deserializer::from_str(&text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, e.into_inner().to_string())
    })?;
    validate(raw)
}

/// Assembles the validated config from its sections, each validated by its own module. The
/// sections are checked in a fixed order, so the first error found wins.
fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let RawConfig {
        listen,
        tls,
        admin,
        keys: mut raw_keys,
        providers,
        models,
        limits: mut raw_limits,
        pricing,
        timeouts,
        server,
        upstream,
        retry,
        health,
        allow_inline_secrets,
        access_log,
        guardrails,
        default_guardrails,
        usage,
    } = raw;
    let ctx = Ctx {
        allow_inline: allow_inline_secrets,
    };
    let listen = server::parse_listen("listen", &listen)?;
    let tls = server::tls(tls)?;
    let admin = admin::admin(&ctx, admin, listen)?;

    let key_limits = keys::take_limits(&mut raw_keys);
    let guardrails = crate::guardrails::compile(guardrails)?;
    let default_guardrails = keys::default_guardrails(&guardrails, default_guardrails)?;
    let keys = keys::validate(&ctx, raw_keys, &guardrails, &default_guardrails)?;

    let providers = providers::validate(&ctx, providers)?;
    let models = models::validate(models, &providers)?;

    let limits = limits::validate(&raw_limits)?;
    let model_names: Vec<String> = models.keys().cloned().collect();
    let mut rate_limits = limits::rate_limits(&mut raw_limits, pricing, key_limits, &model_names)?;
    limits::default_prices(&mut rate_limits, &models);

    let timeouts = timeouts::validate(timeouts)?;
    let server = server::settings(server)?;
    let upstream = upstream::validate(upstream)?;
    let retry = failover::retry(retry)?;
    let health = failover::health(health)?;
    let usage = usage::validate(usage)?;

    Ok(Config {
        access_log: access_log.unwrap_or(true),
        retry,
        health,
        usage,
        listen,
        tls,
        admin,
        keys,
        default_guardrails,
        guardrails: Arc::new(guardrails),
        providers,
        models,
        limits,
        rate_limits,
        timeouts,
        server,
        upstream,
    })
}

#[cfg(test)]
mod tests;

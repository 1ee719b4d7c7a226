//! Configuration: the YAML file operators write, validated into a typed [`Config`].
//!
//! Two layers, as in River: [`raw`] is the serde shape of the file (unknown keys are errors);
//! [`load`]/[`parse`] turn it into a [`Config`] that the rest of the program uses and that is
//! already known to be consistent (every deployment names a known provider, every secret was
//! resolved). Every error names the key path, e.g.
//! `models.claude-fast[1].provider: unknown provider "gemni"`, and every error in the file
//! is reported ([`ConfigErrors`]), not only the first. [`load_with`] without resolving
//! secrets checks references for syntax only (`sluice check`).
//!
//! Secrets never sit in the file: `api_key`, `key`, `admin.token` and `admin.tokens[].token` take `${ENV_VAR}` or
//! `file:/path` (the path may use `${CREDENTIALS_DIRECTORY}`). A literal value is refused unless
//! `allow_inline_secrets: true` is set, which exists for tests only.

mod admin;
mod cache;
mod cidr;
mod document;
mod failover;
mod guardrail_headers;
mod keys;
mod limits;
mod models;
pub mod pg_url;
mod providers;
mod raw;
mod secrets;
mod server;
mod timeouts;
mod tracing;
mod types;
pub mod units;
mod upstream;
mod usage;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

#[cfg(test)]
use sha2::{Digest, Sha256};

use crate::core::ErrorCollector;
use document::Document;
use keys::KnownGuardrails;
use models::KnownProviders;
#[cfg(test)]
use secrets::quote_env_refs;
use secrets::Ctx;
pub use types::*;

pub use crate::core::{ConfigError, ConfigErrors};

/// How a config file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read every `${ENV}` and `file:` reference, as serving needs. When false, references
    /// are checked for syntax only and stand as placeholders ([`crate::core::secret::Secret::placeholder`]),
    /// and the checks that need their values are skipped: such a config is for checking,
    /// never for serving.
    pub resolve_secrets: bool,
}

impl Default for LoadOptions {
    /// Secrets resolved: what `sluice run` and a reload use.
    fn default() -> Self {
        LoadOptions {
            resolve_secrets: true,
        }
    }
}

/// Reads and validates a config file, secrets resolved. Every error in the file is reported.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &LoadOptions::default())
}

/// Reads and validates a config file as `options` say.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    parse_with(&text, options)
}

/// Validates a config given as YAML text, secrets resolved.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, &LoadOptions::default())
}

/// Validates a config given as YAML text as `options` say.
pub fn parse_with(text: &str, options: &LoadOptions) -> Result<Config, ConfigErrors> {
    let text = secrets::quote_env_refs(text);
    let mut errors = ErrorCollector::new();
    let Some(doc) = document::read(&text, &mut errors) else {
        return Err(errors.fail());
    };
    validate(doc, options, errors)
}

/// Assembles the validated config from its sections, each validated by its own module, and
/// every error of every section kept. A section that depends on another is checked against
/// what of it is valid, and not against a section that could not be read.
fn validate(
    doc: Document,
    options: &LoadOptions,
    mut errors: ErrorCollector,
) -> Result<Config, ConfigErrors> {
    let read = |s: &str| doc.read(s);
    let (listen_read, keys_read, guardrails_read, providers_read, models_read) = (
        read("listen"),
        read("keys"),
        read("guardrails"),
        read("providers"),
        read("models"),
    );
    let raw = doc.raw;
    let ctx = Ctx {
        allow_inline: raw.allow_inline_secrets,
        resolve: options.resolve_secrets,
    };
    let listen = listen_read
        .then(|| errors.take(server::parse_listen("listen", &raw.listen)))
        .flatten();
    let tls = errors.take(server::tls(raw.tls));
    let admin = errors.take(admin::admin(&ctx, raw.admin, listen));

    let mut raw_keys = raw.keys;
    let key_limits = keys::take_limits(&mut raw_keys);
    let declared: HashSet<String> = raw.guardrails.iter().map(|g| g.name.clone()).collect();
    let mut raw_guardrails = raw.guardrails;
    guardrail_headers::resolve(&ctx, &mut raw_guardrails, &mut errors);
    let guardrails = crate::guardrails::compile_valid(raw_guardrails, &mut errors);
    let known = KnownGuardrails {
        valid: &guardrails,
        declared: guardrails_read.then_some(declared),
    };
    let default_guardrails = errors.take(keys::default_guardrails(&known, raw.default_guardrails));
    let keys = keys_read
        .then(|| {
            let defaults = default_guardrails.as_deref().unwrap_or_default();
            errors.take(keys::validate(&ctx, raw_keys, &known, defaults))
        })
        .flatten();

    let declared: Vec<String> = raw.providers.keys().cloned().collect();
    let providers = providers::validate(&ctx, raw.providers, &mut errors);
    let model_names: Vec<String> = raw.models.keys().cloned().collect();
    let known = KnownProviders {
        valid: &providers,
        declared: providers_read.then_some(declared),
    };
    let models = errors.take(models::validate(raw.models, &known));

    let mut raw_limits = raw.limits;
    let limits = errors.take(limits::validate(&raw_limits));
    let models_known = models_read.then_some(model_names.as_slice());
    let rate_limits = errors.take(limits::rate_limits(
        &ctx,
        &mut raw_limits,
        raw.pricing,
        key_limits,
        models_known,
    ));

    let timeouts = errors.take(timeouts::validate(raw.timeouts));
    let server = errors.take(server::settings(raw.server));
    let upstream = errors.take(upstream::validate(raw.upstream));
    let retry = errors.take(failover::retry(raw.retry));
    let health = errors.take(failover::health(raw.health));
    let usage = errors.take(usage::validate(&ctx, raw.usage));
    let limits_redis = rate_limits.as_ref().map(|l| l.redis_url.as_ref());
    let cache = errors.take(cache::validate(&ctx, raw.cache, models_known, limits_redis));
    let tracing = errors.take(tracing::validate(&ctx, raw.tracing));

    let (
        Some(listen),
        Some(tls),
        Some(admin),
        Some(keys),
        Some(models),
        Some(limits),
        Some(mut rate_limits),
        Some(timeouts),
        Some(server),
        Some(upstream),
        Some(retry),
        Some(health),
        Some(usage),
        Some(cache),
        Some(tracing),
    ) = (
        listen,
        tls,
        admin,
        keys,
        models,
        limits,
        rate_limits,
        timeouts,
        server,
        upstream,
        retry,
        health,
        usage,
        cache,
        tracing,
    )
    else {
        return Err(errors.fail());
    };
    if !errors.is_empty() {
        return Err(errors.fail());
    }
    limits::default_prices(&mut rate_limits, &models);
    Ok(Config {
        access_log: raw.access_log.unwrap_or(true),
        retry,
        health,
        usage,
        cache,
        tracing,
        listen,
        tls,
        admin,
        keys,
        default_guardrails: default_guardrails.unwrap_or_default(),
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

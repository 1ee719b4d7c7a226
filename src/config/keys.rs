//! Gateway keys: `keys:` and the `default_guardrails` they fall back to.

use std::collections::HashSet;

use super::raw::RawKey;
use super::secrets::Ctx;
use super::{ConfigError, ConfigErrors, ErrorCollector, GatewayKey};
use crate::guardrails::Guardrails;
use crate::limits::config::RawLimitSet;

/// Takes each key's own `limits` out of `keys` (they belong to the limits engine), in file
/// order, with the key's name.
pub(super) fn take_limits(keys: &mut [RawKey]) -> Vec<(String, Option<RawLimitSet>)> {
    keys.iter_mut()
        .map(|k| (k.name.clone(), k.limits.take()))
        .collect()
}

/// The guardrails keys may name: the valid ones, and the names of every guardrail declared
/// (`None` when the `guardrails:` section itself could not be read). A list naming a
/// declared guardrail that failed its own validation is not checked: its error is reported
/// there already.
pub(super) struct KnownGuardrails<'a> {
    pub(super) valid: &'a Guardrails,
    pub(super) declared: Option<HashSet<String>>,
}

impl KnownGuardrails<'_> {
    /// Checks the guardrail list `names` at `path`, when it can be checked.
    fn check(&self, names: &[String], path: &str) -> Result<(), ConfigError> {
        let Some(declared) = &self.declared else {
            return Ok(());
        };
        let broken = |n: &String| declared.contains(n) && !self.valid.names().any(|v| v == n);
        if names.iter().any(broken) {
            return Ok(());
        }
        self.valid.policy(names, path).map(drop)
    }
}

/// `default_guardrails`: the guardrails of every key without a `guardrails` list of its own.
pub(super) fn default_guardrails(
    guardrails: &KnownGuardrails,
    names: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let names = names.unwrap_or_default();
    guardrails.check(&names, "default_guardrails")?;
    Ok(names)
}

/// `keys:`: at least one, names and keys unique; every bad key is reported.
pub(super) fn validate(
    ctx: &Ctx,
    raw: Vec<RawKey>,
    guardrails: &KnownGuardrails,
    default_guardrails: &[String],
) -> Result<Vec<GatewayKey>, ConfigErrors> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "keys",
            "at least one gateway key is required (clients authenticate with it)",
        )
        .into());
    }
    let mut errors = ErrorCollector::new();
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        errors.take(check_name(&path, &k.name, &mut names));
        let sha256 = errors.take(key_digest(ctx, &path, k.key, k.key_sha256));
        // A placeholder's digest is unknown: duplicates are found only when resolving.
        if let Some(Some(sha256)) = sha256 {
            if !hashes.insert(sha256) {
                errors.push(ConfigError::new(
                    &path,
                    "the same key is configured twice (under another name)",
                ));
            }
        }
        let models = errors.take(model_globs(&path, k.models));
        let guardrails = match k.guardrails {
            // A key's own list replaces `default_guardrails` (an empty list turns them off).
            Some(names) => errors
                .take(guardrails.check(&names, &format!("{path}.guardrails")))
                .map(|()| names),
            None => Some(default_guardrails.to_vec()),
        };
        if k.team
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > 128)
        {
            errors.push(ConfigError::new(
                format!("{path}.team"),
                "must be 1 to 128 characters",
            ));
        }
        let scope = errors.take(cache_scope(&path, k.cache_scope));
        if let (Some(sha256), Some(models), Some(guardrails), Some(cache_scope)) =
            (sha256, models, guardrails, scope)
        {
            keys.push(GatewayKey {
                name: k.name,
                sha256: sha256.unwrap_or_default(),
                models,
                guardrails,
                team: k.team,
                cache: k.cache.unwrap_or(true),
                cache_scope,
            });
        }
    }
    errors.finish(keys)
}

/// `keys[i].cache_scope`: 1 to 128 characters.
fn cache_scope(path: &str, scope: Option<String>) -> Result<Option<String>, ConfigError> {
    match scope {
        Some(s) if s.is_empty() || s.len() > 128 => Err(ConfigError::new(
            format!("{path}.cache_scope"),
            "must be 1 to 128 characters",
        )),
        s => Ok(s),
    }
}

/// `keys[i].name`: not empty, not used by an earlier key.
fn check_name(path: &str, name: &str, seen: &mut HashSet<String>) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.name"),
            "must not be empty",
        ));
    }
    if !seen.insert(name.to_string()) {
        return Err(ConfigError::new(
            format!("{path}.name"),
            format!("duplicate key name {name:?}"),
        ));
    }
    Ok(())
}

/// The SHA-256 of the key: of its `key` secret, or its `key_sha256` as written (exactly one
/// of the two); `None` when the secret is a placeholder.
fn key_digest(
    ctx: &Ctx,
    path: &str,
    key: Option<String>,
    key_sha256: Option<String>,
) -> Result<Option<[u8; 32]>, ConfigError> {
    match (key, key_sha256) {
        (Some(key), None) => {
            let secret = ctx.secret(&format!("{path}.key"), &key)?;
            Ok((!secret.is_placeholder()).then(|| crate::core::secret::digest(secret.expose())))
        }
        (None, Some(hex_hash)) => {
            let bytes = hex::decode(hex_hash.trim()).ok().filter(|b| b.len() == 32);
            match bytes {
                Some(b) => Ok(Some(b.try_into().expect("length checked"))),
                None => Err(ConfigError::new(
                    format!("{path}.key_sha256"),
                    "must be 64 hexadecimal characters (a SHA-256 digest)",
                )),
            }
        }
        (Some(_), Some(_)) => Err(ConfigError::new(
            path,
            "set either key or key_sha256, not both",
        )),
        (None, None) => Err(ConfigError::new(path, "needs key or key_sha256")),
    }
}

/// `keys[i].models`: the allow-list, every model by default; no glob may be empty.
fn model_globs(path: &str, models: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let models = models.unwrap_or_else(|| vec!["*".into()]);
    for (j, g) in models.iter().enumerate() {
        if g.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.models[{j}]"),
                "must not be empty",
            ));
        }
    }
    Ok(models)
}

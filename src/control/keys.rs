//! Managed keys as the admin API and the CLI make them: a request validated against the
//! running config, the secret generated (shown once, only its SHA-256 stored), and the views
//! both print. The request path sees them as [`ManagedKey`]s in the key ring.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::ledger::keys::StoredKey;
use crate::limits::config::{validate_set, RawLimitSet};
use crate::pipeline::keyring::ManagedKey;

/// What every generated secret starts with.
pub const SECRET_PREFIX: &str = "sk-sluice-";
/// Random characters after the prefix (62 symbols each: ~285 bits).
const SECRET_RANDOM_CHARS: usize = 48;
/// Characters of the secret kept to recognise a key in lists.
const SHOWN_PREFIX_CHARS: usize = SECRET_PREFIX.len() + 4;
/// Metadata entries a key may carry, and their sizes.
const MAX_METADATA: usize = 16;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_VALUE: usize = 256;
/// The grace period of a rotation when none is asked for.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// The longest grace period a rotation accepts.
const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// A refused key operation: an HTTP status, the parameter at fault and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub status: u16,
    pub param: Option<&'static str>,
    pub code: &'static str,
    pub message: String,
}

impl KeyError {
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        KeyError {
            status: 400,
            param: Some(param),
            code: "invalid_value",
            message: message.into(),
        }
    }

    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        KeyError {
            status,
            param: None,
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// `models` as a list or as one comma-separated string (`"gpt-*,claude-*"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Models {
    List(Vec<String>),
    Text(String),
}

/// A key to create, as `POST /keys` takes it (and the CLI builds it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub name: String,
    #[serde(default)]
    pub models: Option<Models>,
    /// How long the key lives: `30d`, `12h`, …
    #[serde(default)]
    pub expires: Option<String>,
    /// When the key stops working, in Unix seconds (instead of `expires`).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Limits in the shape of a config key's `limits:`.
    #[serde(default)]
    pub limits: Option<Value>,
    /// Guardrail names; without them the config's `default_guardrails` apply.
    #[serde(default)]
    pub guardrails: Option<Vec<String>>,
    /// `team`, `owner`, `cost_center`, … (strings). `team` is recorded in the usage ledger.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// `false`: the response cache never serves this key (as a config key's `cache:`).
    #[serde(default)]
    pub cache: Option<bool>,
    /// The cache scope shared with keys naming the same one (a config key's `cache_scope`).
    #[serde(default)]
    pub cache_scope: Option<String>,
}

/// Metadata entries that are settings: `cache` (`false` turns the response cache off for
/// the key) and `cache_scope`. They are kept with the key's metadata, as `team` is.
const META_CACHE: &str = "cache";
const META_CACHE_SCOPE: &str = "cache_scope";

/// Moves the request's cache settings into the metadata and checks them there.
fn cache_settings(
    cache: Option<bool>,
    scope: Option<String>,
    metadata: &mut BTreeMap<String, String>,
) -> Result<(), KeyError> {
    if let Some(c) = cache {
        metadata.insert(META_CACHE.into(), c.to_string());
    }
    if let Some(s) = scope {
        metadata.insert(META_CACHE_SCOPE.into(), s);
    }
    if metadata
        .get(META_CACHE)
        .is_some_and(|c| c != "true" && c != "false")
    {
        return Err(KeyError::invalid("cache", "must be true or false"));
    }
    if metadata
        .get(META_CACHE_SCOPE)
        .is_some_and(|s| s.is_empty() || s.len() > 128)
    {
        return Err(KeyError::invalid(
            "cache_scope",
            "must be 1 to 128 characters",
        ));
    }
    Ok(())
}

/// A new secret: the prefix and random characters from the operating system's generator.
pub fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // The thread generator is a CSPRNG seeded from the operating system.
    let mut rng = rand::rng();
    let mut s = String::with_capacity(SECRET_PREFIX.len() + SECRET_RANDOM_CHARS);
    s.push_str(SECRET_PREFIX);
    for _ in 0..SECRET_RANDOM_CHARS {
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// The digest stored for `secret`, and the prefix shown in lists.
pub fn digest(secret: &str) -> ([u8; 32], String) {
    (
        crate::core::secret::digest(secret),
        secret.chars().take(SHOWN_PREFIX_CHARS).collect(),
    )
}

/// Whether `name` can name a key: 1–64 letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::invalid(
            "name",
            "must be 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// Validates `req` against the running config and makes the key: what to store, and the
/// secret to show once.
pub fn create(req: KeyRequest, cfg: &Config, now_ms: u64) -> Result<(StoredKey, String), KeyError> {
    check_name(&req.name)?;
    if cfg.keys.iter().any(|k| k.name == req.name) {
        return Err(KeyError::new(
            409,
            "config_key",
            format!(
                "a key named {:?} is in the config file; managed keys need names of their own",
                req.name
            ),
        ));
    }
    let models = models(req.models)?;
    let expires_ms = expiry(req.expires.as_deref(), req.expires_at, now_ms)?;
    let limits = match req.limits {
        Some(v) => Some(limits(v)?),
        None => None,
    };
    if let Some(names) = &req.guardrails {
        cfg.guardrails
            .policy(names, "guardrails")
            .map_err(|e| KeyError::invalid("guardrails", e.to_string()))?;
    }
    let mut metadata = metadata(req.metadata.unwrap_or_default())?;
    cache_settings(req.cache, req.cache_scope, &mut metadata)?;
    let secret = new_secret();
    let (sha256, prefix) = digest(&secret);
    let key = StoredKey {
        name: req.name,
        sha256,
        prefix,
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
        models,
        limits,
        guardrails: req.guardrails,
        metadata,
        previous_sha256: None,
        previous_until_ms: None,
        updated_ms: now_ms,
    };
    Ok((key, secret))
}

fn models(m: Option<Models>) -> Result<Vec<String>, KeyError> {
    let list = match m {
        None => return Ok(Vec::new()),
        Some(Models::List(l)) => l,
        Some(Models::Text(t)) => t.split(',').map(|s| s.trim().to_string()).collect(),
    };
    if list.iter().any(|g| g.is_empty() || g.len() > 256) {
        return Err(KeyError::invalid(
            "models",
            "every model pattern must be 1 to 256 characters",
        ));
    }
    Ok(list)
}

/// A duration as operators write it: `30d`, `12h`, `90m`, `1h 30m`.
pub fn parse_duration(param: &'static str, s: &str) -> Result<Duration, KeyError> {
    humantime::parse_duration(s.trim())
        .map_err(|_| KeyError::invalid(param, format!("invalid duration {s:?} (e.g. 30d, 12h)")))
}

fn expiry(
    expires: Option<&str>,
    expires_at: Option<u64>,
    now_ms: u64,
) -> Result<Option<u64>, KeyError> {
    match (expires, expires_at) {
        (Some(_), Some(_)) => Err(KeyError::invalid(
            "expires",
            "give expires or expires_at, not both",
        )),
        (Some(d), None) => {
            let d = parse_duration("expires", d)?;
            if d.is_zero() {
                return Err(KeyError::invalid("expires", "must be positive"));
            }
            Ok(Some(now_ms.saturating_add(d.as_millis() as u64)))
        }
        (None, Some(secs)) => {
            let ms = secs.saturating_mul(1000);
            if ms <= now_ms {
                return Err(KeyError::invalid("expires_at", "is in the past"));
            }
            Ok(Some(ms))
        }
        (None, None) => Ok(None),
    }
}

/// `limits` in the shape of a config key's `limits:`, validated; stored as JSON text.
fn limits(v: Value) -> Result<String, KeyError> {
    let raw: RawLimitSet = serde_json::from_value(v.clone())
        .map_err(|e| KeyError::invalid("limits", e.to_string()))?;
    validate_set("limits", &raw).map_err(|e| KeyError::invalid("limits", e.to_string()))?;
    Ok(v.to_string())
}

fn metadata(m: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, KeyError> {
    if m.len() > MAX_METADATA {
        return Err(KeyError::invalid(
            "metadata",
            format!("at most {MAX_METADATA} entries"),
        ));
    }
    for (k, v) in &m {
        if k.is_empty() || k.len() > MAX_METADATA_KEY || v.len() > MAX_METADATA_VALUE {
            return Err(KeyError::invalid(
                "metadata",
                format!(
                    "names are 1 to {MAX_METADATA_KEY} bytes, values at most \
                     {MAX_METADATA_VALUE}"
                ),
            ));
        }
    }
    Ok(m)
}

/// A rotation's grace period: `1h` by default, at most 30 days; `0s` ends the old secret
/// at once.
pub fn grace(s: Option<&str>) -> Result<Duration, KeyError> {
    let g = match s {
        Some(s) => parse_duration("grace", s)?,
        None => DEFAULT_GRACE,
    };
    if g > MAX_GRACE {
        return Err(KeyError::invalid("grace", "at most 30d"));
    }
    Ok(g)
}

/// The request path's view of a stored key; `None` for a revoked one. Limits that no longer
/// validate (written by a newer version, say) refuse the key rather than drop its limits.
pub fn managed(
    k: &StoredKey,
) -> Option<Result<(ManagedKey, Option<crate::limits::LimitSet>), String>> {
    if k.revoked_ms.is_some() {
        return None;
    }
    let limits = match &k.limits {
        None => None,
        Some(text) => {
            let parsed = serde_json::from_str::<RawLimitSet>(text)
                .map_err(|e| e.to_string())
                .and_then(|raw| validate_set("limits", &raw).map_err(|e| e.to_string()));
            match parsed {
                Ok(set) => Some(set),
                Err(e) => return Some(Err(format!("managed key '{}': {e}", k.name))),
            }
        }
    };
    let key = ManagedKey {
        name: k.name.clone(),
        sha256: k.sha256,
        previous: k.previous_sha256.zip(k.previous_until_ms),
        expires_ms: k.expires_ms,
        models: k.models.clone(),
        guardrails: k.guardrails.clone(),
        team: k.metadata.get("team").cloned(),
        cache: k.metadata.get(META_CACHE).is_none_or(|c| c != "false"),
        cache_scope: k.metadata.get(META_CACHE_SCOPE).cloned(),
    };
    Some(Ok((key, limits)))
}

/// `active`, `expired` or `revoked`.
fn status(k: &StoredKey, now_ms: u64) -> &'static str {
    if k.revoked_ms.is_some() {
        "revoked"
    } else if k.expires_ms.is_some_and(|t| t <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

fn secs(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| json!(ms / 1000))
}

/// A managed key as the API and the CLI show it: never its secret or digest.
pub fn view(k: &StoredKey, now_ms: u64) -> Value {
    let limits = k
        .limits
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    json!({
        "name": k.name,
        "source": "managed",
        "status": status(k, now_ms),
        "prefix": k.prefix,
        "created_at": k.created_ms / 1000,
        "expires_at": secs(k.expires_ms),
        "revoked_at": secs(k.revoked_ms),
        "previous_valid_until": secs(k.previous_until_ms.filter(|t| *t > now_ms)),
        "models": if k.models.is_empty() { vec!["*".to_string()] } else { k.models.clone() },
        "limits": limits,
        "guardrails": k.guardrails,
        "metadata": k.metadata,
        "cache": k.metadata.get(META_CACHE).is_none_or(|c| c != "false"),
        "cache_scope": k.metadata.get(META_CACHE_SCOPE),
    })
}

/// A key from the config file, as the API and the CLI show it (read-only).
pub fn config_view(k: &crate::config::GatewayKey) -> Value {
    json!({
        "name": k.name,
        "source": "config",
        "status": "active",
        "models": k.models,
        "guardrails": k.guardrails,
        "metadata": k.team.as_ref().map(|t| json!({"team": t})).unwrap_or(json!({})),
        "cache": k.cache,
        "cache_scope": k.cache_scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::config::parse(
            "listen: 127.0.0.1:8080\nallow_inline_secrets: true\n\
             keys: [{ name: file-key, key: sk-test-file-key }]\n\
             providers:\n  p: { kind: openai_compatible, base_url: http://127.0.0.1:1/v1 }\n\
             guardrails:\n  - { name: g, type: regex, patterns: [\"x\"], action: block }\n\
             models:\n  m: [{ provider: p }]\n",
        )
        .unwrap()
    }

    fn req(v: Value) -> KeyRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_key_is_made_with_a_fresh_secret_and_only_its_digest_kept() {
        let now = 1_000_000;
        let (k, secret) = create(
            req(
                json!({"name": "svc", "models": "gpt-*, m", "expires": "30d",
                       "limits": {"requests_per_minute": 5}, "guardrails": ["g"],
                       "metadata": {"team": "t"}}),
            ),
            &cfg(),
            now,
        )
        .unwrap();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(secret.len(), SECRET_PREFIX.len() + SECRET_RANDOM_CHARS);
        assert_eq!(k.sha256, digest(&secret).0);
        assert_eq!(k.prefix, &secret[..SHOWN_PREFIX_CHARS]);
        assert_eq!(k.models, ["gpt-*", "m"]);
        assert_eq!(k.expires_ms, Some(now + 30 * 86_400_000));
        let (m, limits) = managed(&k).unwrap().unwrap();
        assert_eq!(m.team.as_deref(), Some("t"));
        assert_eq!(limits.unwrap().requests_per_minute, Some(5));
        assert_ne!(new_secret(), secret);
        assert!(!view(&k, now)
            .to_string()
            .contains(&secret[SHOWN_PREFIX_CHARS..]));
    }

    #[test]
    fn bad_requests_name_their_parameter() {
        let c = cfg();
        let refused = |v: Value| create(req(v), &c, 1_000).unwrap_err();
        assert_eq!(refused(json!({"name": ""})).param, Some("name"));
        assert_eq!(refused(json!({"name": "a b"})).param, Some("name"));
        assert_eq!(refused(json!({"name": "file-key"})).code, "config_key");
        assert_eq!(
            refused(json!({"name": "k", "expires": "soon"})).param,
            Some("expires")
        );
        assert_eq!(
            refused(json!({"name": "k", "expires_at": 1})).param,
            Some("expires_at")
        );
        assert_eq!(
            refused(json!({"name": "k", "limits": {"requests_per_minute": 0}})).param,
            Some("limits")
        );
        assert_eq!(
            refused(json!({"name": "k", "limits": {"rpm": 1}})).param,
            Some("limits")
        );
        assert_eq!(
            refused(json!({"name": "k", "guardrails": ["nope"]})).param,
            Some("guardrails")
        );
        assert_eq!(
            refused(json!({"name": "k", "models": [""]})).param,
            Some("models")
        );
        assert!(grace(Some("31d")).is_err());
        assert_eq!(grace(None).unwrap(), DEFAULT_GRACE);
    }
}

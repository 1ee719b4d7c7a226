//! Configuration: the YAML file operators write, validated into a typed [`Config`].
//!
//! Two layers, as in River: [`raw`] is the serde shape of the file (unknown keys are errors);
//! [`load`]/[`parse`] turn it into a [`Config`] that the rest of the program uses and that is
//! already known to be consistent (every deployment names a known provider, every secret was
//! resolved). Every error names the key path, e.g.
//! `models.claude-fast[1].provider: unknown provider "gemni"`.
//!
//! Secrets never sit in the file: `api_key`, `key` and `admin.token` take `${ENV_VAR}` or
//! `file:/path` (the path may use `${CREDENTIALS_DIRECTORY}`). A literal value is refused unless
//! `allow_inline_secrets: true` is set, which exists for tests only.

mod raw;
mod secrets;
mod types;
pub mod units;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use raw::RawConfig;
use secrets::{quote_env_refs, resolve_reference, Ctx};
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

fn parse_listen(path: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::new(
            path,
            format!("invalid address {s:?}: expected IP:PORT, e.g. 127.0.0.1:8080"),
        )
    })
}

fn validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        allow_inline: raw.allow_inline_secrets,
    };
    let listen = parse_listen("listen", &raw.listen)?;
    let tls = raw.tls.map(|t| TlsFiles {
        cert: t.cert,
        key: t.key,
        http2: t.http2.unwrap_or(true),
    });
    if let Some(t) = &tls {
        for (key, file) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
            if !Path::new(file).is_file() {
                return Err(ConfigError::new(key, format!("file {file} does not exist")));
            }
        }
    }

    let admin = {
        let raw_admin = raw.admin.unwrap_or(raw::RawAdmin {
            listen: None,
            token: None,
        });
        let listen = match raw_admin.listen {
            Some(s) => parse_listen("admin.listen", &s)?,
            None => "127.0.0.1:9091".parse().expect("static address"),
        };
        let token = raw_admin
            .token
            .map(|t| ctx.secret("admin.token", &t))
            .transpose()?;
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(ConfigError::new(
                "admin.listen",
                "a non-loopback admin listener requires admin.token",
            ));
        }
        if let Some(t) = &token {
            check_admin_token(t.expose())?;
        }
        Admin { listen, token }
    };
    if admin.listen == listen {
        return Err(ConfigError::new(
            "admin.listen",
            "must differ from listen: admin and client traffic use separate listeners",
        ));
    }

    let key_limits: Vec<(String, Option<crate::limits::config::RawLimitSet>)> = raw
        .keys
        .iter_mut()
        .map(|k| (k.name.clone(), k.limits.take()))
        .collect();
    let guardrails = crate::guardrails::compile(raw.guardrails)?;
    let default_policy = match &raw.default_guardrails {
        Some(names) => guardrails.policy(names, "default_guardrails")?,
        None => crate::guardrails::Policy::empty(),
    };
    let keys = validate_keys(&ctx, raw.keys, &guardrails, &default_policy)?;

    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let provider = validate_provider(&ctx, &name, p)?;
        providers.insert(name, Arc::new(provider));
    }

    let mut models = BTreeMap::new();
    for (public, deps) in raw.models {
        let base = format!("models.{public}");
        if public.is_empty() {
            return Err(ConfigError::new("models", "model names must not be empty"));
        }
        if deps.is_empty() {
            return Err(ConfigError::new(base, "needs at least one deployment"));
        }
        let mut deployments = Vec::with_capacity(deps.len());
        for (i, d) in deps.into_iter().enumerate() {
            let path = format!("{base}[{i}]");
            let provider = providers.get(&d.provider).ok_or_else(|| {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                ConfigError::new(
                    format!("{path}.provider"),
                    format!(
                        "unknown provider {:?} (known providers: {})",
                        d.provider,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            let weight = d.weight.unwrap_or(1);
            if weight == 0 {
                return Err(ConfigError::new(
                    format!("{path}.weight"),
                    "must be at least 1",
                ));
            }
            let model = d.model.unwrap_or_else(|| public.clone());
            if model.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.model"),
                    "must not be empty",
                ));
            }
            deployments.push(Arc::new(Deployment {
                provider: provider.clone(),
                model,
                weight,
                priority: d.priority.unwrap_or(0),
            }));
        }
        models.insert(
            public.clone(),
            Arc::new(Route {
                name: public,
                deployments,
            }),
        );
    }

    let limits = validate_limits(&raw.limits)?;

    let rate_limits = validate_rate_limits(
        &mut raw.limits,
        std::mem::take(&mut raw.pricing),
        key_limits,
        &models.keys().cloned().collect::<Vec<_>>(),
    )?;

    let t = raw.timeouts;
    let timeouts = Timeouts {
        connect: t.connect.map_or(Duration::from_secs(10), |d| d.0),
        first_byte: t.first_byte.map_or(Duration::from_secs(600), |d| d.0),
        idle: t.idle.map_or(Duration::from_secs(300), |d| d.0),
        total: t.total.map_or(Duration::from_secs(1800), |d| d.0),
        request_header: t.request_header.map_or(Duration::from_secs(30), |d| d.0),
        request_body: t.request_body.map_or(Duration::from_secs(120), |d| d.0),
        client_idle: t.client_idle.map_or(Duration::from_secs(60), |d| d.0),
    };
    for (key, d) in [
        ("timeouts.connect", timeouts.connect),
        ("timeouts.first_byte", timeouts.first_byte),
        ("timeouts.idle", timeouts.idle),
        ("timeouts.total", timeouts.total),
        ("timeouts.request_header", timeouts.request_header),
        ("timeouts.request_body", timeouts.request_body),
        ("timeouts.client_idle", timeouts.client_idle),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(key, "must be positive"));
        }
    }

    let s = raw.server;
    let threads = match s.threads {
        Some(0) => return Err(ConfigError::new("server.threads", "must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let server = ServerSettings {
        threads,
        pid_file: s.pid_file.unwrap_or_else(|| "/tmp/sluice.pid".into()),
        upgrade_sock: s
            .upgrade_sock
            .unwrap_or_else(|| "/tmp/sluice_upgrade.sock".into()),
        grace_period: s.grace_period.map_or(Duration::from_secs(300), |d| d.0),
        graceful_shutdown_timeout: s
            .graceful_shutdown_timeout
            .map_or(Duration::from_secs(5), |d| d.0),
        max_connections: s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
    };
    if server.max_connections == 0 {
        return Err(ConfigError::new(
            "server.max_connections",
            "must be at least 1",
        ));
    }

    let u = raw.upstream;
    if let Some(ca) = &u.ca_file {
        if !Path::new(ca).is_file() {
            return Err(ConfigError::new(
                "upstream.ca_file",
                format!("file {ca} does not exist"),
            ));
        }
    }
    let upstream = UpstreamSettings {
        ca_file: u.ca_file,
        keepalive_pool_size: u.keepalive_pool_size.unwrap_or(256),
        keepalive_idle: u.keepalive_idle.map_or(Duration::from_secs(60), |d| d.0),
        max_h2_streams: u.max_h2_streams.unwrap_or(100),
    };
    if upstream.max_h2_streams == 0 {
        return Err(ConfigError::new(
            "upstream.max_h2_streams",
            "must be at least 1",
        ));
    }

    let retry = validate_retry(raw.retry)?;
    let health = validate_health(raw.health)?;

    Ok(Config {
        access_log: raw.access_log.unwrap_or(true),
        retry,
        health,
        listen,
        tls,
        admin,
        keys,
        providers,
        models,
        limits,
        rate_limits,
        timeouts,
        server,
        upstream,
    })
}

/// The shortest admin token accepted, in characters.
const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The fewest distinct characters an admin token must have.
const MIN_ADMIN_TOKEN_DISTINCT: usize = 8;

/// Refuses an admin token that could be guessed: too short, or made of few characters
/// (`aaaaaaaaaaaaaaaa`, `1212121212121212`). The message never quotes the token.
fn check_admin_token(token: &str) -> Result<(), ConfigError> {
    let len = token.chars().count();
    let distinct = token.chars().collect::<HashSet<char>>().len();
    if len < MIN_ADMIN_TOKEN_LEN || distinct < MIN_ADMIN_TOKEN_DISTINCT {
        return Err(ConfigError::new(
            "admin.token",
            format!(
                "is too weak: it must be at least {MIN_ADMIN_TOKEN_LEN} characters long with at \
                 least {MIN_ADMIN_TOKEN_DISTINCT} different characters (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(())
}

/// Client connections open at once unless `server.max_connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

/// Request-body bytes in flight at once unless `limits.max_inflight_body_bytes` says
/// otherwise (or one `max_body_bytes` if that is larger).
const DEFAULT_INFLIGHT_BODY_BYTES: usize = 1 << 30;

/// The size and cost bounds under `limits:`.
fn validate_limits(l: &raw::RawLimits) -> Result<Limits, ConfigError> {
    let bytes =
        |v: &Option<units::ByteSize>, default: usize| v.as_ref().map_or(default, |b| b.0 as usize);
    let mut limits = Limits {
        max_body_bytes: bytes(&l.max_body_bytes, 8 << 20),
        max_response_bytes: bytes(&l.max_response_bytes, 64 << 20),
        max_stream_bytes: bytes(&l.max_stream_bytes, 64 << 20),
        max_inflight_body_bytes: bytes(&l.max_inflight_body_bytes, 0),
        max_completion_tokens: l.max_completion_tokens.unwrap_or(262_144),
    };
    if limits.max_body_bytes == 0 {
        return Err(ConfigError::new(
            "limits.max_body_bytes",
            "must be positive",
        ));
    }
    for (key, v) in [
        ("limits.max_response_bytes", limits.max_response_bytes),
        ("limits.max_stream_bytes", limits.max_stream_bytes),
    ] {
        if v < 1024 {
            return Err(ConfigError::new(key, "must be at least 1KiB"));
        }
    }
    if l.max_inflight_body_bytes.is_none() {
        limits.max_inflight_body_bytes = limits.max_body_bytes.max(DEFAULT_INFLIGHT_BODY_BYTES);
    }
    if limits.max_inflight_body_bytes < limits.max_body_bytes {
        return Err(ConfigError::new(
            "limits.max_inflight_body_bytes",
            "must be at least limits.max_body_bytes (one largest request must fit)",
        ));
    }
    if limits.max_completion_tokens == 0 {
        return Err(ConfigError::new(
            "limits.max_completion_tokens",
            "must be positive",
        ));
    }
    Ok(limits)
}

fn validate_rate_limits(
    l: &mut raw::RawLimits,
    pricing: BTreeMap<String, crate::limits::config::RawPrice>,
    keys: Vec<(String, Option<crate::limits::config::RawLimitSet>)>,
    models: &[String],
) -> Result<crate::limits::LimitsConfig, ConfigError> {
    // The URL may carry a password: `${ENV}` and `file:` are resolved like secrets, a literal
    // is accepted (a password-less URL is no secret); errors never quote it.
    let redis_url = match l.redis_url.take() {
        Some(u) => Some(resolve_reference("limits.redis_url", &u)?.unwrap_or(u)),
        None => None,
    };
    let engine = crate::limits::config::RawEngine {
        backend: l.backend,
        redis_url,
        redis_timeout: l.redis_timeout.map(|d| d.0),
        on_backend_error: l.on_backend_error,
        default: l.default.take(),
        models: std::mem::take(&mut l.models),
        pricing,
        keys,
    };
    crate::limits::config::validate(engine, models)
}

fn validate_retry(r: raw::RawRetry) -> Result<RetrySettings, ConfigError> {
    let retry = RetrySettings {
        max_attempts: r.max_attempts.unwrap_or(3),
        max_wait: r.max_wait.map_or(Duration::from_secs(10), |d| d.0),
        backoff_base: r.backoff_base.map_or(Duration::from_millis(200), |d| d.0),
        backoff_max: r.backoff_max.map_or(Duration::from_secs(5), |d| d.0),
        budget_ratio: r.budget_ratio.unwrap_or(0.2),
        budget_min_per_second: r.budget_min_per_second.unwrap_or(5),
    };
    if !(1..=10).contains(&retry.max_attempts) {
        return Err(ConfigError::new(
            "retry.max_attempts",
            "must be between 1 and 10",
        ));
    }
    if !(0.0..=1.0).contains(&retry.budget_ratio) {
        return Err(ConfigError::new(
            "retry.budget_ratio",
            "must be between 0 and 1",
        ));
    }
    if retry.backoff_base > retry.backoff_max {
        return Err(ConfigError::new(
            "retry.backoff_base",
            "must not exceed retry.backoff_max",
        ));
    }
    Ok(retry)
}

fn validate_health(h: raw::RawHealth) -> Result<HealthSettings, ConfigError> {
    let c = h.check;
    let check = if c.enabled.unwrap_or(true) {
        let path = c.path;
        if path.as_deref().is_some_and(|p| !p.starts_with('/')) {
            return Err(ConfigError::new("health.check.path", "must start with /"));
        }
        let check = HealthCheckSettings {
            path,
            interval: c.interval.map_or(Duration::from_secs(30), |d| d.0),
            timeout: c.timeout.map_or(Duration::from_secs(5), |d| d.0),
            unhealthy_threshold: c.unhealthy_threshold.unwrap_or(2),
            healthy_threshold: c.healthy_threshold.unwrap_or(1),
        };
        if check.interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "health.check.interval",
                "must be at least 100ms",
            ));
        }
        if check.timeout.is_zero() {
            return Err(ConfigError::new("health.check.timeout", "must be positive"));
        }
        if check.unhealthy_threshold == 0 || check.healthy_threshold == 0 {
            return Err(ConfigError::new(
                "health.check",
                "unhealthy_threshold and healthy_threshold must be at least 1",
            ));
        }
        Some(check)
    } else {
        None
    };
    let health = HealthSettings {
        failure_threshold: h.failure_threshold.unwrap_or(3),
        cooldown: h.cooldown.map_or(Duration::from_secs(10), |d| d.0),
        max_cooldown: h.max_cooldown.map_or(Duration::from_secs(300), |d| d.0),
        check,
    };
    if health.failure_threshold == 0 {
        return Err(ConfigError::new(
            "health.failure_threshold",
            "must be at least 1",
        ));
    }
    Ok(health)
}

fn validate_keys(
    ctx: &Ctx,
    raw: Vec<raw::RawKey>,
    guardrails: &crate::guardrails::Guardrails,
    default_policy: &Arc<crate::guardrails::Policy>,
) -> Result<Vec<GatewayKey>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "keys",
            "at least one gateway key is required (clients authenticate with it)",
        ));
    }
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if k.name.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        if !names.insert(k.name.clone()) {
            return Err(ConfigError::new(
                format!("{path}.name"),
                format!("duplicate key name {:?}", k.name),
            ));
        }
        let sha256: [u8; 32] = match (k.key, k.key_sha256) {
            (Some(key), None) => {
                let secret = ctx.secret(&format!("{path}.key"), &key)?;
                Sha256::digest(secret.expose().as_bytes()).into()
            }
            (None, Some(hex_hash)) => {
                let bytes = hex::decode(hex_hash.trim()).ok().filter(|b| b.len() == 32);
                match bytes {
                    Some(b) => b.try_into().expect("length checked"),
                    None => {
                        return Err(ConfigError::new(
                            format!("{path}.key_sha256"),
                            "must be 64 hexadecimal characters (a SHA-256 digest)",
                        ))
                    }
                }
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    path,
                    "set either key or key_sha256, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(path, "needs key or key_sha256"));
            }
        };
        if !hashes.insert(sha256) {
            return Err(ConfigError::new(
                path,
                "the same key is configured twice (under another name)",
            ));
        }
        let models = k.models.unwrap_or_else(|| vec!["*".into()]);
        for (j, g) in models.iter().enumerate() {
            if g.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.models[{j}]"),
                    "must not be empty",
                ));
            }
        }
        let guardrails = match &k.guardrails {
            // A key's own list replaces `default_guardrails` (an empty list turns them off).
            Some(names) => guardrails.policy(names, &format!("{path}.guardrails"))?,
            None => default_policy.clone(),
        };
        keys.push(GatewayKey {
            name: k.name,
            sha256,
            models,
            guardrails,
        });
    }
    Ok(keys)
}

fn validate_provider(ctx: &Ctx, name: &str, p: raw::RawProvider) -> Result<Provider, ConfigError> {
    let path = format!("providers.{name}");
    let kind = ProviderKind::parse(&p.kind).ok_or_else(|| {
        let known: Vec<&str> = ProviderKind::ALL.iter().map(|(n, _)| *n).collect();
        ConfigError::new(
            format!("{path}.kind"),
            format!("unknown kind {:?} (one of: {})", p.kind, known.join(", ")),
        )
    })?;
    let base_url = match (
        p.base_url,
        crate::providers::Wire::of(kind)
            .descriptor()
            .default_base_url,
    ) {
        (Some(u), _) => u,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(ConfigError::new(
                format!("{path}.base_url"),
                format!("is required for kind {}", kind.as_str()),
            ))
        }
    };
    let base =
        BaseUrl::parse(&base_url).map_err(|m| ConfigError::new(format!("{path}.base_url"), m))?;
    let api_key = p
        .api_key
        .map(|k| ctx.secret(&format!("{path}.api_key"), &k))
        .transpose()?;
    if api_key.is_none()
        && crate::providers::Wire::of(kind)
            .descriptor()
            .requires_api_key
    {
        return Err(ConfigError::new(
            format!("{path}.api_key"),
            format!("is required for kind {}", kind.as_str()),
        ));
    }
    let mut headers = Vec::with_capacity(p.headers.len());
    for (h, v) in p.headers {
        let hpath = format!("{path}.headers.{h}");
        let hname = http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| ConfigError::new(&hpath, "invalid header name"))?;
        if is_reserved_header(&hname) {
            return Err(ConfigError::new(
                &hpath,
                "this header is set by sluice itself (use api_key for credentials)",
            ));
        }
        let value = resolve_reference(&hpath, &v)?.unwrap_or(v);
        let hvalue = http::HeaderValue::from_str(&value)
            .map_err(|_| ConfigError::new(&hpath, "invalid header value"))?;
        headers.push((hname, hvalue));
    }
    let http2 = match p.http2 {
        Some(true) if !base.tls => {
            return Err(ConfigError::new(
                format!("{path}.http2"),
                "HTTP/2 is negotiated over TLS: it needs an https:// base_url",
            ))
        }
        Some(v) => v,
        None => base.tls,
    };
    // The versioned API root: OpenAI-style base URLs already include it; Anthropic and Gemini
    // base URLs are the server root, their APIs live under /v1 or /v1beta.
    let wire = crate::providers::Wire::of(kind);
    wire.check_base_path(&base.path)
        .map_err(|m| ConfigError::new(format!("{path}.base_url"), m))?;
    let version = wire.descriptor().api_version;
    let api_root = if base.path.ends_with(version) {
        base.path.clone()
    } else {
        format!("{}{version}", base.path)
    };
    Ok(Provider {
        name: name.to_string(),
        kind,
        base,
        api_root,
        api_key,
        headers,
        http2,
    })
}

fn is_reserved_header(h: &http::HeaderName) -> bool {
    const RESERVED: [&str; 8] = [
        "authorization",
        "x-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "accept-encoding",
    ];
    RESERVED.contains(&h.as_str())
}

#[cfg(test)]
mod tests;

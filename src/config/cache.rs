//! `cache:`: the response cache — its backend, TTL, entry and total sizes, and the models it
//! serves.

use std::time::Duration;

use super::raw::RawCache;
use super::secrets::Ctx;
use super::{CacheBackend, CacheSettings, ConfigError, ConfigErrors};
use crate::core::secret::Secret;
use crate::core::ErrorCollector;

/// Answers are served from the cache this long unless `cache.ttl` says otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Larger answers are not stored unless `cache.max_entry_bytes` says otherwise.
const DEFAULT_MAX_ENTRY: u64 = 1 << 20;
/// The memory backend holds this much unless `cache.max_bytes` says otherwise.
const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Each Redis operation of the cache gives up after this unless `cache.redis_timeout` says
/// otherwise: a dead Redis costs a request little.
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// Validates `cache:`. `models` are the public model names (`None`: the models section could
/// not be read, not checked); `limits_redis` the limits' Redis URL (`None`: the limits could
/// not be read, not checked).
pub(super) fn validate(
    ctx: &Ctx,
    raw: Option<RawCache>,
    models: Option<&[String]>,
    limits_redis: Option<Option<&Secret>>,
) -> Result<Option<CacheSettings>, ConfigErrors> {
    let Some(raw) = raw else { return Ok(None) };
    let mut errors = ErrorCollector::new();
    let ttl = raw.ttl.map_or(DEFAULT_TTL, |d| d.0);
    if ttl.is_zero() {
        errors.push(ConfigError::new("cache.ttl", "must be positive"));
    }
    let max_entry = raw.max_entry_bytes.map_or(DEFAULT_MAX_ENTRY, |b| b.0);
    if max_entry == 0 || max_entry > 64 << 20 {
        errors.push(ConfigError::new(
            "cache.max_entry_bytes",
            "must be from 1 byte to 64MiB",
        ));
    }
    let backend = errors.take(backend(ctx, &raw, max_entry, limits_redis));
    let models = errors.take(cache_models(raw.models, models));
    let (Some(backend), Some(models)) = (backend, models) else {
        return Err(errors.fail());
    };
    errors.finish(Some(CacheSettings {
        backend,
        ttl,
        max_entry_bytes: max_entry as usize,
        models,
    }))
}

/// `cache.backend` with its own settings; a setting of the other backend is an error.
fn backend(
    ctx: &Ctx,
    raw: &RawCache,
    max_entry: u64,
    limits_redis: Option<Option<&Secret>>,
) -> Result<CacheBackend, ConfigError> {
    match raw.backend.as_deref().unwrap_or("memory") {
        "memory" => {
            if raw.redis_url.is_some() || raw.redis_timeout.is_some() {
                let which = if raw.redis_url.is_some() {
                    "cache.redis_url"
                } else {
                    "cache.redis_timeout"
                };
                return Err(ConfigError::new(
                    which,
                    "is only used with cache.backend: redis",
                ));
            }
            let max_bytes = raw.max_bytes.map_or(DEFAULT_MAX_BYTES, |b| b.0);
            if max_bytes < max_entry {
                return Err(ConfigError::new(
                    "cache.max_bytes",
                    "must be at least cache.max_entry_bytes",
                ));
            }
            Ok(CacheBackend::Memory { max_bytes })
        }
        "redis" => {
            if raw.max_bytes.is_some() {
                return Err(ConfigError::new(
                    "cache.max_bytes",
                    "is for cache.backend: memory (bound a Redis server with its maxmemory)",
                ));
            }
            let timeout = raw.redis_timeout.map_or(DEFAULT_REDIS_TIMEOUT, |d| d.0);
            if timeout.is_zero() {
                return Err(ConfigError::new("cache.redis_timeout", "must be positive"));
            }
            Ok(CacheBackend::Redis {
                url: redis_url(ctx, raw.redis_url.as_deref(), limits_redis)?,
                timeout,
            })
        }
        other => Err(ConfigError::new(
            "cache.backend",
            format!(
                "unknown backend {:?} (known: memory, redis)",
                crate::core::error::echo(other)
            ),
        )),
    }
}

/// `cache.redis_url` (`${ENV}`, `file:` or a literal; never quoted in errors), else the
/// limits' Redis.
fn redis_url(
    ctx: &Ctx,
    raw: Option<&str>,
    limits_redis: Option<Option<&Secret>>,
) -> Result<Secret, ConfigError> {
    const PATH: &str = "cache.redis_url";
    let Some(raw) = raw else {
        return match limits_redis {
            Some(Some(url)) => Ok(url.clone()),
            Some(None) => Err(ConfigError::new(
                PATH,
                "is required when cache.backend is redis and limits.redis_url is not set",
            )),
            None => Ok(Secret::placeholder()),
        };
    };
    let url = ctx
        .reference(PATH, raw)?
        .unwrap_or_else(|| Secret::new(raw.to_string()));
    if url.is_placeholder() {
        return Ok(url);
    }
    let u = url.expose();
    if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
        return Err(ConfigError::new(
            PATH,
            "must start with redis:// or rediss://",
        ));
    }
    redis::Client::open(u)
        .map(drop)
        .map_err(|_| ConfigError::new(PATH, "is not a valid Redis URL (its value is not shown)"))?;
    Ok(url)
}

/// `cache.models`: public model names, each known and listed once.
fn cache_models(
    raw: Option<Vec<String>>,
    known: Option<&[String]>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = raw else { return Ok(None) };
    if list.is_empty() {
        return Err(ConfigError::new(
            "cache.models",
            "must name at least one model (leave it out to cache every model)",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        if known.is_some_and(|k| !k.iter().any(|n| n == m)) {
            return Err(ConfigError::new(
                format!("cache.models[{i}]"),
                format!(
                    "unknown model {:?} (not under models)",
                    crate::core::error::echo(m)
                ),
            ));
        }
        if list[..i].contains(m) {
            return Err(ConfigError::new(
                format!("cache.models[{i}]"),
                "is listed twice",
            ));
        }
    }
    Ok(Some(list))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, CacheBackend};

    const BASE: &str = r#"
listen: 127.0.0.1:8080
allow_inline_secrets: true
keys:
  - { name: team-a, key: gw-test-a }
providers:
  local: { kind: ollama }
models:
  llama:
    - { provider: local, model: llama3.2 }
"#;

    /// The key path and message of the first error of `cache` (the body of `cache:`).
    fn err(cache: &str) -> (String, String) {
        let e = parse(&format!("{BASE}cache:\n{cache}")).expect_err("refused");
        let e = e.first();
        (e.path.clone(), e.message.clone())
    }

    #[test]
    fn defaults_and_settings() {
        let c = parse(&format!("{BASE}cache: {{}}\n")).unwrap();
        let s = c.cache.unwrap();
        assert_eq!(
            s.backend,
            CacheBackend::Memory {
                max_bytes: 256 << 20
            }
        );
        assert_eq!(s.ttl.as_secs(), 600);
        assert_eq!(s.max_entry_bytes, 1 << 20);
        assert_eq!(s.models, None);
        assert!(parse(BASE).unwrap().cache.is_none(), "off by default");
        let c = parse(&format!(
            "{BASE}cache: {{ backend: redis, redis_url: \"redis://127.0.0.1:1\", ttl: 5s, models: [llama] }}\n"
        ))
        .unwrap();
        let s = c.cache.unwrap();
        assert!(matches!(s.backend, CacheBackend::Redis { .. }));
        assert_eq!(s.models, Some(vec!["llama".to_string()]));
    }

    #[test]
    fn errors_name_the_key_path() {
        for (cache, path, says) in [
            ("  ttl: 0s\n", "cache.ttl", "positive"),
            ("  ttl: soon\n", "cache.ttl", "invalid duration"),
            ("  backend: disk\n", "cache.backend", "unknown backend"),
            (
                "  max_entry_bytes: 0\n",
                "cache.max_entry_bytes",
                "from 1 byte",
            ),
            (
                "  max_entry_bytes: 2MiB\n  max_bytes: 1MiB\n",
                "cache.max_bytes",
                "at least",
            ),
            (
                "  redis_url: \"redis://x\"\n",
                "cache.redis_url",
                "backend: redis",
            ),
            ("  backend: redis\n", "cache.redis_url", "limits.redis_url"),
            (
                "  backend: redis\n  redis_url: \"http://user:pw@x\"\n",
                "cache.redis_url",
                "redis://",
            ),
            (
                "  backend: redis\n  redis_url: \"redis://x\"\n  max_bytes: 1MiB\n",
                "cache.max_bytes",
                "memory",
            ),
            ("  models: [gpt]\n", "cache.models[0]", "unknown model"),
            ("  models: []\n", "cache.models", "at least one"),
            ("  size: 1\n", "cache", "size"),
        ] {
            let (p, m) = err(cache);
            assert!(
                p == path || (path == "cache" && p.starts_with("cache")),
                "{cache}: {p}: {m}"
            );
            assert!(m.contains(says), "{cache}: {m}");
            assert!(!m.contains("pw@"), "{m}");
        }
    }

    #[test]
    fn redis_defaults_to_the_limits_redis() {
        let yaml = format!(
            "{BASE}limits:\n  backend: redis\n  redis_url: \"redis://127.0.0.1:7\"\ncache: {{ backend: redis }}\n"
        );
        let s = parse(&yaml).unwrap().cache.unwrap();
        let CacheBackend::Redis { url, .. } = s.backend else {
            panic!("redis")
        };
        assert_eq!(url.expose(), "redis://127.0.0.1:7");
    }

    #[test]
    fn key_settings() {
        let yaml = BASE.replace(
            "  - { name: team-a, key: gw-test-a }",
            "  - { name: team-a, key: gw-test-a, cache: false }\n  - { name: b, key: gw-test-b, cache_scope: evals }",
        );
        let c = parse(&yaml).unwrap();
        assert!(!c.keys[0].cache);
        assert_eq!(c.keys[1].cache_scope.as_deref(), Some("evals"));
        let bad = BASE.replace("key: gw-test-a }", "key: gw-test-a, cache_scope: \"\" }");
        let e = parse(&bad).expect_err("refused");
        assert_eq!(e.first().path, "keys[0].cache_scope");
    }
}

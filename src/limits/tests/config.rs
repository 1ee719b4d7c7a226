//! The `limits:`, `pricing:` and `keys[].limits` sections, through `config::parse`.

use super::*;
use crate::config::{parse, ConfigError};

const BASE: &str = r#"
listen: 127.0.0.1:8080
allow_inline_secrets: true
keys:
  - name: team-a
    key: sk-gw-test-a
    limits: { requests_per_minute: 60, tokens_per_minute: 100000, max_concurrent: 10, budget: { daily_usd: 5 } }
  - { name: team-b, key: sk-gw-test-b }
  - { name: free, key: sk-gw-test-c, limits: {} }
providers:
  openai: { kind: openai, api_key: sk-fake-provider-key }
models:
  gpt-4o-mini:
    - { provider: openai }
  gpt-4o:
    - { provider: openai }
limits:
  max_body_bytes: 8MiB
  default:
    requests_per_minute: 600
    tokens_per_minute: 200000
    max_concurrent: 50
    budget: { daily_usd: 50, monthly_usd: 1000 }
  models:
    gpt-4o-mini: { requests_per_minute: 5000, tokens_per_minute: 2000000, max_concurrent: 500 }
pricing:
  gpt-4o-mini: { input: 0.15, output: 0.60 }
"#;

/// The first error of a refused config.
fn err(yaml: &str) -> ConfigError {
    parse(yaml)
        .expect_err("config should be refused")
        .first()
        .clone()
}

#[test]
fn the_documented_shape_parses() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.limits.max_body_bytes, 8 << 20, "existing keys still work");
    let l = &c.rate_limits;
    assert_eq!(l.backend, BackendKind::Memory);
    assert_eq!(l.on_backend_error, OnBackendError::FailOpen);
    assert_eq!(l.redis_timeout, Duration::from_millis(50));
    assert!(l.is_active());
    let a = &l.keys["team-a"];
    assert_eq!(a.requests_per_minute, Some(60));
    assert_eq!(a.daily_usd, Some(5.0));
    assert_eq!(
        a.monthly_usd, None,
        "own limits replace the default as a whole"
    );
    let b = &l.keys["team-b"];
    assert_eq!(b.requests_per_minute, Some(600));
    assert_eq!(b.monthly_usd, Some(1000.0));
    assert!(l.keys["free"].is_empty(), "limits: {{}} exempts a key");
    assert_eq!(l.models["gpt-4o-mini"].max_concurrent, Some(500));
    assert_eq!(
        l.pricing["gpt-4o-mini"],
        Price {
            input: 0.15,
            output: 0.60,
            cached_input: None,
        }
    );
    let models: Vec<String> = c.models.keys().cloned().collect();
    // gpt-4o has no `pricing`: the bundled table prices it.
    assert!(l.unpriced_models(&models).is_empty());
    assert_eq!(l.pricing["gpt-4o"].input, 2.50);
    assert!(!l.configured_prices.contains("gpt-4o"));
    assert!(Limiter::new(l).is_ok());
}

#[test]
fn no_limits_section_means_inactive() {
    let yaml = BASE.split("limits:\n  max_body_bytes").next().unwrap();
    let yaml = yaml
        .replace(
            "    limits: { requests_per_minute: 60, tokens_per_minute: 100000, max_concurrent: 10, budget: { daily_usd: 5 } }\n",
            "",
        )
        .replace(", limits: {} }", " }");
    let c = parse(&yaml).unwrap();
    assert!(!c.rate_limits.is_active());
    assert!(c.rate_limits.unpriced_models(&["x".to_string()]).is_empty());
}

#[test]
fn errors_name_the_key_path() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("requests_per_minute: 600", "request_per_minute: 600", "limits.default.request_per_minute", "unknown field"),
        ("max_concurrent: 10", "max_concurrent: 0", "keys[0].limits.max_concurrent", "must be positive"),
        ("max_concurrent: 10", "max_concurrent: -1", "keys[0].limits.max_concurrent", ""),
        ("daily_usd: 5", "daily_usd: 0", "keys[0].limits.budget.daily_usd", "positive"),
        ("daily_usd: 5", "daily_usd: .nan", "keys[0].limits.budget.daily_usd", "positive"),
        ("budget: { daily_usd: 5 }", "budget: {}", "keys[0].limits.budget", "daily_usd or monthly_usd"),
        ("budget: { daily_usd: 5 }", "budget: { weekly_usd: 5 }", "keys[0].limits.budget.weekly_usd", "unknown field"),
        ("    gpt-4o-mini: { requests", "    gpt-5: { requests", "limits.models.gpt-5", "unknown model"),
        ("  gpt-4o-mini: { input", "  gpt-9: { input", "pricing.gpt-9", "unknown model"),
        ("input: 0.15", "input: -0.15", "pricing.gpt-4o-mini.input", "0 or more"),
        ("output: 0.60", "outptu: 0.60", "pricing.gpt-4o-mini.outptu", "unknown field"),
        ("  max_body_bytes: 8MiB", "  max_body_bytes: 8MiB\n  backend: redsi", "limits.backend", "unknown variant"),
        ("  max_body_bytes: 8MiB", "  max_body_bytes: 8MiB\n  backend: redis", "limits.redis_url", "required"),
        ("  max_body_bytes: 8MiB", "  max_body_bytes: 8MiB\n  redis_url: redis://x", "limits.redis_url", "only used"),
        ("  max_body_bytes: 8MiB", "  max_body_bytes: 8MiB\n  on_backend_error: fail_sometimes", "limits.on_backend_error", "unknown variant"),
        ("  max_body_bytes: 8MiB", "  max_body_bytes: 8MiB\n  backend: redis\n  redis_url: redis://h\n  redis_timeout: 0ms", "limits.redis_timeout", "positive"),
    ];
    for (from, to, path, msg) in cases {
        assert!(BASE.contains(from), "{from}");
        let e = err(&BASE.replacen(from, to, 1));
        assert_eq!(e.path, *path, "{to}: {e}");
        assert!(e.message.contains(msg), "{to}: {e}");
    }
}

#[test]
fn redis_settings_and_the_url_is_never_shown() {
    let with = |extra: &str| {
        BASE.replacen(
            "  max_body_bytes: 8MiB",
            &format!("  max_body_bytes: 8MiB\n{extra}"),
            1,
        )
    };
    let c = parse(&with(
        "  backend: redis\n  redis_url: redis://:pw@127.0.0.1:6379/2\n  redis_timeout: 20ms\n  on_backend_error: fail_closed",
    ))
    .unwrap();
    let l = &c.rate_limits;
    assert_eq!(l.backend, BackendKind::Redis);
    assert_eq!(l.redis_timeout, Duration::from_millis(20));
    assert_eq!(l.on_backend_error, OnBackendError::FailClosed);
    assert!(!format!("{l:?}").contains("pw@"), "Debug hides the URL");

    std::env::set_var(
        "SLUICE_TEST_LIMITS_REDIS_URL",
        "rediss://:hunter2@redis.internal:6380",
    );
    let c = parse(&with(
        "  backend: redis\n  redis_url: ${SLUICE_TEST_LIMITS_REDIS_URL}",
    ))
    .unwrap();
    assert_eq!(
        c.rate_limits.redis_url.as_ref().unwrap().expose(),
        "rediss://:hunter2@redis.internal:6380"
    );

    for bad in [
        "http://:hunter2@host:6379",
        "redis://:hunter2@[::1",
        "redis://:hunter2@host:99999",
    ] {
        let e = err(&with(&format!("  backend: redis\n  redis_url: \"{bad}\"")));
        assert_eq!(e.path, "limits.redis_url", "{bad}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let e = err(&with(
        "  backend: redis\n  redis_url: ${SLUICE_TEST_LIMITS_UNSET_VAR}",
    ));
    assert_eq!(e.path, "limits.redis_url");
}

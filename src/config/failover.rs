//! Retries and failover: `retry:` and `health:`.

use std::time::Duration;

use super::raw::{RawHealth, RawHealthCheck, RawRetry};
use super::{ConfigError, HealthCheckSettings, HealthSettings, RetrySettings};

/// `retry:`.
pub(super) fn retry(r: RawRetry) -> Result<RetrySettings, ConfigError> {
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

/// `health:`: passive cooldowns and the active check.
pub(super) fn health(h: RawHealth) -> Result<HealthSettings, ConfigError> {
    let check = health_check(h.check)?;
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

/// `health.check`: `None` when disabled.
fn health_check(c: RawHealthCheck) -> Result<Option<HealthCheckSettings>, ConfigError> {
    if !c.enabled.unwrap_or(true) {
        return Ok(None);
    }
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
    Ok(Some(check))
}

//! Tests of the limits engine: config validation, the memory backend (on a manual clock) and
//! the Redis backend (against a `redis-server` child process).

mod config;
mod memory;
mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::time::{days_from_civil, Clock};
use super::*;

/// A limit set from requests and tokens per minute and concurrent requests (0 = unset).
fn set(rpm: u64, tpm: u64, conc: u64) -> LimitSet {
    let opt = |v: u64| (v > 0).then_some(v);
    LimitSet {
        requests_per_minute: opt(rpm),
        tokens_per_minute: opt(tpm),
        max_concurrent: opt(conc),
        daily_usd: None,
        monthly_usd: None,
    }
}

/// A limit set with only spend budgets.
fn budget(daily_usd: Option<f64>, monthly_usd: Option<f64>) -> LimitSet {
    LimitSet {
        daily_usd,
        monthly_usd,
        ..LimitSet::default()
    }
}

fn config(keys: &[(&str, LimitSet)], models: &[(&str, LimitSet)]) -> LimitsConfig {
    LimitsConfig {
        keys: keys
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect(),
        models: models
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect(),
        ..LimitsConfig::default()
    }
}

/// Unix microseconds of a UTC date and time.
fn utc_us(y: i64, mo: u32, d: u32, h: u64, mi: u64) -> u64 {
    (days_from_civil(y, mo, d) as u64 * 86_400 + h * 3600 + mi * 60) * 1_000_000
}

/// A memory limiter on a manual clock that starts at `start_us`.
fn manual(cfg: &LimitsConfig, start_us: u64) -> (Limiter, Arc<AtomicU64>) {
    let t = Arc::new(AtomicU64::new(start_us));
    let l = Limiter::with_clock(cfg, Clock::Manual(t.clone())).expect("memory limiter");
    (l, t)
}

fn advance(t: &AtomicU64, d: Duration) {
    t.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
}

fn adm<'a>(key: &'a str, model: &'a str, estimated_tokens: u64) -> Admission<'a> {
    Admission {
        key,
        model,
        estimated_tokens,
    }
}

fn header(h: impl Iterator<Item = (&'static str, String)>, name: &str) -> Option<String> {
    h.into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

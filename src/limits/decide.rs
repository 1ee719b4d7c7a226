//! What both backends share: the rate arithmetic, and turning the checks of one admission
//! into a [`Rejection`] or the rate-limit headers of a [`super::Permit`].
//!
//! A rate limit is a GCRA bucket kept in its "level" form: `level` is the amount charged and
//! not yet drained, and it drains continuously at `limit` per window. A charge of `cost` fits
//! when `level + cost <= limit`, so a full bucket admits exactly `limit` requests (or tokens)
//! at once and then one more each `window / limit`. Settling a request's actual token usage
//! may push the level above `limit` (debt): nothing fits until it has drained below again.

use std::time::Duration;

use super::time::{format_reset, period_at, Period};
use super::{LimitKind, Rejection, Scope};

/// Slack for float rounding when comparing levels.
const EPS: f64 = 1e-9;

/// One limit checked for one admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckKind {
    Requests,
    Tokens,
    Concurrency,
    Daily,
    Monthly,
}

impl CheckKind {
    pub(crate) fn limit_kind(self) -> LimitKind {
        match self {
            CheckKind::Requests => LimitKind::Requests,
            CheckKind::Tokens => LimitKind::Tokens,
            CheckKind::Concurrency => LimitKind::Concurrency,
            CheckKind::Daily | CheckKind::Monthly => LimitKind::Budget,
        }
    }
}

/// One check of an admission and what the backend found.
#[derive(Debug, Clone)]
pub(crate) struct Check<'a> {
    pub scope: Scope,
    pub name: &'a str,
    pub kind: CheckKind,
    /// The configured limit: per window, concurrent requests, or USD.
    pub limit: f64,
    /// What this request asks: 1 request, the estimated tokens, 1 slot; 0 for budgets.
    pub cost: f64,
    /// The state before this request: bucket level, requests in flight, USD spent.
    pub value: f64,
    pub passed: bool,
}

/// What one request may charge to a token bucket of `limit`: never more than the bucket
/// holds, so that no single request — whatever `max_tokens` it names or usage a provider
/// reports — puts a bucket more than one window in debt.
pub(crate) fn charge_for(tokens: u64, limit: u64) -> u64 {
    tokens.min(limit)
}

/// The highest level a bucket of `limit` can reach: full, plus one request's capped charge.
pub(crate) fn max_level(limit: f64) -> f64 {
    2.0 * limit
}

/// Whether `cost` fits a bucket at `level`. A cost larger than the whole limit fits only an
/// empty bucket (it then leaves the bucket in debt), so a large request is delayed, never
/// refused forever.
pub(crate) fn rate_fits(level: f64, cost: f64, limit: f64) -> bool {
    level + cost <= limit + EPS || level <= EPS
}

/// A bucket's level drained over `elapsed_us`.
pub(crate) fn drained(level: f64, elapsed_us: u64, limit: f64, window_us: u64) -> f64 {
    (level - elapsed_us as f64 * limit / window_us as f64).max(0.0)
}

fn units_to_duration(units: f64, limit: f64, window: Duration) -> Duration {
    let secs = (units.max(0.0) * window.as_secs_f64() / limit).min(1e9);
    Duration::from_secs_f64(secs)
}

impl Check<'_> {
    /// Whether the request passes this check, given `value`.
    pub(crate) fn evaluate(&mut self) -> bool {
        self.passed = match self.kind {
            CheckKind::Requests | CheckKind::Tokens => rate_fits(self.value, self.cost, self.limit),
            CheckKind::Concurrency | CheckKind::Daily | CheckKind::Monthly => {
                self.value < self.limit
            }
        };
        self.passed
    }

    /// How long until this check could pass.
    fn wait(&self, window: Duration, unix_secs: u64) -> Duration {
        let d = match self.kind {
            CheckKind::Requests | CheckKind::Tokens => {
                let units = if self.cost > self.limit {
                    self.value
                } else {
                    self.value + self.cost - self.limit
                };
                units_to_duration(units, self.limit, window)
            }
            // Nobody knows when a request in flight ends; a second is a fair pace to retry.
            CheckKind::Concurrency => Duration::from_secs(1),
            CheckKind::Daily => Duration::from_secs(period_at(Period::Day, unix_secs).2),
            CheckKind::Monthly => Duration::from_secs(period_at(Period::Month, unix_secs).2),
        };
        d.max(Duration::from_millis(1))
    }

    fn describe(&self) -> String {
        match self.kind {
            CheckKind::Requests => format!("{} requests per minute", self.limit),
            CheckKind::Tokens => format!("{} tokens per minute", self.limit),
            CheckKind::Concurrency => format!("{} concurrent requests", self.limit),
            CheckKind::Daily => format!("daily budget of ${:.2}", self.limit),
            CheckKind::Monthly => format!("monthly budget of ${:.2}", self.limit),
        }
    }
}

/// Limit, remaining and reset of one rate bucket after the decision.
#[derive(Debug, Clone)]
pub(crate) struct RateView {
    kind: CheckKind,
    limit: u64,
    remaining: u64,
    reset: Duration,
}

/// The rate buckets among `checks`, as they stand after the decision (`charged`: with this
/// request's cost).
pub(crate) fn rate_views(checks: &[Check<'_>], charged: bool, window: Duration) -> Vec<RateView> {
    checks
        .iter()
        .filter(|c| matches!(c.kind, CheckKind::Requests | CheckKind::Tokens))
        .map(|c| {
            let level = if charged { c.value + c.cost } else { c.value };
            RateView {
                kind: c.kind,
                limit: c.limit as u64,
                remaining: (c.limit - level + EPS).floor().max(0.0) as u64,
                reset: units_to_duration(level, c.limit, window),
            }
        })
        .collect()
}

/// The `x-ratelimit-*` headers: for requests and for tokens, the most restrictive bucket
/// (least remaining; on a tie the later reset) among the key's and the model's.
pub(crate) fn headers_of(views: &[RateView]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (kind, names) in [
        (
            CheckKind::Requests,
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        ),
        (
            CheckKind::Tokens,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ),
    ] {
        let best = views
            .iter()
            .filter(|v| v.kind == kind)
            .min_by(|a, b| a.remaining.cmp(&b.remaining).then(b.reset.cmp(&a.reset)));
        if let Some(v) = best {
            out.push((names[0], v.limit.to_string()));
            out.push((names[1], v.remaining.to_string()));
            out.push((names[2], format_reset(v.reset)));
        }
    }
    out
}

/// [`headers_of`] the rate buckets among `checks`.
pub(crate) fn rate_headers(
    checks: &[Check<'_>],
    charged: bool,
    window: Duration,
) -> Vec<(&'static str, String)> {
    headers_of(&rate_views(checks, charged, window))
}

/// The rejection for checks of which at least one failed: it names the failed check that
/// takes longest to clear, and `retry_after` is that time (every failed check has cleared by
/// then, as far as anyone can tell now).
pub(crate) fn rejection(checks: &[Check<'_>], window: Duration, unix_secs: u64) -> Rejection {
    let worst = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| (c, c.wait(window, unix_secs)))
        .max_by_key(|(_, w)| *w);
    let Some((c, wait)) = worst else {
        // Not reached: callers pass at least one failed check.
        return Rejection::backend();
    };
    Rejection {
        kind: c.kind.limit_kind(),
        scope: Some(c.scope),
        name: c.name.to_string(),
        limit: c.describe(),
        retry_after: wait,
        rate_headers: rate_headers(checks, false, window),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: CheckKind, limit: f64, cost: f64, value: f64) -> Check<'static> {
        let mut c = Check {
            scope: Scope::Key,
            name: "k",
            kind,
            limit,
            cost,
            value,
            passed: false,
        };
        c.evaluate();
        c
    }

    #[test]
    fn bucket_arithmetic() {
        assert!(rate_fits(0.0, 10.0, 10.0));
        assert!(!rate_fits(0.5, 10.0, 10.0));
        assert!(
            rate_fits(0.0, 50.0, 10.0),
            "an oversized request fits an empty bucket"
        );
        assert!(
            !rate_fits(12.0, 0.0, 10.0),
            "a bucket in debt admits nothing"
        );
        assert_eq!(drained(10.0, 30_000_000, 10.0, 60_000_000), 5.0);
        assert_eq!(drained(1.0, 60_000_000, 10.0, 60_000_000), 0.0);
    }

    #[test]
    fn waits() {
        let w = Duration::from_secs(60);
        // 10 rpm, full: one request drains in 6s.
        let c = check(CheckKind::Requests, 10.0, 1.0, 10.0);
        assert!(!c.passed);
        assert_eq!(c.wait(w, 0), Duration::from_secs(6));
        // 1000 tpm at 900, asking 300: 200 must drain, 12s.
        let c = check(CheckKind::Tokens, 1000.0, 300.0, 900.0);
        assert_eq!(c.wait(w, 0), Duration::from_secs(12));
        // Oversized: waits for the whole bucket to drain.
        let c = check(CheckKind::Tokens, 1000.0, 5000.0, 500.0);
        assert_eq!(c.wait(w, 0), Duration::from_secs(30));
        let c = check(CheckKind::Daily, 5.0, 0.0, 5.0);
        assert!(!c.passed);
        assert_eq!(c.wait(w, 86_400 - 10), Duration::from_secs(10));
    }

    #[test]
    fn headers_pick_the_most_restrictive_bucket() {
        let w = Duration::from_secs(60);
        let mut key = check(CheckKind::Requests, 60.0, 1.0, 10.0);
        key.scope = Scope::Key;
        let mut model = check(CheckKind::Requests, 1000.0, 1.0, 995.0);
        model.scope = Scope::Model;
        let h = rate_headers(&[key, model], true, w);
        assert_eq!(
            h,
            vec![
                ("x-ratelimit-limit-requests", "1000".to_string()),
                ("x-ratelimit-remaining-requests", "4".to_string()),
                ("x-ratelimit-reset-requests", "59.76s".to_string()),
            ]
        );
    }
}

//! The dashboard's report (`GET /usage/report?since=24h`): totals, the same totals by key,
//! team, model and hour, latency and time-to-first-token percentiles, guardrail actions, the
//! latest failed requests and each key's budget burn — one JSON document from a few bounded
//! queries.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::query::{to_json, Group};
use super::store::{now_ms, Store, Timing, SAMPLE_ROWS};
use crate::limits::{period_start, LimitsConfig};

/// Failed requests the report lists at most.
const FAILURES: usize = 20;

/// The report of everything since `since_ms`.
pub fn report(
    store: &mut dyn Store,
    since_ms: u64,
    limits: &LimitsConfig,
) -> Result<Value, String> {
    let now = now_ms();
    let mut grouped = |by: &[Group]| -> Result<Value, String> {
        let rows = store.summary(since_ms, by)?;
        Ok(to_json(by, &rows))
    };
    let totals = grouped(&[])?
        .as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or_else(|| json!({}));
    let by_key = grouped(&[Group::Key])?;
    let by_team = grouped(&[Group::Team])?;
    let by_model = grouped(&[Group::Model])?;
    let by_hour = grouped(&[Group::Hour])?;
    let by_hour_key = grouped(&[Group::Hour, Group::Key])?;
    let by_hour_model = grouped(&[Group::Hour, Group::Model])?;
    let latency = percentiles(&store.timings(since_ms, SAMPLE_ROWS)?);
    let actions = guardrail_counts(&store.guardrail_actions(since_ms, SAMPLE_ROWS)?);
    let failures: Vec<Value> = store
        .recent(since_ms, FAILURES, true)?
        .into_iter()
        .map(|r| {
            json!({
                "ts_ms": r.ts_ms, "request_id": r.request_id, "key": r.key, "team": r.team,
                "model": r.model,
                "provider": r.provider, "api": r.api, "stream": r.stream, "status": r.status,
                "error": r.error, "limit": r.limit, "latency_ms": r.latency_ms,
                "attempts": r.attempts,
            })
        })
        .collect();
    Ok(json!({
        "since_ms": since_ms,
        "now_ms": now,
        "totals": totals,
        "by_key": by_key,
        "by_team": by_team,
        "by_model": by_model,
        "by_hour": by_hour,
        "by_hour_key": by_hour_key,
        "by_hour_model": by_hour_model,
        "latency": latency,
        "guardrails": actions,
        "failures": failures,
        "budgets": budgets(store, limits, now)?,
    }))
}

/// Spend in the current UTC day and month against each key's budgets. The ledger's costs
/// and the budgets come from the same prices.
fn budgets(store: &mut dyn Store, limits: &LimitsConfig, now: u64) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (monthly, period) in [(false, "daily"), (true, "monthly")] {
        let budgeted: Vec<(&String, f64)> = limits
            .keys
            .iter()
            .filter_map(|(k, set)| {
                let b = if monthly {
                    set.monthly_usd
                } else {
                    set.daily_usd
                };
                b.map(|b| (k, b))
            })
            .collect();
        if budgeted.is_empty() {
            continue;
        }
        let start = period_start(monthly, now / 1000) * 1000;
        let spent: BTreeMap<String, f64> = store
            .summary(start, &[Group::Key])?
            .into_iter()
            .map(|r| (r.groups.into_iter().next().unwrap_or_default(), r.cost_usd))
            .collect();
        for (key, budget) in budgeted {
            out.push(json!({
                "key": key,
                "period": period,
                "budget_usd": budget,
                "spent_usd": spent.get(key.as_str()).copied().unwrap_or(0.0),
            }));
        }
    }
    Ok(out)
}

/// Stored actions (`direction:guardrail:action:kinds`) counted per direction, guardrail and
/// action, with the kinds they found.
fn guardrail_counts(stored: &[String]) -> Vec<Value> {
    let mut counts = BTreeMap::<(&str, &str, &str), (u64, BTreeMap<&str, u64>)>::new();
    for a in stored {
        let mut f = a.splitn(4, ':');
        let (direction, guardrail) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let (action, kinds) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        let entry = counts.entry((direction, guardrail, action)).or_default();
        entry.0 += 1;
        for k in kinds.split('+').filter(|k| !k.is_empty()) {
            *entry.1.entry(k).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((direction, guardrail, action), (count, kinds))| {
            json!({
                "direction": direction, "guardrail": guardrail, "action": action,
                "count": count, "kinds": kinds,
            })
        })
        .collect()
}

/// p50, p95 and p99 of latency and time to first token of requests that reached a provider:
/// all models first (`model: null`), then each model.
fn percentiles(timings: &[Timing]) -> Vec<Value> {
    let mut by_model = BTreeMap::<Option<&str>, Vec<&Timing>>::new();
    for t in timings.iter().filter(|t| t.model.is_some()) {
        by_model.entry(t.model.as_deref()).or_default().push(t);
    }
    let all: Vec<&Timing> = timings.iter().collect();
    std::iter::once((None, &all))
        .chain(by_model.iter().map(|(m, ts)| (Some(*m), ts)))
        .map(|(model, ts)| {
            let latency: Vec<u64> = ts.iter().map(|t| t.latency_ms).collect();
            let ttft: Vec<u64> = ts.iter().filter_map(|t| t.ttft_ms).collect();
            json!({
                "model": model.flatten(),
                "requests": ts.len(),
                "latency_ms": quantiles(latency),
                "ttft_ms": quantiles(ttft),
            })
        })
        .collect()
}

/// Nearest-rank p50, p95 and p99 (nulls when there are no values).
fn quantiles(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return json!({"p50": null, "p95": null, "p99": null});
    }
    v.sort_unstable();
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    json!({"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrail_actions_are_counted_with_their_kinds() {
        let stored = [
            "output:no-secrets:redact:aws_access_key+github_token",
            "output:no-secrets:redact:aws_access_key",
            "input:codenames:block:regex",
            "input:old-format",
        ]
        .map(String::from);
        let v = guardrail_counts(&stored);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(
            v[0],
            json!({"direction": "input", "guardrail": "codenames", "action": "block",
                   "count": 1, "kinds": {"regex": 1}})
        );
        assert_eq!(v[1]["guardrail"], "old-format");
        assert_eq!(v[2]["count"], 2);
        assert_eq!(
            v[2]["kinds"],
            json!({"aws_access_key": 2, "github_token": 1})
        );
    }

    #[test]
    fn nearest_rank_quantiles() {
        let q = quantiles((1..=100).collect());
        assert_eq!(q, json!({"p50": 50, "p95": 95, "p99": 99}));
        assert_eq!(quantiles(vec![7]), json!({"p50": 7, "p95": 7, "p99": 7}));
        assert_eq!(quantiles(vec![])["p50"], Value::Null);
    }

    #[test]
    fn percentiles_overall_then_per_model() {
        let t = |m: &str, l: u64, f: Option<u64>| Timing {
            model: Some(m.into()),
            latency_ms: l,
            ttft_ms: f,
        };
        let v = percentiles(&[t("a", 10, Some(5)), t("b", 30, None), t("a", 20, None)]);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["model"], Value::Null);
        assert_eq!(v[0]["requests"], 3);
        assert_eq!(v[0]["latency_ms"]["p99"], 30);
        assert_eq!(v[1]["model"], "a");
        assert_eq!(v[1]["ttft_ms"]["p50"], 5);
        assert_eq!(v[2]["ttft_ms"]["p50"], Value::Null);
    }
}

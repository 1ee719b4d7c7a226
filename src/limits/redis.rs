//! The Redis backend: limit state shared by every sluice instance that uses the same server.
//!
//! Keys (`<s>` is `k:<key name>` or `m:<model name>`, with `%`, `:`, `{` and `}` escaped):
//!
//! | key | type | content | expiry |
//! |---|---|---|---|
//! | `sluice:rpm:<s>`, `sluice:tpm:<s>` | hash | `l` bucket level, `t` last update (µs, Redis clock) | when drained, + 1s (30 days at most) |
//! | `sluice:conc:<s>` | sorted set | request id → lease expiry (ms, Redis clock) | 2 × lease |
//! | `sluice:budget:<s>:d:<YYYY-MM-DD>` | string | USD spent that UTC day | 2 days |
//! | `sluice:budget:<s>:m:<YYYY-MM>` | string | USD spent that UTC month | 62 days |
//!
//! One Lua script per admission reads every bucket of the key and the model on Redis' clock
//! (`TIME`), so that all instances agree, and charges them only if all pass. A concurrency slot
//! is a lease that a task renews every third of the lease while the permit lives; slots of a
//! crashed instance lapse and are pruned by the next admission. Budget periods are named from
//! this host's UTC clock. Scripts run with EVALSHA, falling back to loading them after a Redis
//! restart; every call runs under `redis_timeout`. The connection is made on first use and
//! the connection manager reconnects by itself after errors; its reconnection tasks run on the
//! Tokio runtime of that first use, which must therefore live as long as the limiter (as
//! Pingora's service runtimes do).
//!
//! When an operation fails, admission follows `on_backend_error`; a failed settlement leaves
//! the estimate charged and the slot to expire with its lease.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{FromRedisValue, Script, ScriptInvocation};
use tokio::task::JoinHandle;

use super::decide::{charge_for, Check, CheckKind};
use super::time::{period_at, unix_now_us, Period};
use super::{
    BackendDown, Decision, Grant, LimitCounters, LimiterError, LimitsConfig, OnBackendError, Scope,
    Target,
};
use crate::core::redis::{describe, LazyRedis};
use crate::core::secret::Secret;

/// Checks every item and charges them all only if all pass.
///
/// KEYS: one per item. ARGV[1]: request id, ARGV[2]: lease (ms); then four per item:
/// `r` rate bucket (limit, cost, window µs) | `c` concurrency (max) | `b` budget (USD).
/// Returns `{admitted, value1, passed1, value2, passed2, ...}` as strings, values being the
/// state before this request.
const ADMIT: &str = r#"
local function drain_ms(level, window, limit)
  local ms = math.ceil(level * window / limit / 1000) + 1000
  if not (ms <= 2592000000) then ms = 2592000000 end
  return string.format('%.0f', ms)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local lease = tonumber(ARGV[2])
local values, oks, all = {}, {}, true
for i = 1, #KEYS do
  local o = 2 + (i - 1) * 4
  local kind, a = ARGV[o + 1], tonumber(ARGV[o + 2])
  local v, ok
  if kind == 'r' then
    local cost, window = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
    local h = redis.call('HMGET', KEYS[i], 'l', 't')
    v = tonumber(h[1]) or 0
    local at = tonumber(h[2]) or now
    if now > at then v = v - (now - at) * a / window end
    if v < 0 then v = 0 end
    if v > 2 * a then v = 2 * a end
    ok = (v + cost <= a + 1e-9) or (v <= 1e-9)
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.0f', now_ms))
    v = redis.call('ZCARD', KEYS[i])
    ok = v < a
  else
    v = tonumber(redis.call('GET', KEYS[i])) or 0
    ok = v < a
  end
  values[i] = v
  oks[i] = ok
  if not ok then all = false end
end
local out = {all and '1' or '0'}
for i = 1, #KEYS do
  out[#out + 1] = string.format('%.17g', values[i])
  out[#out + 1] = oks[i] and '1' or '0'
end
if not all then return out end
for i = 1, #KEYS do
  local o = 2 + (i - 1) * 4
  local kind, a = ARGV[o + 1], tonumber(ARGV[o + 2])
  if kind == 'r' then
    local cost, window = tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
    local level = values[i] + cost
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.0f', now))
    redis.call('PEXPIRE', KEYS[i], drain_ms(level, window, a))
  elseif kind == 'c' then
    redis.call('ZADD', KEYS[i], string.format('%.0f', now_ms + lease), ARGV[1])
    redis.call('PEXPIRE', KEYS[i], string.format('%.0f', lease * 2))
  end
end
return out
"#;

/// Settles a request. KEYS: one per item. ARGV[1]: request id; then four per item:
/// `t` token correction (limit, window µs, delta) | `c` release | `b` budget charge (USD, ttl s).
const SETTLE: &str = r#"
local function drain_ms(level, window, limit)
  local ms = math.ceil(level * window / limit / 1000) + 1000
  if not (ms <= 2592000000) then ms = 2592000000 end
  return string.format('%.0f', ms)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local o = 1 + (i - 1) * 4
  local kind = ARGV[o + 1]
  if kind == 't' then
    local limit, window, delta = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])
    local h = redis.call('HMGET', KEYS[i], 'l', 't')
    local v = tonumber(h[1]) or 0
    local at = tonumber(h[2]) or now
    if now > at then v = v - (now - at) * limit / window end
    if v < 0 then v = 0 end
    v = v + delta
    if v < 0 then v = 0 end
    if v > 2 * limit then v = 2 * limit end
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', v), 't', string.format('%.0f', now))
    redis.call('PEXPIRE', KEYS[i], drain_ms(v, window, limit))
  elseif kind == 'c' then
    redis.call('ZREM', KEYS[i], ARGV[1])
  else
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[o + 2])
    redis.call('EXPIRE', KEYS[i], ARGV[o + 3])
  end
end
return 1
"#;

/// Extends the lease of request ARGV[1] by ARGV[2] ms in every sorted set of KEYS.
const RENEW: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', string.format('%.0f', now_ms + lease), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], string.format('%.0f', lease * 2))
end
return 1
"#;

const DAY_TTL_SECS: u64 = 2 * 86_400;
const MONTH_TTL_SECS: u64 = 62 * 86_400;
pub(crate) struct RedisBackend {
    redis: LazyRedis,
    timeout: Duration,
    lease_ms: u64,
    window_us: u64,
    mode: OnBackendError,
    healthy: AtomicBool,
    counters: Arc<LimitCounters>,
    instance: String,
    seq: AtomicU64,
    admit: Script,
    settle: Script,
    renew: Script,
}

/// `k:<name>` or `m:<name>`, escaped so that names cannot collide with the key structure.
fn scope_id(scope: Scope, name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push_str(match scope {
        Scope::Key => "k:",
        Scope::Model => "m:",
    });
    for c in name.chars() {
        match c {
            '%' => s.push_str("%25"),
            ':' => s.push_str("%3A"),
            '{' => s.push_str("%7B"),
            '}' => s.push_str("%7D"),
            c => s.push(c),
        }
    }
    s
}

/// One item of the admission script: a key, its four arguments, and the check it makes.
struct Item {
    kind: CheckKind,
    key: String,
    args: [String; 4],
    limit: f64,
    cost: f64,
}

/// Reads the admission script's answer into `checks` (the state each found and whether it
/// passed); returns whether the request was admitted.
fn read_outcome(out: &[String], checks: &mut [Check<'_>]) -> bool {
    for (i, c) in checks.iter_mut().enumerate() {
        c.value = out
            .get(1 + 2 * i)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        c.passed = out.get(2 + 2 * i).map(String::as_str) == Some("1");
    }
    out.first().map(String::as_str) == Some("1")
}

impl RedisBackend {
    pub(crate) fn new(
        cfg: &LimitsConfig,
        url: &Secret,
        counters: Arc<LimitCounters>,
    ) -> Result<Self, LimiterError> {
        let redis = LazyRedis::new(url, cfg.redis_timeout, 2).ok_or(LimiterError::RedisUrl)?;
        Ok(RedisBackend {
            redis,
            timeout: cfg.redis_timeout,
            lease_ms: (cfg.lease.as_millis() as u64).max(30),
            window_us: (cfg.window.as_micros() as u64).max(1),
            mode: cfg.on_backend_error,
            healthy: AtomicBool::new(true),
            counters,
            instance: format!("{:016x}", rand::random::<u64>()),
            seq: AtomicU64::new(0),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            renew: Script::new(RENEW),
        })
    }

    /// Runs a script under the timeout, recording failures and recoveries.
    async fn call<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T, BackendDown> {
        let run = async {
            let mut conn = self.redis.conn().await?;
            inv.invoke_async::<T>(&mut conn)
                .await
                .map_err(|e| describe(&e))
        };
        // Boxed: a Redis exchange's state is kilobytes, which every request's future would
        // otherwise carry (and copy at each await above it), Redis configured or not.
        let result = match tokio::time::timeout(self.timeout, Box::pin(run)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_string()),
        };
        match result {
            Ok(v) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    log::warn!("rate-limit backend (redis) is reachable again");
                }
                Ok(v)
            }
            Err(reason) => {
                self.counters.backend_errors.fetch_add(1, Ordering::Relaxed);
                if self.healthy.swap(false, Ordering::AcqRel) {
                    let mode = match self.mode {
                        OnBackendError::FailOpen => "admitting requests without limits (fail_open)",
                        OnBackendError::FailClosed => "refusing requests (fail_closed)",
                    };
                    log::warn!("rate-limit backend (redis) is unavailable ({reason}); {mode}");
                }
                Err(BackendDown)
            }
        }
    }

    pub(crate) async fn admit<'a>(
        self: &Arc<Self>,
        targets: &[Target<'a>],
        estimated: u64,
    ) -> Result<Decision<'a>, BackendDown> {
        let unix = unix_now_us() / 1_000_000;
        let (_, day, _) = period_at(Period::Day, unix);
        let (_, month, _) = period_at(Period::Month, unix);
        let id = format!(
            "{}-{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let mut inv = self.admit.prepare_invoke();
        inv.arg(&id).arg(self.lease_ms);
        let mut checks = Vec::new();
        let mut grant = RedisGrant {
            backend: Arc::clone(self),
            id: id.clone(),
            tokens: Vec::new(),
            conc: Vec::new(),
            budgets: Vec::new(),
            renew: None,
        };
        for t in targets {
            for item in self.scope_items(t, estimated, (&day, &month), &mut grant) {
                inv.key(item.key);
                for a in item.args {
                    inv.arg(a);
                }
                checks.push(Check {
                    scope: t.scope,
                    name: t.name,
                    kind: item.kind,
                    limit: item.limit,
                    cost: item.cost,
                    value: 0.0,
                    passed: false,
                });
            }
        }
        let out: Vec<String> = self.call(&inv).await?;
        if !read_outcome(&out, &mut checks) {
            // Nothing was charged: the grant only holds names.
            grant.conc.clear();
            return Ok(Decision::Refuse(checks, unix));
        }
        if !grant.conc.is_empty() {
            grant.renew = Some(self.spawn_renewal(&grant));
        }
        Ok(Decision::Admit(Grant::Redis(grant), checks))
    }

    /// The script items for every limit of `t`, in the order the checks are made (requests,
    /// tokens, concurrency, daily and monthly budget); what they would charge is noted in
    /// `grant`. `day` and `month` name the current UTC periods.
    fn scope_items(
        &self,
        t: &Target<'_>,
        estimated: u64,
        (day, month): (&str, &str),
        grant: &mut RedisGrant,
    ) -> Vec<Item> {
        let s = scope_id(t.scope, t.name);
        let w = self.window_us;
        let set = t.set;
        let mut items = Vec::with_capacity(5);
        if let Some(l) = set.requests_per_minute {
            let args = ["r".into(), l.to_string(), "1".into(), w.to_string()];
            items.push(Item {
                kind: CheckKind::Requests,
                key: format!("sluice:rpm:{s}"),
                args,
                limit: l as f64,
                cost: 1.0,
            });
        }
        if let Some(l) = set.tokens_per_minute {
            let key = format!("sluice:tpm:{s}");
            let charge = charge_for(estimated, l);
            let args = ["r".into(), l.to_string(), charge.to_string(), w.to_string()];
            grant.tokens.push((key.clone(), l, charge));
            items.push(Item {
                kind: CheckKind::Tokens,
                key,
                args,
                limit: l as f64,
                cost: charge as f64,
            });
        }
        if let Some(m) = set.max_concurrent {
            let key = format!("sluice:conc:{s}");
            let args = ["c".into(), m.to_string(), "0".into(), "0".into()];
            grant.conc.push(key.clone());
            items.push(Item {
                kind: CheckKind::Concurrency,
                key,
                args,
                limit: m as f64,
                cost: 1.0,
            });
        }
        for (kind, budget, period, name) in [
            (CheckKind::Daily, set.daily_usd, "d", day),
            (CheckKind::Monthly, set.monthly_usd, "m", month),
        ] {
            if let Some(b) = budget {
                let args = ["b".into(), b.to_string(), "0".into(), "0".into()];
                items.push(Item {
                    kind,
                    key: format!("sluice:budget:{s}:{period}:{name}"),
                    args,
                    limit: b,
                    cost: 0.0,
                });
            }
        }
        if set.has_budget() {
            grant.budgets.push(s);
        }
        items
    }

    fn spawn_renewal(self: &Arc<Self>, grant: &RedisGrant) -> JoinHandle<()> {
        let b = Arc::clone(self);
        let keys = grant.conc.clone();
        let id = grant.id.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis((b.lease_ms / 3).max(10));
            loop {
                tokio::time::sleep(every).await;
                let mut inv = b.renew.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(&id).arg(b.lease_ms);
                let _ = b.call::<i64>(&inv).await;
            }
        })
    }
}

/// What a Redis admission must settle.
pub(crate) struct RedisGrant {
    backend: Arc<RedisBackend>,
    id: String,
    /// Token buckets, their limits and what this request charged to each.
    tokens: Vec<(String, u64, u64)>,
    /// Concurrency sets holding this request's lease.
    conc: Vec<String>,
    /// Scope ids with a spend budget.
    budgets: Vec<String>,
    renew: Option<JoinHandle<()>>,
}

impl RedisGrant {
    /// Corrects token buckets to the `actual` tokens used (each capped at its bucket's limit;
    /// `None` keeps the estimate), charges `cost_usd`, releases the slots.
    pub(crate) async fn settle(mut self, actual: Option<u64>, cost_usd: f64) {
        if let Some(h) = self.renew.take() {
            h.abort();
        }
        let b = &self.backend;
        let mut inv = b.settle.prepare_invoke();
        inv.arg(&self.id);
        let mut items = 0;
        for (key, limit, charged) in &self.tokens {
            let Some(actual) = actual else { break };
            let delta = charge_for(actual, *limit) as i64 - *charged as i64;
            if delta != 0 {
                inv.key(key);
                inv.arg("t").arg(limit).arg(b.window_us).arg(delta);
                items += 1;
            }
        }
        for key in &self.conc {
            inv.key(key);
            inv.arg("c").arg(0).arg(0).arg(0);
            items += 1;
        }
        if cost_usd > 0.0 && cost_usd.is_finite() {
            let unix = unix_now_us() / 1_000_000;
            let (_, day, _) = period_at(Period::Day, unix);
            let (_, month, _) = period_at(Period::Month, unix);
            for s in &self.budgets {
                for (key, ttl) in [
                    (format!("sluice:budget:{s}:d:{day}"), DAY_TTL_SECS),
                    (format!("sluice:budget:{s}:m:{month}"), MONTH_TTL_SECS),
                ] {
                    inv.key(key);
                    inv.arg("b").arg(format!("{cost_usd:.12}")).arg(ttl).arg(0);
                    items += 1;
                }
            }
        }
        if items > 0 {
            let _ = b.call::<i64>(&inv).await;
        }
        self.conc.clear();
    }
}

impl Drop for RedisGrant {
    fn drop(&mut self) {
        if let Some(h) = self.renew.take() {
            h.abort();
        }
    }
}

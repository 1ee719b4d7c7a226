//! The in-process backend: one mutex-guarded state per key and per model, created when the
//! limiter is built (keys and models come from the config), so there is no global lock: an
//! admission locks its key's state, then its model's (always in that order, so two admissions
//! never wait on each other crosswise), checks everything and charges everything before it
//! unlocks. Exact, but each sluice instance counts on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::decide::{charge_for, drained, max_level, Check, CheckKind};
use super::time::{period_at, Clock, Period};
use super::{Decision, Grant, LimitSet, LimitsConfig, Scope, Target};
use crate::core::sync::lock;

#[derive(Debug, Default)]
struct Bucket {
    level: f64,
    at_us: u64,
}

impl Bucket {
    /// The level now. A level above twice the limit (debt from before charges were capped
    /// at the limit) is read as twice the limit: no bucket is ever more than one window in
    /// debt.
    fn level_at(&self, now_us: u64, limit: u64, window_us: u64) -> f64 {
        drained(
            self.level,
            now_us.saturating_sub(self.at_us),
            limit as f64,
            window_us,
        )
        .min(max_level(limit as f64))
    }

    fn set(&mut self, level: f64, now_us: u64) {
        self.level = level.max(0.0);
        self.at_us = self.at_us.max(now_us);
    }
}

/// Spend in one calendar period.
#[derive(Debug, Default)]
struct Spent {
    period: u64,
    usd: f64,
}

impl Spent {
    fn at(&mut self, period: u64) -> &mut f64 {
        if self.period != period {
            self.period = period;
            self.usd = 0.0;
        }
        &mut self.usd
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Bucket,
    tokens: Bucket,
    in_flight: u64,
    day: Spent,
    month: Spent,
}

type Shared = Arc<Mutex<State>>;

pub(crate) struct MemoryBackend {
    clock: Clock,
    window_us: u64,
    keys: HashMap<String, Shared>,
    models: HashMap<String, Shared>,
}

/// What one scope of an admission holds until settlement.
pub(crate) struct Hold {
    state: Shared,
    /// The token bucket's limit and what this request charged to it.
    tokens: Option<(u64, u64)>,
    concurrent: bool,
    budget: bool,
}

pub(crate) struct MemoryGrant {
    holds: Vec<Hold>,
}

fn states(sets: &std::collections::BTreeMap<String, LimitSet>) -> HashMap<String, Shared> {
    sets.iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(n, _)| (n.clone(), Shared::default()))
        .collect()
}

/// Charges the limits of `set` to its locked state `st`, taking their passed checks from `it`
/// in the order [`MemoryBackend::check_scope`] made them; returns what settlement must undo
/// or correct.
fn charge_scope(
    set: &LimitSet,
    shared: &Shared,
    st: &mut State,
    it: &mut std::slice::Iter<'_, Check<'_>>,
    now: u64,
    estimated: u64,
) -> Hold {
    if set.requests_per_minute.is_some() {
        if let Some(c) = it.next() {
            st.requests.set(c.value + c.cost, now);
        }
    }
    if set.tokens_per_minute.is_some() {
        if let Some(c) = it.next() {
            st.tokens.set(c.value + c.cost, now);
        }
    }
    if set.max_concurrent.is_some() {
        st.in_flight += 1;
        it.next();
    }
    for _ in [set.daily_usd, set.monthly_usd].iter().flatten() {
        it.next();
    }
    Hold {
        state: Arc::clone(shared),
        tokens: set.tokens_per_minute.map(|l| (l, charge_for(estimated, l))),
        concurrent: set.max_concurrent.is_some(),
        budget: set.has_budget(),
    }
}

impl MemoryBackend {
    pub(crate) fn new(cfg: &LimitsConfig, clock: Clock) -> Self {
        MemoryBackend {
            clock,
            window_us: (cfg.window.as_micros() as u64).max(1),
            keys: states(&cfg.keys),
            models: states(&cfg.models),
        }
    }

    /// The backend for a new configuration: a key or model that is still configured keeps its
    /// state (its buckets, spend and concurrency slots); new ones start empty. Permits of
    /// requests admitted before hold their states and settle into them.
    pub(crate) fn reconfigured(&self, cfg: &LimitsConfig) -> Self {
        let keep = |old: &HashMap<String, Shared>, new: HashMap<String, Shared>| {
            new.into_iter()
                .map(|(name, fresh)| {
                    let state = old.get(&name).cloned().unwrap_or(fresh);
                    (name, state)
                })
                .collect()
        };
        MemoryBackend {
            clock: self.clock.clone(),
            window_us: (cfg.window.as_micros() as u64).max(1),
            keys: keep(&self.keys, states(&cfg.keys)),
            models: keep(&self.models, states(&cfg.models)),
        }
    }

    fn state(&self, t: &Target<'_>) -> Option<&Shared> {
        match t.scope {
            Scope::Key => self.keys.get(t.name),
            Scope::Model => self.models.get(t.name),
        }
    }

    pub(crate) fn admit<'a>(&self, targets: &[Target<'a>], estimated: u64) -> Decision<'a> {
        let found: Vec<(&Target<'a>, &Shared)> = targets
            .iter()
            .filter_map(|t| self.state(t).map(|s| (t, s)))
            .collect();
        // Targets come key first, then model: the lock order.
        let mut guards: Vec<MutexGuard<'_, State>> = found.iter().map(|(_, s)| lock(s)).collect();
        let now = self.clock.mono_us();
        let unix = self.clock.unix_us() / 1_000_000;
        let (day, _, _) = period_at(Period::Day, unix);
        let (month, _, _) = period_at(Period::Month, unix);
        let mut checks = Vec::with_capacity(found.len() * 5);
        for ((t, _), st) in found.iter().zip(guards.iter_mut()) {
            self.check_scope(t, st, now, (day, month), estimated, &mut checks);
        }
        if checks.iter().any(|c| !c.passed) {
            return Decision::Refuse(checks, unix);
        }
        // Everything passed: charge everything while still holding the locks.
        let mut holds = Vec::with_capacity(found.len());
        let mut it = checks.iter();
        for ((t, shared), st) in found.iter().zip(guards.iter_mut()) {
            holds.push(charge_scope(t.set, shared, st, &mut it, now, estimated));
        }
        drop(guards);
        Decision::Admit(Grant::Memory(MemoryGrant { holds }), checks)
    }

    /// Evaluates every limit of `t` against its locked state `st`, adding one check per
    /// limit to `checks`, in order: requests, tokens, concurrency, daily and monthly budget.
    fn check_scope<'a>(
        &self,
        t: &Target<'a>,
        st: &mut State,
        now: u64,
        (day, month): (u64, u64),
        estimated: u64,
        checks: &mut Vec<Check<'a>>,
    ) {
        let mut add = |kind, limit: f64, cost: f64, value: f64| {
            let mut c = Check {
                scope: t.scope,
                name: t.name,
                kind,
                limit,
                cost,
                value,
                passed: false,
            };
            c.evaluate();
            checks.push(c);
        };
        let set = t.set;
        if let Some(l) = set.requests_per_minute {
            add(
                CheckKind::Requests,
                l as f64,
                1.0,
                st.requests.level_at(now, l, self.window_us),
            );
        }
        if let Some(l) = set.tokens_per_minute {
            add(
                CheckKind::Tokens,
                l as f64,
                charge_for(estimated, l) as f64,
                st.tokens.level_at(now, l, self.window_us),
            );
        }
        if let Some(m) = set.max_concurrent {
            add(CheckKind::Concurrency, m as f64, 1.0, st.in_flight as f64);
        }
        if let Some(b) = set.daily_usd {
            add(CheckKind::Daily, b, 0.0, *st.day.at(day));
        }
        if let Some(b) = set.monthly_usd {
            add(CheckKind::Monthly, b, 0.0, *st.month.at(month));
        }
    }

    /// Corrects token buckets to the `actual` tokens used (each capped at its bucket's limit;
    /// `None` keeps the estimate), charges `cost_usd` to budgets, frees the slots.
    pub(crate) fn settle(&self, grant: MemoryGrant, actual: Option<u64>, cost_usd: f64) {
        let now = self.clock.mono_us();
        let unix = self.clock.unix_us() / 1_000_000;
        let (day, _, _) = period_at(Period::Day, unix);
        let (month, _, _) = period_at(Period::Month, unix);
        for h in grant.holds {
            let mut st = lock(&h.state);
            if let (Some((l, charged)), Some(actual)) = (h.tokens, actual) {
                let delta = charge_for(actual, l) as f64 - charged as f64;
                if delta != 0.0 {
                    let level = st.tokens.level_at(now, l, self.window_us) + delta;
                    st.tokens.set(level, now);
                }
            }
            if h.concurrent {
                st.in_flight = st.in_flight.saturating_sub(1);
            }
            if h.budget && cost_usd > 0.0 {
                *st.day.at(day) += cost_usd;
                *st.month.at(month) += cost_usd;
            }
        }
    }
}

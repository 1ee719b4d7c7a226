//! The retry budget: retries may be at most a share of requests (plus a small allowance per
//! second), so a provider outage is not multiplied by retries.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::RetrySettings;

/// One retry costs this many units; a request earns `ratio × UNIT`.
const UNIT: i64 = 1000;
/// At most this many retries can be saved up.
const MAX_SAVED: i64 = 1000 * UNIT;

pub struct RetryBudget {
    balance: AtomicI64,
    per_request: i64,
    min_per_second: u32,
    second: AtomicU64,
    used_this_second: AtomicU32,
    denied: AtomicU64,
    epoch: Instant,
}

impl RetryBudget {
    pub fn new(s: &RetrySettings) -> Self {
        RetryBudget {
            balance: AtomicI64::new(0),
            per_request: (s.budget_ratio * UNIT as f64).round() as i64,
            min_per_second: s.budget_min_per_second,
            second: AtomicU64::new(0),
            used_this_second: AtomicU32::new(0),
            denied: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// A new request arrived.
    pub fn on_request(&self) {
        let after = self.balance.fetch_add(self.per_request, Ordering::Relaxed) + self.per_request;
        if after > MAX_SAVED {
            self.balance.fetch_min(MAX_SAVED, Ordering::Relaxed);
        }
    }

    /// Takes a retry from the budget; false when the budget is spent.
    pub fn try_retry(&self) -> bool {
        let now = self.epoch.elapsed().as_secs() + 1;
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.used_this_second.store(0, Ordering::Relaxed);
        }
        if self.used_this_second.fetch_add(1, Ordering::Relaxed) < self.min_per_second {
            return true;
        }
        let taken = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= UNIT).then_some(b - UNIT)
            })
            .is_ok();
        if !taken {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    pub fn snapshot(&self) -> Value {
        json!({
            "saved_retries": self.balance.load(Ordering::Relaxed) / UNIT,
            "denied": self.denied.load(Ordering::Relaxed),
        })
    }
}

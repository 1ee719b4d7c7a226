//! The limiter's counters as Prometheus metrics: a [`LimitsCollector`] to register in the
//! metrics registry. Labels come from fixed sets only (`limit`, `scope`).
//!
//! * `sluice_rate_limit_rejections_total{limit, scope}` — requests refused, by limit
//!   (`requests`, `tokens`, `concurrency`, `budget`, `backend`) and scope (`key`, `model`,
//!   `none` for the backend);
//! * `sluice_rate_limit_backend_errors_total` — failed or timed-out Redis operations;
//! * `sluice_rate_limit_fail_open_total` — requests admitted unlimited under `fail_open`.

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, Opts};

use super::LimitCounters;
use crate::core::sync::lock;

/// Reads the limiter's counters at every scrape.
pub struct LimitsCollector {
    counters: Arc<LimitCounters>,
    rejections: IntCounterVec,
    backend_errors: IntCounter,
    fail_open: IntCounter,
    /// Serializes scrapes, which bring the Prometheus counters up to the atomics.
    sync: Mutex<()>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("sluice")
}

impl LimitsCollector {
    pub(crate) fn new(counters: Arc<LimitCounters>) -> Self {
        LimitsCollector {
            counters,
            rejections: IntCounterVec::new(
                opts(
                    "rate_limit_rejections_total",
                    "Requests refused by the limits engine, by limit and scope.",
                ),
                &["limit", "scope"],
            )
            .expect("valid metric"),
            backend_errors: IntCounter::with_opts(opts(
                "rate_limit_backend_errors_total",
                "Failed or timed-out operations on the rate-limit backend.",
            ))
            .expect("valid metric"),
            fail_open: IntCounter::with_opts(opts(
                "rate_limit_fail_open_total",
                "Requests admitted without limits because the backend failed (fail_open).",
            ))
            .expect("valid metric"),
            sync: Mutex::new(()),
        }
    }
}

fn catch_up(c: &IntCounter, value: u64) {
    let have = c.get();
    if value > have {
        c.inc_by(value - have);
    }
}

impl Collector for LimitsCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.rejections.desc();
        d.extend(self.backend_errors.desc());
        d.extend(self.fail_open.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _guard = lock(&self.sync);
        for (kind, scope, n) in self.counters.all_rejections() {
            let scope = scope.map_or("none", |s| s.as_str());
            catch_up(
                &self.rejections.with_label_values(&[kind.as_str(), scope]),
                n,
            );
        }
        catch_up(&self.backend_errors, self.counters.backend_errors());
        catch_up(&self.fail_open, self.counters.fail_open_admits());
        let mut out = self.rejections.collect();
        out.extend(self.backend_errors.collect());
        out.extend(self.fail_open.collect());
        out
    }
}

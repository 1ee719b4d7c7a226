//! [`Permit`]: what an admitted request holds until it is settled or dropped.

use std::fmt;
use std::sync::Arc;

use super::decide::RateView;
use super::{decide, Backend, Grant, Inner, Price, Usage};

/// An admitted request. Settle it with the usage when the answer is complete; dropping it
/// instead (client disconnect) releases its concurrency slot and keeps the estimate charged.
#[must_use = "a permit holds a concurrency slot until settled or dropped"]
pub struct Permit {
    inner: Arc<Inner>,
    /// One per admission stage that charged something.
    grants: Vec<Grant>,
    /// The rate buckets this permit was charged to, for its headers.
    rates: Vec<RateView>,
    estimated_tokens: u64,
    price: Option<Price>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("estimated_tokens", &self.estimated_tokens)
            .finish_non_exhaustive()
    }
}

impl Permit {
    pub(super) fn new(inner: Arc<Inner>, estimated_tokens: u64, price: Option<Price>) -> Permit {
        Permit {
            inner,
            grants: Vec::new(),
            rates: Vec::new(),
            estimated_tokens,
            price,
        }
    }

    /// Sets the estimate and the price once the model is known (the second admission stage).
    pub(super) fn set_estimate(&mut self, estimated_tokens: u64, price: Option<Price>) {
        self.estimated_tokens = estimated_tokens;
        self.price = price;
    }

    /// The price settlement charges: the deployment's that answered, once known.
    pub fn reprice(&mut self, price: Price) {
        self.price = Some(price);
    }

    /// Adds what an admission stage charged: its grant and the rate buckets it was charged to.
    pub(super) fn charged(&mut self, grant: Grant, rates: Vec<RateView>) {
        self.grants.push(grant);
        self.rates.extend(rates);
    }

    /// The `x-ratelimit-*` headers for the answer (the most restrictive of the key's and the
    /// model's buckets; none when no rate limit applies).
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        decide::headers_of(&self.rates).into_iter()
    }

    /// Tokens used and cost for `usage`; with no usage, no token correction (the estimate
    /// stays charged) and the estimate's cost at the higher of the two prices.
    fn charges(&self, usage: Option<Usage>) -> (Option<u64>, f64) {
        match usage {
            Some(u) => (
                Some(u.prompt.saturating_add(u.completion)),
                self.price.map_or(0.0, |p| p.cost(&u)),
            ),
            None => {
                let cost = self.price.map_or(0.0, |p| {
                    p.input.max(p.output) * self.estimated_tokens as f64 / 1e6
                });
                (None, cost)
            }
        }
    }

    fn release(&mut self, usage: Option<Usage>) -> Vec<(Grant, Option<u64>, f64)> {
        let (actual, cost) = self.charges(usage);
        std::mem::take(&mut self.grants)
            .into_iter()
            .map(|g| (g, actual, cost))
            .collect()
    }

    /// Settles the request: corrects the token charge to the actual usage, charges the spend
    /// budget and releases the concurrency slot. `None` keeps the estimate charged.
    pub async fn settle(mut self, usage: Option<Usage>) {
        for (grant, actual, cost) in self.release(usage) {
            match grant {
                Grant::Memory(g) => {
                    if let Backend::Memory(m) = &self.inner.backend {
                        m.settle(g, actual, cost);
                    }
                }
                Grant::Redis(g) => g.settle(actual, cost).await,
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        for (grant, actual, cost) in self.release(None) {
            match grant {
                Grant::Memory(g) => {
                    if let Backend::Memory(m) = &self.inner.backend {
                        m.settle(g, actual, cost);
                    }
                }
                Grant::Redis(g) => {
                    // Drop cannot wait for Redis: settle on the runtime. Outside a runtime the
                    // slot's lease expires by itself.
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(g.settle(actual, cost));
                    }
                }
            }
        }
    }
}

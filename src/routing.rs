//! Choosing a deployment for a route.
//!
//! Weighted random choice among a route's deployments. Failover, health and priorities build
//! on this.

use std::sync::Arc;

use rand::Rng;

use crate::config::{Deployment, Route};

/// Picks a deployment, each with probability proportional to its weight.
pub fn pick(route: &Route) -> &Arc<Deployment> {
    let deps = &route.deployments;
    if deps.len() == 1 {
        return &deps[0];
    }
    let total: u64 = deps.iter().map(|d| u64::from(d.weight)).sum();
    let mut n = rand::rng().random_range(0..total);
    for d in deps {
        let w = u64::from(d.weight);
        if n < w {
            return d;
        }
        n -= w;
    }
    &deps[deps.len() - 1]
}

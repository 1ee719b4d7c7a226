//! Name resolution for provider hosts, one cache for the gateway and its health checks.
//!
//! Pingora's `HttpPeer::new` resolves host names with blocking DNS and panics when resolution
//! fails, so peers are built from socket addresses resolved here instead: asynchronously (on
//! tokio's blocking pool, never on a worker), cached for [`DNS_TTL`], refreshed on expiry, and a
//! failed refresh keeps serving the last good answer for [`DNS_STALE`]. A name that cannot be
//! resolved at all is an error the caller turns into a 502.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{Config, Provider};

/// How long a resolved address list is used before it is refreshed.
pub const DNS_TTL: Duration = Duration::from_secs(30);
/// How long the last good answer is kept when a refresh fails.
pub const DNS_STALE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct HostEntry {
    addrs: Vec<SocketAddr>,
    resolved_at: Option<Instant>,
}

struct Host {
    name: String,
    port: u16,
    /// Set for IP-literal hosts: never resolved.
    fixed: Option<SocketAddr>,
    entry: RwLock<HostEntry>,
    next: AtomicUsize,
}

/// Caches resolved addresses for every provider host named in the config.
pub struct Resolver {
    hosts: HashMap<(String, u16), Arc<Host>>,
    timeout: Duration,
}

impl Resolver {
    pub fn new(cfg: &Config) -> Self {
        let mut hosts = HashMap::new();
        for p in cfg.providers.values() {
            let key = (p.base.host.clone(), p.base.port);
            hosts.entry(key).or_insert_with(|| {
                let fixed = p
                    .base
                    .host
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, p.base.port));
                Arc::new(Host {
                    name: p.base.host.clone(),
                    port: p.base.port,
                    fixed,
                    entry: RwLock::new(HostEntry::default()),
                    next: AtomicUsize::new(0),
                })
            });
        }
        Resolver {
            hosts,
            timeout: cfg.timeouts.connect,
        }
    }

    /// One address for the provider's host, rotating through the resolved ones.
    pub async fn resolve(&self, provider: &Provider) -> Result<SocketAddr, String> {
        let host = self
            .hosts
            .get(&(provider.base.host.clone(), provider.base.port))
            .ok_or_else(|| format!("host {} is not known to the resolver", provider.base.host))?;
        if let Some(addr) = host.fixed {
            return Ok(addr);
        }
        let now = Instant::now();
        {
            let entry = host.entry.read().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = entry.resolved_at {
                if now.duration_since(at) < DNS_TTL && !entry.addrs.is_empty() {
                    return Ok(pick(&entry.addrs, &host.next));
                }
            }
        }
        let looked_up = tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((host.name.as_str(), host.port)),
        )
        .await;
        let fresh: Result<Vec<SocketAddr>, String> = match looked_up {
            Ok(Ok(addrs)) => {
                let v: Vec<SocketAddr> = addrs.collect();
                if v.is_empty() {
                    Err(format!("{} resolved to no addresses", host.name))
                } else {
                    Ok(v)
                }
            }
            Ok(Err(e)) => Err(format!("could not resolve {}: {e}", host.name)),
            Err(_) => Err(format!("resolving {} timed out", host.name)),
        };
        let mut entry = host.entry.write().unwrap_or_else(|e| e.into_inner());
        match fresh {
            Ok(addrs) => {
                entry.addrs = addrs;
                entry.resolved_at = Some(now);
                Ok(pick(&entry.addrs, &host.next))
            }
            Err(msg) => {
                let stale_ok = entry
                    .resolved_at
                    .is_some_and(|at| now.duration_since(at) < DNS_STALE);
                if stale_ok && !entry.addrs.is_empty() {
                    log::warn!("{msg}; using the previous answer");
                    Ok(pick(&entry.addrs, &host.next))
                } else {
                    Err(msg)
                }
            }
        }
    }
}

fn pick(addrs: &[SocketAddr], next: &AtomicUsize) -> SocketAddr {
    let i = next.fetch_add(1, Ordering::Relaxed);
    addrs[i % addrs.len()]
}

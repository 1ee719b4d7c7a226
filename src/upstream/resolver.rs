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
use crate::core::sync::{read, write};

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

/// Caches resolved addresses for every provider host named in the config — and in each
/// config a reload brings (a new host is added when it is first asked for).
pub struct Resolver {
    hosts: RwLock<HashMap<(String, u16), Arc<Host>>>,
    timeout: Duration,
}

impl Host {
    fn new(name: &str, port: u16) -> Arc<Host> {
        let fixed = name
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Arc::new(Host {
            name: name.to_string(),
            port,
            fixed,
            entry: RwLock::new(HostEntry::default()),
            next: AtomicUsize::new(0),
        })
    }
}

impl Resolver {
    pub fn new(cfg: &Config) -> Self {
        let mut hosts = HashMap::new();
        for p in cfg.providers.values() {
            let key = (p.base.host.clone(), p.base.port);
            hosts
                .entry(key)
                .or_insert_with(|| Host::new(&p.base.host, p.base.port));
        }
        Resolver {
            hosts: RwLock::new(hosts),
            timeout: cfg.timeouts.connect,
        }
    }

    /// The cache entry of the provider's host, made on first use.
    fn host(&self, provider: &Provider) -> Arc<Host> {
        let key = (provider.base.host.clone(), provider.base.port);
        if let Some(h) = read(&self.hosts).get(&key) {
            return h.clone();
        }
        let mut hosts = write(&self.hosts);
        hosts
            .entry(key)
            .or_insert_with(|| Host::new(&provider.base.host, provider.base.port))
            .clone()
    }

    /// One address for the provider's host, rotating through the resolved ones.
    pub async fn resolve(&self, provider: &Provider) -> Result<SocketAddr, String> {
        let host = self.host(provider);
        if let Some(addr) = host.fixed {
            return Ok(addr);
        }
        let now = Instant::now();
        {
            let entry = read(&host.entry);
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
        let mut entry = write(&host.entry);
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

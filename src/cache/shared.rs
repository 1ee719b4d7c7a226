//! The Redis backend: entries shared by every instance that uses the same server, as strings
//! under `sluice:cache:v1:<hex digest>` that expire with the TTL (`SET … PX`). Every
//! operation runs under `cache.redis_timeout`; the connection is made on first use (then at
//! most once a second while Redis is down) and the connection manager reconnects by itself.
//! A failure is the caller's to count: the request goes to the provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::CacheKey;
use crate::core::secret::Secret;

/// How long after a failed connection attempt the next one is made.
const CONNECT_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct RedisCache {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    /// Unix milliseconds before which no new connection is attempted.
    next_connect_ms: AtomicU64,
    timeout: Duration,
    ttl: Duration,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A Redis error in words that never carry the URL.
fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection failed".into()
    } else {
        format!("{:?}", e.kind())
    }
}

impl RedisCache {
    pub(super) fn new(url: &Secret, timeout: Duration, ttl: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url.expose())
            .map_err(|_| "cache.redis_url is not a valid Redis URL".to_string())?;
        Ok(RedisCache {
            client,
            conn: OnceCell::new(),
            next_connect_ms: AtomicU64::new(0),
            timeout,
            ttl,
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, String> {
        let c = self
            .conn
            .get_or_try_init(|| async {
                let now = now_ms();
                if now < self.next_connect_ms.load(Ordering::Relaxed) {
                    return Err("not connected".to_string());
                }
                self.next_connect_ms
                    .store(now + CONNECT_BACKOFF.as_millis() as u64, Ordering::Relaxed);
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout.max(Duration::from_millis(500)))
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1)
                    .set_factor(50)
                    .set_max_delay(1000);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|e| describe(&e))
            })
            .await?;
        Ok(c.clone())
    }

    /// Runs `cmd` under the timeout.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, String> {
        let op = async {
            let mut conn = self.conn().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| describe(&e))
        };
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err("timeout".into()),
        }
    }

    pub(super) async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, String> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key.redis_name());
        let v: Option<Vec<u8>> = self.run(cmd).await?;
        Ok(v.map(Bytes::from))
    }

    pub(super) async fn put(&self, key: &CacheKey, value: &[u8]) -> Result<(), String> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.redis_name())
            .arg(value)
            .arg("PX")
            .arg(self.ttl.as_millis().max(1) as u64);
        self.run::<()>(cmd).await
    }
}

//! One lazily made Redis connection, shared by the features that use Redis (the limits, the
//! response cache): made on first use, retried at most once a second while Redis is down,
//! then kept up by redis-rs's connection manager. Errors are described by kind only, never
//! with the URL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::secret::Secret;

/// The shortest pause between two attempts to make the first connection.
const CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// A Redis error in words that never carry connection details.
pub fn describe(e: &redis::RedisError) -> String {
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The connection of one Redis URL.
pub struct LazyRedis {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    /// Unix milliseconds before which no new connection is attempted.
    next_connect_ms: AtomicU64,
    timeout: Duration,
    retries: usize,
}

impl LazyRedis {
    /// `None` when `url` is not a Redis URL. `timeout` bounds each response (and, at least
    /// 500 ms, the connection); `retries` are the manager's reconnection attempts.
    pub fn new(url: &Secret, timeout: Duration, retries: usize) -> Option<LazyRedis> {
        Some(LazyRedis {
            client: redis::Client::open(url.expose()).ok()?,
            conn: OnceCell::new(),
            next_connect_ms: AtomicU64::new(0),
            timeout,
            retries,
        })
    }

    /// The response timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The shared connection, made on first use; concurrent callers wait for the same
    /// attempt (under their own timeout). While Redis is down at startup, a new attempt is
    /// made at most once a second; callers in between fail at once.
    pub async fn conn(&self) -> Result<ConnectionManager, String> {
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
                    .set_number_of_retries(self.retries)
                    .set_factor(50)
                    .set_max_delay(1000);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|e| describe(&e))
            })
            .await?;
        Ok(c.clone())
    }
}

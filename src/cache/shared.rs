//! The Redis backend: entries shared by every instance that uses the same server, as strings
//! under `sluice:cache:v1:<hex digest>` that expire with the TTL (`SET … PX`). Every
//! operation runs under `cache.redis_timeout`; the connection is made on first use (then at
//! most once a second while Redis is down) and the connection manager reconnects by itself.
//! A failure is the caller's to count: the request goes to the provider.

use std::time::Duration;

use bytes::Bytes;

use super::CacheKey;
use crate::core::redis::{describe, LazyRedis};
use crate::core::secret::Secret;

pub(super) struct RedisCache {
    redis: LazyRedis,
    ttl: Duration,
}

impl RedisCache {
    pub(super) fn new(url: &Secret, timeout: Duration, ttl: Duration) -> Result<Self, String> {
        let redis = LazyRedis::new(url, timeout, 1)
            .ok_or_else(|| "cache.redis_url is not a valid Redis URL".to_string())?;
        Ok(RedisCache { redis, ttl })
    }

    /// Runs `cmd` under the timeout.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, String> {
        let op = async {
            let mut conn = self.redis.conn().await?;
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| describe(&e))
        };
        // Boxed: see `limits::redis::RedisBackend::call`.
        match tokio::time::timeout(self.redis.timeout(), Box::pin(op)).await {
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

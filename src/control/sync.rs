//! Keeps the managed keys in force in step with the store: a poll every
//! `usage.key_refresh` (and at once after a change made on this instance). A failed poll
//! keeps the keys in force and is counted; the next one retries.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{keys, Control, Managed};

pub struct KeySync(pub Arc<Control>);

impl Control {
    /// Reads the store and puts what it holds in force. `Err` when the store could not be read.
    pub async fn sync_keys(&self) -> Result<usize, String> {
        let control = self;
        let stored = control
            .with_store(|s| s.list())
            .await
            .map_err(|e| e.to_string())?;
        let mut managed: Managed = Vec::with_capacity(stored.len());
        for k in &stored {
            match keys::managed(k) {
                None => {}
                Some(Ok(m)) => managed.push(m),
                Some(Err(e)) => log::error!("{e}; the key is refused until fixed"),
            }
        }
        let n = managed.len();
        control.apply_keys(managed).await;
        Ok(n)
    }
}

impl KeySync {
    fn interval(&self) -> Duration {
        let gw = self.0.current();
        gw.cfg
            .usage
            .as_ref()
            .map_or(Duration::from_secs(2), |u| u.key_refresh)
    }
}

#[async_trait]
impl BackgroundService for KeySync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.0.has_store() {
            return;
        }
        let mut failing = false;
        loop {
            match self.0.sync_keys().await {
                Ok(_) if failing => {
                    failing = false;
                    log::info!("managed keys: the store answers again");
                }
                Ok(_) => {}
                Err(e) => {
                    self.0
                        .stats
                        .key_sync_failures
                        .with_label_values(&["usage"])
                        .inc();
                    if !failing {
                        log::warn!(
                            "managed keys: cannot read the store ({e}); the keys in force stay"
                        );
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval()) => {}
                _ = self.0.refresh.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

//! SIGHUP — what `systemctl reload` sends — reloads the config ([`Control::reload`]).

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::Control;

pub struct ReloadOnHangup(pub Arc<Control>);

#[async_trait]
impl BackgroundService for ReloadOnHangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot listen for SIGHUP ({e}): reload with POST /reload");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // Errors are logged and counted by reload itself.
                    let _ = self.0.reload("SIGHUP").await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

//! Exiting as soon as a graceful shutdown has nothing left to wait for.
//!
//! On SIGTERM (or SIGQUIT during an upgrade) Pingora stops accepting connections, lets the
//! in-flight ones run for `server.grace_period`, then stops its runtimes — cutting whatever is
//! still running — and it always waits the whole grace period, even with nothing in flight.
//! LLM streams can last minutes, so the grace period must be long; this service keeps it from
//! costing anything when idle: once shutdown has begun and no request is in flight, it exits
//! the process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::pipeline::gateway::InFlight;

pub struct Drain {
    pub in_flight: Arc<InFlight>,
    /// Stored before exiting: what is queued is not lost.
    pub ledger: Option<Arc<crate::ledger::Ledger>>,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        // Requests already accepted may still be reading their bodies: require the count to
        // stay at zero for a moment.
        let mut idle_polls = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.in_flight.count() == 0 {
                idle_polls += 1;
                if idle_polls >= 5 {
                    log::info!("graceful shutdown: no request in flight, exiting");
                    if let Some(l) = &self.ledger {
                        l.close(Duration::from_secs(10));
                    }
                    std::process::exit(0);
                }
            } else {
                idle_polls = 0;
            }
        }
    }
}

//! The process log (stderr): `env_logger`, with per-connection noise from Pingora kept in
//! bounds.
//!
//! Pingora logs some failures of single client connections at ERROR — a client that sends a
//! byte and leaves ("Fail to proxy: … downstream"), a failed TLS or HTTP/2 handshake. Each is
//! nothing an operator can act on, and any client can cause thousands a second. These
//! records are shown at most [`BURST`] per [`WINDOW`]; the rest are counted and reported in
//! one line when the window ends.
//!
//! pingora-load-balancing logs its own line when a health-check target flips ("provider 'x'
//! becomes unhealthy, …" / "… becomes healthy"); sluice's check logs the same event in its
//! own words (`upstream::health`), so that echo is dropped. Everything else passes through
//! unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::sync::lock;
use log::{Log, Metadata, Record};

/// Per-connection records shown per window.
const BURST: u64 = 10;
/// The window over which [`BURST`] applies.
const WINDOW: Duration = Duration::from_secs(10);

/// Messages (by prefix) from Pingora's targets that concern one client connection.
const CONNECTION_NOISE: &[&str] = &[
    "Fail to proxy",
    "Downstream handshake",
    "H2 handshake error",
    "failed to send error response to downstream",
];

/// Installs the logger: `RUST_LOG` as `env_logger` reads it, `info` by default.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    let logger = Limited {
        inner,
        window: Mutex::new((Instant::now(), 0)),
        suppressed: AtomicU64::new(0),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

struct Limited {
    inner: env_logger::Logger,
    /// Start of the current window and records shown in it.
    window: Mutex<(Instant, u64)>,
    suppressed: AtomicU64,
}

/// Whether a record is about one client connection (see the module docs).
fn is_connection_noise(record: &Record<'_>) -> bool {
    if !record.target().starts_with("pingora") || record.level() > log::Level::Warn {
        return false;
    }
    let msg = record.args().as_str().map(str::to_owned);
    let msg = msg.unwrap_or_else(|| record.args().to_string());
    CONNECTION_NOISE.iter().any(|p| msg.starts_with(p))
}

/// Whether a record is pingora-load-balancing's echo of a provider's health flip (see the
/// module docs); its subject is the check's `backend_summary`, "provider '<name>'".
fn is_health_flip_echo(record: &Record<'_>) -> bool {
    if !record.target().starts_with("pingora_load_balancing") {
        return false;
    }
    let msg = record.args().to_string();
    msg.starts_with("provider '")
        && (msg.contains("' becomes unhealthy, ") || msg.ends_with("' becomes healthy"))
}

impl Limited {
    /// Whether a noisy record may be shown now; reports what the last window suppressed.
    fn admit(&self) -> bool {
        let mut w = lock(&self.window);
        let now = Instant::now();
        if now.duration_since(w.0) >= WINDOW {
            *w = (now, 0);
            let n = self.suppressed.swap(0, Ordering::Relaxed);
            if n > 0 {
                self.inner.log(
                    &Record::builder()
                        .level(log::Level::Warn)
                        .target("sluice::log")
                        .args(format_args!(
                            "{n} more client-connection errors in the last {}s were not logged",
                            WINDOW.as_secs()
                        ))
                        .build(),
                );
            }
        }
        if w.1 < BURST {
            w.1 += 1;
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl Log for Limited {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.matches(record) {
            return;
        }
        if is_connection_noise(record) && !self.admit() {
            return;
        }
        if is_health_flip_echo(record) {
            return;
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(target: &str, level: log::Level, msg: &str) -> bool {
        is_connection_noise(
            &Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("{msg}"))
                .build(),
        )
    }

    #[test]
    fn only_pingora_connection_errors_are_limited() {
        assert!(noise(
            "pingora_proxy",
            log::Level::Error,
            "Fail to proxy: Downstream ReadError"
        ));
        assert!(noise(
            "pingora_core::services::listening",
            log::Level::Error,
            "Downstream handshake error: x"
        ));
        assert!(!noise(
            "sluice::pipeline::dispatch",
            log::Level::Error,
            "Fail to proxy"
        ));
        assert!(!noise("pingora_proxy", log::Level::Info, "Fail to proxy"));
        assert!(!noise("pingora_core", log::Level::Error, "Accept() failed"));
    }

    fn echo(target: &str, msg: &str) -> bool {
        is_health_flip_echo(
            &Record::builder()
                .target(target)
                .level(log::Level::Warn)
                .args(format_args!("{msg}"))
                .build(),
        )
    }

    #[test]
    fn only_the_load_balancers_flip_lines_are_dropped() {
        assert!(echo(
            "pingora_load_balancing",
            "provider 'a' becomes unhealthy,  health check failed context: HTTP 500"
        ));
        assert!(echo(
            "pingora_load_balancing",
            "provider 'a' becomes healthy"
        ));
        assert!(!echo(
            "pingora_load_balancing",
            "health check task failed: panicked"
        ));
        assert!(!echo(
            "sluice::upstream::health",
            "provider 'a' is healthy again"
        ));
    }
}

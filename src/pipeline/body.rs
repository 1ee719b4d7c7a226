//! Reading a client's request body: bounded in size (`limits.max_body_bytes`), in time
//! (`timeouts.request_body` for the whole body, whatever the pace of its pieces) and in the
//! memory all requests hold together (`limits.max_inflight_body_bytes`).
//!
//! The shared budget is what keeps slow uploads from pinning memory: each request reserves
//! its declared `Content-Length` before reading anything (a chunked body reserves as its
//! pieces arrive) and keeps the reservation until it has been answered — the parsed and
//! translated forms of a body live that long too. A request that does not fit is refused at
//! once with 503 and `Retry-After`, before its body is read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::core::ApiError;
use crate::downstream::{self, Session};
use crate::telemetry::Metrics;

/// The longest wait for one piece of a body (bounded further by the whole body's deadline).
const PIECE_TIMEOUT: Duration = Duration::from_secs(60);

/// The request-body bytes that requests in flight may hold together.
pub struct BodyBudget {
    held: AtomicUsize,
    max: usize,
    metrics: Arc<Metrics>,
}

impl BodyBudget {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(BodyBudget {
            held: AtomicUsize::new(0),
            max,
            metrics,
        })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// An empty reservation, grown with [`BodyHold::grow`].
    pub fn hold(self: &Arc<Self>) -> BodyHold {
        BodyHold {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok();
        if taken {
            self.metrics.body_bytes_in_flight.add(n as i64);
        } else {
            self.metrics.body_budget_refused.inc();
        }
        taken
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.metrics.body_bytes_in_flight.sub(n as i64);
    }
}

/// Bytes of the budget held by one request; given back when dropped.
pub struct BodyHold {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyHold {
    /// Holds `n` more bytes, or refuses the request.
    fn grow(&mut self, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Ok(());
        }
        if !self.budget.try_take(n) {
            return Err(busy());
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

fn busy() -> ApiError {
    ApiError::limited(
        503,
        "server_busy",
        "The gateway is receiving too many request bodies at once. Please retry shortly.",
    )
    .with_retry_after(Some("1".into()))
}

fn unreadable(what: &str) -> ApiError {
    ApiError::invalid_request(format!("The request body could not be read: {what}."))
        .with_code("invalid_body")
}

/// Reads the whole request body: at most `limit` bytes, within `deadline`, held in `hold`.
/// Any failure leaves the body partly unread, so the connection is not kept alive.
pub async fn read(
    session: &mut Session<'_>,
    limit: usize,
    deadline: Duration,
    hold: &mut BodyHold,
) -> Result<Bytes, ApiError> {
    let result = read_inner(session, limit, deadline, hold).await;
    if result.is_err() {
        session.close_after();
    }
    result
}

async fn read_inner(
    session: &mut Session<'_>,
    limit: usize,
    deadline: Duration,
    hold: &mut BodyHold,
) -> Result<Bytes, ApiError> {
    let declared = session
        .header("content-length")
        .and_then(downstream::text)
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let declared = declared.map(|n| n as usize);
    hold.grow(declared.unwrap_or(0))?;
    let expects_continue = session
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // curl and others wait for this before sending a body larger than 1 KiB.
        session
            .write_continue_response()
            .await
            .map_err(|_| unreadable("the client connection failed"))?;
    }
    let end = Instant::now() + deadline;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let wait = left.min(PIECE_TIMEOUT);
        let piece = match crate::core::time::timeout(wait, session.read_request_body()).await {
            Ok(Ok(piece)) => piece,
            Ok(Err(e)) => return Err(unreadable(e.etype().as_str())),
            Err(_) => {
                let mut e = ApiError::invalid_request(if wait < PIECE_TIMEOUT {
                    format!(
                        "The request body was not received within {}s.",
                        deadline.as_secs()
                    )
                } else {
                    "The request body stopped arriving.".to_string()
                })
                .with_code("request_timeout");
                e.status = 408;
                return Err(e);
            }
        };
        let Some(b) = piece else {
            return Ok(buf.freeze());
        };
        if buf.len() + b.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        // A body longer than it declared is refused by the HTTP parser; a chunked one holds
        // its bytes as they come.
        if buf.len() + b.len() > hold.bytes {
            hold.grow(buf.len() + b.len() - hold.bytes)?;
        }
        buf.extend_from_slice(&b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_its_maximum_and_frees_on_drop() {
        let metrics = Arc::new(Metrics::new());
        let budget = BodyBudget::new(100, metrics.clone());
        let mut a = budget.hold();
        a.grow(60).unwrap();
        let mut b = budget.hold();
        assert_eq!(b.grow(50).unwrap_err().status, 503);
        b.grow(40).unwrap();
        assert_eq!(budget.held(), 100);
        assert_eq!(metrics.body_bytes_in_flight.get(), 100);
        drop(a);
        assert_eq!(budget.held(), 40);
        b.grow(60).unwrap();
        drop(b);
        assert_eq!(budget.held(), 0);
        assert_eq!(metrics.body_bytes_in_flight.get(), 0);
        assert_eq!(metrics.body_budget_refused.get(), 1);
    }
}

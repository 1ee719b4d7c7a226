//! A bounded wait that costs nothing when what it waits for is ready at once.
//!
//! Most waits of a proxied request are ready on the first poll (a header already read, a
//! write that fits the buffer); [`timeout`] polls once before making a timer. The timers
//! are tokio's, kept by the runtime's own driver: one of Pingora's (`pingora::time`) costs
//! a clock read, a lock and a waiter list — about 1.5 % more instructions per small
//! request (bench/RESULTS.md).
//!
//! A stream waits on its provider once per chunk, hundreds of times; a timer made for each
//! of those waits costs a registration and a lock each. [`Watchdog`] bounds them all with
//! one timer that is moved only when it fires before its time.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

pub use tokio::time::error::Elapsed;

/// `fut`, given up after `limit`. Polled once first: ready then, it made no timer and read
/// no clock.
pub async fn timeout<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => tokio::time::timeout(limit, fut).await,
    }
}

/// Which bound a [`Watchdog`] reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// Nothing came for the idle limit.
    Idle,
    /// The end of the whole exchange came first.
    Total,
}

/// One timer for the many waits of a long exchange: each may last `idle` from its start
/// ([`Watchdog::fed`]), and none past `end`. Starting a wait is a store; the timer is made
/// when a wait is first left pending, and when it fires before the limit of the wait then
/// in progress it is moved there.
pub struct Watchdog {
    idle: Duration,
    end: Instant,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Watchdog {
    /// A watchdog whose first wait starts now.
    pub fn new(idle: Duration, end: Instant) -> Self {
        Watchdog {
            idle,
            end,
            last: Instant::now(),
            timer: None,
        }
    }

    /// A wait starts at `now`: the idle limit counts from here.
    pub fn fed(&mut self, now: Instant) {
        self.last = now;
    }

    /// Resolves when the wait in progress reaches a limit: `idle` since it started, or the
    /// end.
    pub async fn expired(&mut self) -> Lapse {
        loop {
            let Some(timer) = &mut self.timer else {
                let (at, _) = due(self.last, self.idle, self.end);
                self.timer = Some(Box::pin(tokio::time::sleep_until(at.into())));
                continue;
            };
            timer.as_mut().await;
            let (at, lapse) = due(self.last, self.idle, self.end);
            if Instant::now() >= at {
                return lapse;
            }
            timer.as_mut().reset(at.into());
        }
    }
}

/// When a wait that began at `last` ends, and by which bound.
fn due(last: Instant, idle: Duration, end: Instant) -> (Instant, Lapse) {
    // A limit past what an `Instant` can hold is no limit: the end decides.
    match last.checked_add(idle) {
        Some(limit) if limit < end => (limit, Lapse::Idle),
        _ => (end, Lapse::Total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fed_watchdog_waits_on_and_a_silent_one_barks() {
        let far = Instant::now() + Duration::from_secs(3600);
        let idle = Duration::from_secs(1);
        let mut dog = Watchdog::new(idle, far);
        // Three waits of 200 ms, each fed at its start: the timer, made for the first
        // wait's limit, fires before the last wait's and is moved there.
        let mut fed = Instant::now();
        for _ in 0..3 {
            let woke = tokio::select! {
                _ = dog.expired() => false,
                () = tokio::time::sleep(Duration::from_millis(200)) => true,
            };
            assert!(woke, "a wait does not end before its limit");
            fed = Instant::now();
            dog.fed(fed);
        }
        assert_eq!(dog.expired().await, Lapse::Idle);
        assert!(
            fed.elapsed() >= idle,
            "not before the limit after the last feeding"
        );

        let end = Instant::now() + Duration::from_millis(40);
        let mut dog = Watchdog::new(Duration::from_secs(3600), end);
        assert_eq!(dog.expired().await, Lapse::Total);
        assert!(Instant::now() >= end, "not before the end");

        // An idle limit no `Instant` can hold leaves the end to decide.
        let end = Instant::now() + Duration::from_millis(20);
        let mut dog = Watchdog::new(Duration::MAX, end);
        assert_eq!(dog.expired().await, Lapse::Total);
    }

    #[tokio::test]
    async fn ready_at_once_pending_then_ready_and_late() {
        assert_eq!(timeout(Duration::ZERO, async { 7 }).await.ok(), Some(7));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(8).unwrap();
        });
        let got = timeout(Duration::from_secs(60), rx).await;
        assert_eq!(
            got.ok().and_then(Result::ok),
            Some(8),
            "woken by what it waits for"
        );
        sender.await.unwrap();
        let never = std::future::pending::<()>();
        assert!(
            timeout(Duration::from_millis(20), never).await.is_err(),
            "given up at the limit"
        );
    }
}

//! A bounded wait that costs nothing when what it waits for is ready at once.
//!
//! [`pingora::time::timeout`] arms its timer lazily but reads the clock (its timer thread's
//! watchdog) each time one is made — about ten times per proxied request. Most of those
//! waits are ready on the first poll (a header already read, a write that fits the buffer);
//! [`timeout`] polls once before making one.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

pub use pingora::time::Elapsed;

/// `fut`, given up after `limit` (Pingora's lazy timer). Polled once first: ready then, it
/// made no timer and read no clock.
pub async fn timeout<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = pin!(fut);
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => pingora::time::timeout(limit, fut).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

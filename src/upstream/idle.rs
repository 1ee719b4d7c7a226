//! Idle HTTP/1 connections to providers, kept for reuse.
//!
//! Pingora's pool pays, for every request that gives a connection back: a task spawned to
//! watch the idle connection (with its timer, lock and channels), a test read, and on reuse
//! a `getpeername` and another test read, with a wakeup of the watching task. Here a released
//! connection goes on its peer's stack (the most recent is reused first, so the oldest age
//! out), and one sweeper task per pool, once a second, closes connections past their idle
//! time or closed by the provider. Taking one checks it with a read that does not wait: no
//! system call unless the socket has something to say (the provider closed it, or sent bytes
//! nobody asked for — either way it is not reused).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::core::prehashed::PrehashedMap;
use crate::core::sync::lock;
use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// How often idle connections are checked.
const SWEEP: Duration = Duration::from_secs(1);

struct Idle {
    stream: Stream,
    /// When it is closed if not reused; `None`: kept until the provider closes it.
    until: Option<Instant>,
}

impl Idle {
    fn reusable(&mut self, now: Instant) -> bool {
        self.until.is_none_or(|t| now < t) && quiet(&mut self.stream)
    }
}

/// A peer's stack stays when it empties (a connection taken for a request usually comes back
/// after it), until a sweep finds it empty.
#[derive(Default)]
struct Peers {
    by_peer: PrehashedMap<u64, Vec<Idle>>,
    count: usize,
}

/// Idle connections by peer (Pingora's reuse hash: address, TLS settings, SNI, …).
pub(super) struct IdlePool {
    peers: Mutex<Peers>,
    /// At most this many idle connections in all.
    cap: usize,
    sweeper: Sweeper,
}

impl IdlePool {
    pub fn new(cap: usize) -> Arc<IdlePool> {
        Arc::new(IdlePool {
            peers: Mutex::new(Peers::default()),
            cap,
            sweeper: Sweeper::default(),
        })
    }

    /// The most recently released connection to `peer` that is still usable. Those found
    /// expired or closed on the way are closed.
    pub fn take(&self, peer: u64) -> Option<Stream> {
        let now = Instant::now();
        loop {
            let mut idle = {
                let mut peers = lock(&self.peers);
                let idle = peers.by_peer.get_mut(&peer)?.pop()?;
                peers.count -= 1;
                idle
            };
            if idle.reusable(now) {
                return Some(idle.stream);
            }
        }
    }

    /// Keeps a connection for reuse for `idle` (`None`: until the provider closes it). A full
    /// pool closes it instead.
    pub fn put(self: &Arc<Self>, peer: u64, stream: Stream, idle: Option<Duration>) {
        let until = idle.map(|d| Instant::now() + d);
        {
            let mut peers = lock(&self.peers);
            if peers.count >= self.cap {
                drop(peers);
                drop(stream);
                return;
            }
            peers.count += 1;
            peers
                .by_peer
                .entry(peer)
                .or_default()
                .push(Idle { stream, until });
        }
        self.sweeper.start(self);
    }

    /// Idle connections now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.peers).count
    }
}

impl Sweep for IdlePool {
    /// Closes what expired or what the provider closed.
    fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut peers = lock(&self.peers);
            for stack in peers.by_peer.values_mut() {
                let mut i = 0;
                while i < stack.len() {
                    if stack[i].reusable(now) {
                        i += 1;
                    } else {
                        closed.push(stack.remove(i));
                    }
                }
            }
            peers.by_peer.retain(|_, stack| !stack.is_empty());
            peers.count -= closed.len();
        }
        // Closing sockets outside the lock.
        drop(closed);
    }
}

/// A pool of connections looked over once a second ([`SWEEP`]).
pub(super) trait Sweep: Send + Sync + 'static {
    fn sweep(&self);
}

/// Starts a pool's sweeping task, once, when its first connection arrives; the task ends
/// with the pool.
#[derive(Default)]
pub(super) struct Sweeper(AtomicBool);

impl Sweeper {
    pub fn start<T: Sweep>(&self, pool: &Arc<T>) {
        if !self.0.load(Ordering::Relaxed) && !self.0.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep_while_alive(Arc::downgrade(pool)));
        }
    }
}

async fn sweep_while_alive<T: Sweep>(pool: Weak<T>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

/// Whether an idle connection has nothing to read: a read that does not wait finds no data,
/// no end of stream and no error. Costs no system call while the socket is known not to be
/// readable.
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    // Unconstrained: a task's exhausted scheduling budget would make any read look pending.
    let mut read = tokio::task::unconstrained(std::future::poll_fn(|cx| {
        Pin::new(&mut *stream).poll_read(cx, &mut buf)
    }));
    let mut cx = Context::from_waker(no_wake());
    matches!(Pin::new(&mut read).poll(&mut cx), Poll::Pending)
}

/// A waker that does nothing: an idle connection's read is tried, never awaited.
fn no_wake() -> &'static Waker {
    struct NoWake;
    impl std::task::Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(NoWake)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    use crate::upstream::loopback_pair as pair;

    /// Waits until the socket's state reaches the reactor (no timing assertion: it only
    /// gives the kernel and the reactor a chance).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn the_most_recent_connection_is_reused_and_closed_ones_are_not() {
        let pool = IdlePool::new(8);
        let (a, mut a_far) = pair().await;
        let (b, _b_far) = pair().await;
        pool.put(1, a, None);
        pool.put(1, b, None);
        assert_eq!(pool.len(), 2);
        // The provider closes the older one.
        a_far.shutdown().await.unwrap();
        drop(a_far);
        settle().await;
        let got = pool.take(1).expect("the newer connection");
        assert_eq!(pool.len(), 1);
        pool.put(1, got, None);
        assert!(pool.take(1).is_some(), "the newer, again");
        assert!(pool.take(1).is_none(), "the closed one is not handed out");
        assert_eq!(pool.len(), 0);
        assert!(pool.take(2).is_none(), "another peer has none");
    }

    #[tokio::test]
    async fn expired_and_closed_connections_are_swept_and_the_pool_is_bounded() {
        let pool = IdlePool::new(2);
        let (a, _a_far) = pair().await;
        let (b, mut b_far) = pair().await;
        let (c, _c_far) = pair().await;
        pool.put(1, a, Some(Duration::ZERO));
        pool.put(2, b, None);
        pool.put(3, c, None);
        assert_eq!(pool.len(), 2, "the third does not fit");
        b_far.write_all(b"unasked").await.unwrap();
        settle().await;
        pool.sweep();
        assert_eq!(pool.len(), 0, "expired, and sent bytes nobody asked for");
        assert!(pool.take(1).is_none() && pool.take(2).is_none());
    }
}

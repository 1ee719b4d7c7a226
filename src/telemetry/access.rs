//! The access log's writer: request workers append finished lines to one buffer and a writer
//! thread writes them to stdout in batches. A worker never makes a system call for the log
//! and never waits on stdout: a slow reader of stdout (journald under pressure, a full pipe)
//! delays the log, not the requests. What the reader cannot take is bounded: past
//! [`MAX_PENDING`] bytes waiting, lines are dropped and counted
//! (`sluice_access_log_dropped_total`), never held without limit.
//!
//! A line reaches stdout within [`BATCH`] of its request's end (plus the write itself); the
//! rest is written when the server stops ([`flush`]).

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::core::sync::lock;
use prometheus::core::Collector;
use prometheus::IntCounter;

/// Bytes of lines that may wait for stdout; beyond, lines are dropped.
pub const MAX_PENDING: usize = 4 << 20;
/// How long the writer gathers lines after the first of a batch arrives.
const BATCH: Duration = Duration::from_millis(5);
/// The capacity a buffer keeps between batches; a burst's larger one is given back.
const KEEP: usize = 256 << 10;

struct Writer {
    pending: Mutex<Vec<u8>>,
    /// Signalled when a line arrives in an empty buffer.
    arrived: Condvar,
    /// Held while lines are written, so that [`flush`] keeps them in order.
    writing: Mutex<()>,
    /// Lines dropped because [`MAX_PENDING`] bytes were waiting.
    dropped: IntCounter,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            pending: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            writing: Mutex::new(()),
            dropped: IntCounter::new(
                "sluice_access_log_dropped_total",
                "Access-log lines dropped because stdout did not take them fast enough.",
            )
            .expect("valid metric"),
        }
    }

    /// Queues a line: `Some(true)` if it is the first of a batch (the writer is to be woken),
    /// `None` if it was dropped.
    fn queue(&self, line: &[u8]) -> Option<bool> {
        let mut pending = lock(&self.pending);
        if pending.len() + line.len() > MAX_PENDING {
            drop(pending);
            self.dropped.inc();
            return None;
        }
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        Some(first)
    }
}

/// The writer. Its thread starts with the first line ([`started`]): a daemon forks after the
/// metrics are registered, and a thread started before the fork would not exist after it.
fn writer() -> &'static Writer {
    static WRITER: OnceLock<Writer> = OnceLock::new();
    WRITER.get_or_init(Writer::new)
}

/// Starts the writer thread once; whether it runs.
fn started(w: &'static Writer) -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run(w))
            .is_ok()
    })
}

/// Queues one line (with its newline) for stdout.
pub fn push(line: &[u8]) {
    let w = writer();
    if !started(w) {
        // No writer thread (the system refused one): write here, as a last resort.
        let _guard = lock(&w.writing);
        write_out(line);
        return;
    }
    if w.queue(line) == Some(true) {
        w.arrived.notify_one();
    }
}

/// Writes every line queued so far; called when the server stops.
pub fn flush() {
    let w = writer();
    let _guard = lock(&w.writing);
    let batch = std::mem::take(&mut *lock(&w.pending));
    write_out(&batch);
}

/// The counter of dropped lines, for the metrics registry.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    vec![Box::new(writer().dropped.clone())]
}

fn run(w: &'static Writer) {
    let mut batch = Vec::new();
    loop {
        {
            let mut pending = lock(&w.pending);
            while pending.is_empty() {
                pending = w.arrived.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
        }
        std::thread::sleep(BATCH);
        let _guard = lock(&w.writing);
        std::mem::swap(&mut batch, &mut *lock(&w.pending));
        write_out(&batch);
        batch.clear();
        if batch.capacity() > KEEP {
            batch = Vec::new();
        }
    }
}

fn write_out(batch: &[u8]) {
    if batch.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the writer: the lines are lost, the requests are not.
    let _ = out.write_all(batch).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_bound_are_counted_not_queued() {
        let w = Writer::new();
        assert_eq!(
            w.queue(b"first\n"),
            Some(true),
            "the first line wakes the writer"
        );
        assert_eq!(w.queue(b"second\n"), Some(false));
        let room = MAX_PENDING - lock(&w.pending).len();
        assert_eq!(
            w.queue(&vec![b'x'; room]),
            Some(false),
            "exactly full is kept"
        );
        assert_eq!(w.queue(b"late\n"), None);
        assert_eq!(lock(&w.pending).len(), MAX_PENDING);
        assert_eq!(w.dropped.get(), 1);
        assert!(lock(&w.pending).starts_with(b"first\nsecond\n"));
    }
}

//! The ledger's writer thread: batches from the queue into the store, spilled records
//! replayed once it keeps up, expired records pruned once an hour. A store that fails is
//! reopened (at most every few seconds); meanwhile batches go to the spill file.

use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::store::{self, Store};
use super::{LedgerStats, UsageRecord, BATCH, LINGER, QUEUE};
use crate::config::{UsageSettings, UsageStore};
use crate::core::sync::lock;

/// How long the writer waits before opening a store that failed again.
const REOPEN: Duration = Duration::from_secs(2);
/// How often expired records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Writer {
    settings: UsageStore,
    retention: Duration,
    store: Option<Box<dyn Store>>,
    /// When the store may be opened again after a failure.
    reopen_at: Instant,
    /// Whether the store is known to be failing (logged once per outage).
    failing: bool,
    spill: Arc<Mutex<PathBuf>>,
    stats: Arc<LedgerStats>,
    last_prune: Option<Instant>,
}

impl Writer {
    pub(super) fn new(
        settings: &UsageSettings,
        spill: Arc<Mutex<PathBuf>>,
        stats: Arc<LedgerStats>,
    ) -> Writer {
        Writer {
            settings: settings.store.clone(),
            retention: settings.retention,
            store: None,
            reopen_at: Instant::now(),
            failing: false,
            spill,
            stats,
            last_prune: None,
        }
    }

    /// Drains the queue until the end marker (or every sender is gone), then stores what is
    /// left and returns.
    ///
    /// The writer polls: it sleeps [`LINGER`] between rounds unless the last round found the
    /// queue a quarter full, then takes everything queued in batches of [`BATCH`]. A thread
    /// blocked on the queue would be woken by every record — a system call per request and
    /// a transaction per handful of records; polling makes the requests' side a plain push.
    pub(super) fn run(&mut self, rx: Receiver<Option<UsageRecord>>) {
        let mut busy = false;
        loop {
            if !busy {
                std::thread::sleep(LINGER);
            }
            let mut taken = 0;
            let mut end = false;
            while !end {
                let mut batch = Vec::with_capacity(BATCH);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) | Err(TryRecvError::Disconnected) => {
                            end = true;
                            break;
                        }
                        Err(TryRecvError::Empty) => break,
                    }
                }
                let full = batch.len() == BATCH;
                taken += batch.len();
                if !batch.is_empty() {
                    self.store_batch(batch);
                }
                if !full {
                    break;
                }
            }
            if end {
                // Whatever raced the end marker into the queue.
                let rest: Vec<_> = rx.try_iter().flatten().collect();
                for chunk in rest.chunks(BATCH) {
                    self.store_batch(chunk.to_vec());
                }
                self.replay();
                return;
            }
            busy = taken >= QUEUE / 4;
            if !busy {
                self.replay();
            }
            self.prune();
        }
    }

    /// The store, opened if it is not (and may be tried again).
    fn store(&mut self) -> Option<&mut (dyn Store + 'static)> {
        if self.store.is_none() && Instant::now() >= self.reopen_at {
            match store::open(&self.settings) {
                Ok(s) => {
                    if self.failing {
                        log::info!("usage ledger: the store is reachable again");
                        self.failing = false;
                    }
                    self.store = Some(s);
                }
                Err(e) => self.failed(&e),
            }
        }
        self.store.as_deref_mut()
    }

    /// A store error: the connection is dropped and reopened later.
    fn failed(&mut self, e: &str) {
        if !self.failing {
            log::warn!("usage ledger: the store failed ({e}); records spill until it is back");
            self.failing = true;
        }
        self.store = None;
        self.reopen_at = Instant::now() + REOPEN;
    }

    /// Writes a batch; on failure it goes to the spill file, to be replayed.
    fn store_batch(&mut self, batch: Vec<UsageRecord>) {
        let result = match self.store() {
            Some(s) => s.insert(&batch),
            None => Err("not connected".to_string()),
        };
        match result {
            Ok(()) => self.stats.written.inc_by(batch.len() as u64),
            Err(e) => {
                self.stats.failed_batches.inc();
                self.failed(&e);
                let path = lock(&self.spill);
                match append(&path, &batch) {
                    Ok(()) => self.stats.spilled.inc_by(batch.len() as u64),
                    Err(e) => log::error!(
                        "usage ledger: cannot spill {} records to {}: {e}",
                        batch.len(),
                        path.display()
                    ),
                }
            }
        }
    }

    /// Moves spilled records into the store. The spill file is first renamed (under its
    /// lock), so records spilled meanwhile start a new file; records are kept by id, so one
    /// replayed twice (after a failed attempt) is stored once.
    fn replay(&mut self) {
        let taken = {
            let path = lock(&self.spill);
            let taken = replay_path(&path);
            if !taken.exists() && std::fs::rename(&*path, &taken).is_err() {
                return;
            }
            taken
        };
        if self.store().is_none() {
            return;
        }
        let Ok(f) = std::fs::File::open(&taken) else {
            return;
        };
        let mut recs = Vec::new();
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            match serde_json::from_str::<UsageRecord>(&line) {
                Ok(r) => recs.push(r),
                Err(_) => log::warn!("usage ledger: skipping a malformed spilled record"),
            }
        }
        for chunk in recs.chunks(BATCH) {
            let result = match self.store() {
                Some(s) => s.insert(chunk),
                None => Err("not connected".to_string()),
            };
            if let Err(e) = result {
                self.failed(&e);
                return;
            }
            self.stats.written.inc_by(chunk.len() as u64);
        }
        match std::fs::remove_file(&taken) {
            Ok(()) if !recs.is_empty() => {
                log::info!("usage ledger: {} spilled records stored", recs.len())
            }
            Ok(()) => {}
            Err(e) => log::warn!("usage ledger: cannot remove {}: {e}", taken.display()),
        }
    }

    fn prune(&mut self) {
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        let retention = self.retention;
        let Some(s) = self.store() else { return };
        match s.prune(retention) {
            Ok(n) if n > 0 => log::info!("usage ledger: pruned {n} expired records"),
            Ok(_) => {}
            Err(e) => log::warn!("usage ledger: pruning failed: {e}"),
        }
        self.last_prune = Some(Instant::now());
    }
}

/// Appends records to a spill file, one JSON object per line.
pub(super) fn append(path: &Path, recs: &[UsageRecord]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = Vec::new();
    for r in recs {
        serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)
}

/// Where the writer moves a spill file while it replays it.
fn replay_path(spill: &Path) -> PathBuf {
    let mut p = spill.as_os_str().to_owned();
    p.push(".replaying");
    PathBuf::from(p)
}

//! What a ledger store does, whichever database keeps it: store batches of records, prune
//! old ones, and answer the few queries the usage API, the CLI and the dashboard are built
//! from. Each query is bounded (a time range, a row limit), so a large ledger answers in
//! bounded time and memory.

use std::time::Duration;

use super::postgres::Postgres;
use super::query::{Group, Row};
use super::sqlite::Sqlite;
use super::UsageRecord;
use crate::config::UsageStore;

/// The columns of a record, in [`UsageRecord`] order (the same in every store).
pub(super) const COLUMNS: &str = "id, ts_ms, request_id, key, model, provider, upstream_model, \
    api, stream, status, error, prompt_tokens, completion_tokens, cached_tokens, \
    reasoning_tokens, cost_usd, latency_ms, ttft_ms, attempts, failovers, guardrails, limited, team, cache";

/// The `WHERE` of [`Store::recent`]'s failed records (the same in every store).
pub(super) const FAILED: &str = "(error IS NOT NULL OR status >= 400)";

/// Rows the latency and guardrail queries read at most (the newest in the range).
pub const SAMPLE_ROWS: usize = 100_000;

/// One request's timing, for percentiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub model: Option<String>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
}

/// A ledger store.
pub trait Store: Send {
    /// Stores records in one transaction; a record already stored (same id) is kept once.
    fn insert(&mut self, recs: &[UsageRecord]) -> Result<(), String>;

    /// Deletes records that arrived before `now - retention`.
    fn prune(&mut self, retention: Duration) -> Result<u64, String>;

    /// Requests, errors, tokens and cost since `since_ms`, grouped by `by` (in `by`'s order,
    /// sorted by the groups; days and hours in UTC as `2026-11-29` and `2026-11-29T14:00Z`).
    fn summary(&mut self, since_ms: u64, by: &[Group]) -> Result<Vec<Row>, String>;

    /// The latest `limit` records since `since_ms`, newest first; only failed ones (an
    /// error label or a status of 400 or more) when `failed` is set.
    fn recent(
        &mut self,
        since_ms: u64,
        limit: usize,
        failed: bool,
    ) -> Result<Vec<UsageRecord>, String>;

    /// Model, latency and time to first token of the latest `limit` records since `since_ms`
    /// that reached a provider (at least one attempt): refusals would only dilute them.
    fn timings(&mut self, since_ms: u64, limit: usize) -> Result<Vec<Timing>, String>;

    /// The guardrail actions (`direction:guardrail`) of the latest `limit` records since
    /// `since_ms` that have any, one entry per action.
    fn guardrail_actions(&mut self, since_ms: u64, limit: usize) -> Result<Vec<String>, String>;
}

/// Opens the configured store for writing, creating or migrating its schema.
pub fn open(store: &UsageStore) -> Result<Box<dyn Store>, String> {
    match store {
        UsageStore::Sqlite { path } => Ok(Box::new(Sqlite::open(path)?)),
        UsageStore::Postgres { url } => Ok(Box::new(Postgres::open(url)?)),
    }
}

/// Opens the configured store for queries only.
pub fn open_read_only(store: &UsageStore) -> Result<Box<dyn Store>, String> {
    match store {
        UsageStore::Sqlite { path } => Ok(Box::new(Sqlite::open_read_only(path)?)),
        UsageStore::Postgres { url } => Ok(Box::new(Postgres::open_read_only(url)?)),
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Guardrail actions as stored: `input:a,output:b` → each action.
pub fn split_actions(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|g| !g.is_empty())
}

//! The embedded ledger store: one SQLite file (WAL mode), its schema created and migrated by
//! sluice, one row per request, indexed by time and by key.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags};

use super::query::{Group, Row};
use super::UsageRecord;

/// The schema's version (`PRAGMA user_version`); each migration step raises it by one.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    key TEXT,
    model TEXT,
    provider TEXT,
    upstream_model TEXT,
    api TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    attempts INTEGER NOT NULL,
    guardrails TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts_ms);
CREATE INDEX IF NOT EXISTS usage_key_ts ON usage (key, ts_ms);
";

pub struct Store {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Store {
    /// Opens (or creates) the store for writing and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| format!("cannot open the usage ledger {}: {e}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(format!(
                "the usage ledger {} has schema version {version}, newer than this sluice \
                 understands ({SCHEMA_VERSION})",
                path.display()
            ));
        }
        if version < 1 {
            conn.execute_batch(SCHEMA_V1).map_err(db_err)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        Ok(Store { conn })
    }

    /// Opens an existing store read-only (for queries from the CLI).
    pub fn open_read_only(path: &Path) -> Result<Store, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open the usage ledger {}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        Ok(Store { conn })
    }

    /// Stores records in one transaction; a record already stored (same id) is kept once.
    pub fn insert(&mut self, recs: &[UsageRecord]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(db_err)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO usage (id, ts_ms, request_id, key, model, provider, \
                     upstream_model, api, stream, status, error, prompt_tokens, \
                     completion_tokens, cached_tokens, cost_usd, latency_ms, ttft_ms, attempts, \
                     guardrails) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
                     ?14, ?15, ?16, ?17, ?18, ?19)",
                )
                .map_err(db_err)?;
            for r in recs {
                st.execute(params![
                    r.id as i64,
                    r.ts_ms as i64,
                    r.request_id,
                    r.key,
                    r.model,
                    r.provider,
                    r.upstream_model,
                    r.api,
                    r.stream,
                    r.status,
                    r.error,
                    r.prompt_tokens as i64,
                    r.completion_tokens as i64,
                    r.cached_tokens as i64,
                    r.cost_usd,
                    r.latency_ms as i64,
                    r.ttft_ms.map(|t| t as i64),
                    r.attempts,
                    r.guardrails.join(","),
                ])
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Deletes records older than `retention`.
    pub fn prune(&mut self, retention: Duration) -> Result<usize, String> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let cutoff = now_ms.saturating_sub(retention.as_millis() as i64);
        self.conn
            .execute("DELETE FROM usage WHERE ts_ms < ?1", params![cutoff])
            .map_err(db_err)
    }

    /// Requests, errors, tokens and cost since `since_ms`, grouped by `by`.
    pub fn summary(&self, since_ms: u64, by: &[Group]) -> Result<Vec<Row>, String> {
        let groups: Vec<&str> = by.iter().map(|g| g.sql()).collect();
        let mut select = groups.clone();
        select.extend([
            "COUNT(*)",
            "SUM(error IS NOT NULL)",
            "SUM(prompt_tokens)",
            "SUM(completion_tokens)",
            "SUM(cost_usd)",
        ]);
        let mut sql = format!("SELECT {} FROM usage WHERE ts_ms >= ?1", select.join(", "));
        if !groups.is_empty() {
            let ordinals: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
            sql.push_str(&format!(" GROUP BY {0} ORDER BY {0}", ordinals.join(", ")));
        }
        let mut st = self.conn.prepare(&sql).map_err(db_err)?;
        let n = groups.len();
        let rows = st
            .query_map(params![since_ms as i64], |r| {
                let mut fields = Vec::with_capacity(n);
                for i in 0..n {
                    fields.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
                }
                Ok(Row {
                    groups: fields,
                    requests: r.get::<_, i64>(n)? as u64,
                    errors: r.get::<_, Option<i64>>(n + 1)?.unwrap_or(0) as u64,
                    prompt_tokens: r.get::<_, Option<i64>>(n + 2)?.unwrap_or(0) as u64,
                    completion_tokens: r.get::<_, Option<i64>>(n + 3)?.unwrap_or(0) as u64,
                    cost_usd: r.get::<_, Option<f64>>(n + 4)?.unwrap_or(0.0),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<Row>, _>>().map_err(db_err)
    }

    /// The latest `limit` records, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<UsageRecord>, String> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, ts_ms, request_id, key, model, provider, upstream_model, api, stream, \
                 status, error, prompt_tokens, completion_tokens, cached_tokens, cost_usd, \
                 latency_ms, ttft_ms, attempts, guardrails FROM usage \
                 ORDER BY ts_ms DESC, id DESC LIMIT ?1",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![limit as i64], |r| {
                let guardrails: String = r.get(18)?;
                Ok(UsageRecord {
                    id: r.get::<_, i64>(0)? as u64,
                    ts_ms: r.get::<_, i64>(1)? as u64,
                    request_id: r.get(2)?,
                    key: r.get(3)?,
                    model: r.get(4)?,
                    provider: r.get(5)?,
                    upstream_model: r.get(6)?,
                    api: r.get(7)?,
                    stream: r.get(8)?,
                    status: r.get(9)?,
                    error: r.get(10)?,
                    prompt_tokens: r.get::<_, i64>(11)? as u64,
                    completion_tokens: r.get::<_, i64>(12)? as u64,
                    cached_tokens: r.get::<_, i64>(13)? as u64,
                    cost_usd: r.get(14)?,
                    latency_ms: r.get::<_, i64>(15)? as u64,
                    ttft_ms: r.get::<_, Option<i64>>(16)?.map(|t| t as u64),
                    attempts: r.get(17)?,
                    guardrails: guardrails
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

//! The embedded ledger store: one SQLite file (WAL mode), its schema created and migrated by
//! sluice, one row per request, indexed by time and by key.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};

use super::query::{Group, Row};
use super::sqlite_keys::KEYS_TABLE;
use super::store::{now_ms, split_actions, Store, Timing, COLUMNS, FAILED};
use super::UsageRecord;

/// The schema's version (`PRAGMA user_version`); each migration step raises it by one.
const SCHEMA_VERSION: i64 = 4;

/// Version 1: the records, indexed by time and by key.
pub(crate) const SCHEMA_V1: &str = "
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

/// Version 2: reasoning tokens, failovers and the limit that refused a request.
pub(crate) const SCHEMA_V2: &str = "
ALTER TABLE usage ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN failovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN limited TEXT;
";

/// Version 3: the team a request was made for; the managed keys' table
/// ([`super::sqlite_keys::KEYS_TABLE`]) comes with it.
pub(crate) const SCHEMA_V3: &str = "ALTER TABLE usage ADD COLUMN team TEXT;";

/// Version 4: what the response cache did (`hit`, `miss`, `bypass`).
pub(crate) const SCHEMA_V4: &str = "ALTER TABLE usage ADD COLUMN cache TEXT;";

/// An SQLite ledger.
pub struct Sqlite {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Sqlite {
    /// Opens (or creates) the store for writing and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite, String> {
        Ok(Sqlite {
            conn: connect(path)?,
        })
    }

    /// Opens an existing store read-only (for queries from the CLI).
    pub fn open_read_only(path: &Path) -> Result<Sqlite, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open the usage ledger {}: {e}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        Ok(Sqlite { conn })
    }
}

/// Opens (or creates) the ledger's file for writing — WAL mode, so that readers and one
/// writer do not wait on each other, and a busy timeout for writers of other processes (the
/// gateway's writer, the CLI) — and brings its schema up to date.
pub(super) fn connect(path: &Path) -> Result<Connection, String> {
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
    migrate(&conn).map_err(|e| format!("the usage ledger {}: {e}", path.display()))?;
    Ok(conn)
}

/// Brings the schema up to date, in one transaction that holds the write lock: two
/// processes opening the same file at once migrate it once.
fn migrate(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    let result = (|| {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(format!(
                "schema version {version} is newer than this sluice understands \
                 ({SCHEMA_VERSION})"
            ));
        }
        let steps = [
            (1, SCHEMA_V1),
            (2, SCHEMA_V2),
            (3, SCHEMA_V3),
            (3, KEYS_TABLE),
            (4, SCHEMA_V4),
        ];
        for (v, step) in steps {
            if version < v {
                conn.execute_batch(step)
                    .map_err(|e| format!("migrating to schema version {v}: {e}"))?;
            }
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(db_err)?;
    result
}

/// The SQL expression of a group (days and hours in UTC).
fn group_sql(g: Group) -> &'static str {
    match g {
        Group::Key => "key",
        Group::Team => "team",
        Group::Model => "model",
        Group::Provider => "provider",
        Group::Day => "strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch')",
        Group::Hour => "strftime('%Y-%m-%dT%H:00Z', ts_ms / 1000, 'unixepoch')",
    }
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<UsageRecord> {
    let u = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    let guardrails: String = r.get(20)?;
    Ok(UsageRecord {
        id: u(0)?,
        ts_ms: u(1)?,
        request_id: r.get(2)?,
        key: r.get(3)?,
        model: r.get(4)?,
        provider: r.get(5)?,
        upstream_model: r.get(6)?,
        api: r.get(7)?,
        stream: r.get(8)?,
        status: r.get(9)?,
        error: r.get(10)?,
        prompt_tokens: u(11)?,
        completion_tokens: u(12)?,
        cached_tokens: u(13)?,
        reasoning_tokens: u(14)?,
        cost_usd: r.get(15)?,
        latency_ms: u(16)?,
        ttft_ms: r.get::<_, Option<i64>>(17)?.map(|t| t as u64),
        attempts: r.get(18)?,
        failovers: r.get(19)?,
        guardrails: split_actions(&guardrails).map(str::to_string).collect(),
        limit: r.get(21)?,
        team: r.get(22)?,
        cache: r.get(23)?,
    })
}

impl Store for Sqlite {
    fn insert(&mut self, recs: &[UsageRecord]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(db_err)?;
        {
            let mut st = tx
                .prepare_cached(&format!(
                    "INSERT INTO usage ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                     ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) \
                     ON CONFLICT (id) DO NOTHING"
                ))
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
                    r.reasoning_tokens as i64,
                    r.cost_usd,
                    r.latency_ms as i64,
                    r.ttft_ms.map(|t| t as i64),
                    r.attempts,
                    r.failovers,
                    r.guardrails.join(","),
                    r.limit,
                    r.team,
                    r.cache,
                ])
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    fn prune(&mut self, retention: Duration) -> Result<u64, String> {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        self.conn
            .execute("DELETE FROM usage WHERE ts_ms < ?1", params![cutoff as i64])
            .map(|n| n as u64)
            .map_err(db_err)
    }

    fn summary(&mut self, since_ms: u64, by: &[Group]) -> Result<Vec<Row>, String> {
        let groups: Vec<&str> = by.iter().map(|g| group_sql(*g)).collect();
        let mut select = groups.clone();
        select.extend([
            "COUNT(*)",
            "SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END)",
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
                let int = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
                Ok(Row {
                    groups: fields,
                    requests: int(n)?,
                    errors: int(n + 1)?,
                    prompt_tokens: int(n + 2)?,
                    completion_tokens: int(n + 3)?,
                    cost_usd: r.get::<_, Option<f64>>(n + 4)?.unwrap_or(0.0),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<Row>, _>>().map_err(db_err)
    }

    fn recent(
        &mut self,
        since_ms: u64,
        limit: usize,
        failed: bool,
    ) -> Result<Vec<UsageRecord>, String> {
        let filter = if failed { FAILED } else { "1 = 1" };
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM usage WHERE ts_ms >= ?1 AND {filter} \
                 ORDER BY ts_ms DESC, id DESC LIMIT ?2"
            ))
            .map_err(db_err)?;
        let rows = st
            .query_map(params![since_ms as i64, limit as i64], record)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    fn timings(&mut self, since_ms: u64, limit: usize) -> Result<Vec<Timing>, String> {
        let mut st = self
            .conn
            .prepare(
                "SELECT model, latency_ms, ttft_ms FROM usage WHERE ts_ms >= ?1 \
                 AND attempts > 0 ORDER BY ts_ms DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![since_ms as i64, limit as i64], |r| {
                Ok(Timing {
                    model: r.get(0)?,
                    latency_ms: r.get::<_, i64>(1)? as u64,
                    ttft_ms: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    fn guardrail_actions(&mut self, since_ms: u64, limit: usize) -> Result<Vec<String>, String> {
        let mut st = self
            .conn
            .prepare(
                "SELECT guardrails FROM usage WHERE ts_ms >= ?1 AND guardrails <> '' \
                 ORDER BY ts_ms DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![since_ms as i64, limit as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(split_actions(&r.map_err(db_err)?).map(str::to_string));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::query::to_csv;

    #[test]
    fn records_keep_their_team_and_group_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Sqlite::open(&dir.path().join("usage.db")).unwrap();
        let rec = |id: u64, key: &str, team: Option<&str>| UsageRecord {
            id,
            ts_ms: 1_000 + id,
            request_id: format!("r{id}"),
            key: Some(key.into()),
            team: team.map(str::to_string),
            api: "openai".into(),
            status: 200,
            prompt_tokens: id,
            ..UsageRecord::default()
        };
        let recs = [
            rec(1, "a", Some("search")),
            rec(2, "b", Some("search")),
            rec(3, "c", Some("ads")),
            rec(4, "d", None),
        ];
        store.insert(&recs).unwrap();
        let rows = store.summary(0, &[Group::Team]).unwrap();
        let teams: Vec<(&str, u64, u64)> = (rows.iter())
            .map(|r| (r.groups[0].as_str(), r.requests, r.prompt_tokens))
            .collect();
        assert_eq!(teams, [("", 1, 4), ("ads", 1, 3), ("search", 2, 3)]);
        let csv = to_csv(&[Group::Team], &rows);
        assert!(csv.starts_with("team,requests,"), "{csv}");
        assert!(csv.contains("\nsearch,2,0,3,0,0.0\n"), "{csv}");
        let by_two = store.summary(0, &[Group::Team, Group::Key]).unwrap();
        assert_eq!(by_two.len(), 4);
        assert_eq!(by_two[3].groups, ["search", "b"]);
        let recent = store.recent(0, 10, false).unwrap();
        assert_eq!(recent[0].team, None);
        assert_eq!(recent[1].team.as_deref(), Some("ads"));
        assert_eq!(recent[3], recs[0]);
    }
}

//! The ledger in PostgreSQL (`usage.store: postgres`): the same records, queries and
//! semantics as the SQLite store, for gateways that share one ledger. Its schema is created
//! and migrated by sluice in one transaction under an advisory lock (two instances starting
//! together migrate once), versioned in `sluice_schema`.
//!
//! The client is `tokio-postgres` on a small runtime of the store's own, so that every call
//! has a deadline: a database that hangs cannot stall the writer (the call fails, the writer
//! drops the connection and spills until the database answers again). The server also
//! cancels any statement that runs past its `statement_timeout`.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Socket, Statement};

use super::pg_tls::MakeRustls;
use super::postgres_keys::KEYS_TABLE;
use super::query::{Group, Row};
use super::store::{now_ms, split_actions, Store, Timing, COLUMNS, FAILED};
use super::UsageRecord;
use crate::config::pg_url::{postgres_target, PgTls};
use crate::core::secret::Secret;

/// The schema's version (in `sluice_schema`); each migration step raises it by one. The
/// PostgreSQL store starts at 2, the SQLite store's version with the same columns.
const SCHEMA_VERSION: i32 = 4;

/// The advisory lock that serialises migrations (`sluice` in ASCII).
const MIGRATION_LOCK: i64 = 0x73_6c_75_69_63_65;

const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS sluice_usage (
    id BIGINT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    key TEXT,
    model TEXT,
    provider TEXT,
    upstream_model TEXT,
    api TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    status INTEGER NOT NULL,
    error TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    attempts INTEGER NOT NULL,
    failovers INTEGER NOT NULL DEFAULT 0,
    guardrails TEXT NOT NULL,
    limited TEXT
);
CREATE INDEX IF NOT EXISTS sluice_usage_ts ON sluice_usage (ts_ms);
CREATE INDEX IF NOT EXISTS sluice_usage_key_ts ON sluice_usage (key, ts_ms);
";

/// Version 3: the team a request was made for, and the managed keys' table.
const SCHEMA_V3: &str = "ALTER TABLE sluice_usage ADD COLUMN IF NOT EXISTS team TEXT;";

/// Version 4: what the response cache did (`hit`, `miss`, `bypass`).
const SCHEMA_V4: &str = "ALTER TABLE sluice_usage ADD COLUMN IF NOT EXISTS cache TEXT;";

/// The migration steps: the version each brings the schema to, and its SQL.
const MIGRATIONS: &[(i32, &str)] = &[
    (2, SCHEMA_V2),
    (3, SCHEMA_V3),
    (3, KEYS_TABLE),
    (4, SCHEMA_V4),
];

/// The column types, in [`COLUMNS`] order (a batch goes in as one array per column).
const TYPES: [&str; 24] = [
    "BIGINT",
    "BIGINT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "BOOLEAN",
    "INTEGER",
    "TEXT",
    "BIGINT",
    "BIGINT",
    "BIGINT",
    "BIGINT",
    "DOUBLE PRECISION",
    "BIGINT",
    "BIGINT",
    "INTEGER",
    "INTEGER",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
];

/// How long the server lets one statement of the writer run, and one of a query.
const WRITE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
const QUERY_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer the client waits for an answer before it gives the connection up.
const GRACE: Duration = Duration::from_secs(5);

/// A PostgreSQL ledger.
pub struct Postgres {
    pub(super) rt: Runtime,
    pub(super) client: Client,
    /// How long one call may take before the connection is given up.
    pub(super) deadline: Duration,
    /// The batch insert, prepared on first use.
    insert: Option<Statement>,
}

/// The client's error with its cause (the server's message, the I/O error).
pub(super) fn pg_err(e: tokio_postgres::Error) -> String {
    match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Runs `f` on the store's runtime, giving up after `deadline`.
pub(super) fn block<T>(
    rt: &Runtime,
    deadline: Duration,
    f: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    // The timer is made inside the runtime (it needs its clock).
    rt.block_on(async { tokio::time::timeout(deadline, f).await })
        .unwrap_or_else(|_| {
            Err(format!(
                "the database did not answer within {}s",
                deadline.as_secs()
            ))
        })
}

impl Postgres {
    /// Connects and brings the schema up to date.
    pub fn open(url: &Secret) -> Result<Postgres, String> {
        let mut pg = Postgres::connect(url, WRITE_STATEMENT_TIMEOUT)?;
        pg.migrate()?;
        Ok(pg)
    }

    /// Connects for queries only (read-only transactions); the schema must exist.
    pub fn open_read_only(url: &Secret) -> Result<Postgres, String> {
        let pg = Postgres::connect(url, QUERY_STATEMENT_TIMEOUT)?;
        let version = block(&pg.rt, pg.deadline, async {
            pg.client
                .batch_execute("SET default_transaction_read_only = on")
                .await
                .map_err(pg_err)?;
            schema_version(&pg.client).await
        })?;
        match version {
            0 => Err(NO_SCHEMA.into()),
            v if v > SCHEMA_VERSION => Err(newer(v)),
            _ => Ok(pg),
        }
    }

    fn connect(url: &Secret, statement_timeout: Duration) -> Result<Postgres, String> {
        let target = postgres_target(url.expose()).map_err(|e| format!("usage.url {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the database client: {e}"))?;
        let connect_timeout = target.config.get_connect_timeout().copied();
        let deadline = connect_timeout.unwrap_or_default() + statement_timeout + GRACE;
        // No TLS over a Unix socket (the server offers none there).
        let unix = (target.config.get_hosts().iter()).all(|h| !matches!(h, Host::Tcp(_)));
        let client = if target.tls == PgTls::Disable || unix {
            block(&rt, deadline, connect_with(&target.config, NoTls))?
        } else {
            let tls = MakeRustls::new(target.tls, target.root_cert.as_deref())?;
            block(&rt, deadline, connect_with(&target.config, tls))?
        };
        let set = format!("SET statement_timeout = {}", statement_timeout.as_millis());
        block(&rt, deadline, async {
            client.batch_execute(&set).await.map_err(pg_err)
        })?;
        Ok(Postgres {
            rt,
            client,
            deadline: statement_timeout + GRACE,
            insert: None,
        })
    }

    /// Brings the schema up to date in one transaction holding the migration lock.
    fn migrate(&mut self) -> Result<(), String> {
        let client = &mut self.client;
        block(&self.rt, self.deadline, async move {
            let tx = client.transaction().await.map_err(pg_err)?;
            let lock = format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})");
            tx.batch_execute(&lock).await.map_err(pg_err)?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)")
                .await
                .map_err(pg_err)?;
            let version = schema_version(&tx).await?;
            if version > SCHEMA_VERSION {
                return Err(newer(version));
            }
            for (v, step) in MIGRATIONS {
                if version < *v {
                    tx.batch_execute(step)
                        .await
                        .map_err(|e| format!("migrating to schema version {v}: {}", pg_err(e)))?;
                }
            }
            if version < SCHEMA_VERSION {
                let set = format!(
                    "DELETE FROM sluice_schema; \
                     INSERT INTO sluice_schema (version) VALUES ({SCHEMA_VERSION})"
                );
                tx.batch_execute(&set).await.map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)
        })
        .map_err(|e| format!("the usage ledger's schema: {e}"))
    }

    /// Runs a query with a deadline, mapping its rows.
    pub(super) fn rows<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&tokio_postgres::Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>, String> {
        block(&self.rt, self.deadline, async {
            let rows = self.client.query(sql, params).await.map_err(pg_err)?;
            rows.iter()
                .map(&map)
                .collect::<Result<_, _>>()
                .map_err(pg_err)
        })
    }
}

const NO_SCHEMA: &str =
    "the usage ledger has no schema yet: sluice creates it when its writer first reaches \
     the database";

fn newer(version: i32) -> String {
    format!("schema version {version} is newer than this sluice understands ({SCHEMA_VERSION})")
}

/// The schema's version (0: no schema).
async fn schema_version(c: &impl tokio_postgres::GenericClient) -> Result<i32, String> {
    let exists = c
        .query_one("SELECT to_regclass('sluice_schema') IS NOT NULL", &[])
        .await
        .map_err(pg_err)?;
    if !exists.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = c
        .query_one("SELECT MAX(version) FROM sluice_schema", &[])
        .await
        .map_err(pg_err)?;
    Ok(row.get::<_, Option<i32>>(0).unwrap_or(0))
}

/// Connects; the connection runs on the store's runtime while a call waits on it.
async fn connect_with<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, String>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("usage ledger: database connection closed: {e}");
        }
    });
    Ok(client)
}

/// A batch as one array per column, for `INSERT … SELECT * FROM UNNEST(…)`.
#[derive(Default)]
struct Columns {
    ints: [Vec<i64>; 7],
    ttft: Vec<Option<i64>>,
    texts: [Vec<String>; 3],
    opts: [Vec<Option<String>>; 8],
    stream: Vec<bool>,
    small: [Vec<i32>; 3],
    cost: Vec<f64>,
}

impl Columns {
    fn new(recs: &[UsageRecord]) -> Columns {
        let mut c = Columns::default();
        for r in recs {
            let ints = [
                r.id,
                r.ts_ms,
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_tokens,
                r.reasoning_tokens,
                r.latency_ms,
            ];
            for (col, v) in c.ints.iter_mut().zip(ints) {
                col.push(v as i64);
            }
            c.ttft.push(r.ttft_ms.map(|t| t as i64));
            let texts = [r.request_id.clone(), r.api.clone(), r.guardrails.join(",")];
            for (col, v) in c.texts.iter_mut().zip(texts) {
                col.push(v);
            }
            let opts = [
                &r.key,
                &r.model,
                &r.provider,
                &r.upstream_model,
                &r.error,
                &r.limit,
                &r.team,
                &r.cache,
            ];
            for (col, v) in c.opts.iter_mut().zip(opts) {
                col.push(v.clone());
            }
            c.stream.push(r.stream);
            let small = [i32::from(r.status), r.attempts as i32, r.failovers as i32];
            for (col, v) in c.small.iter_mut().zip(small) {
                col.push(v);
            }
            c.cost.push(r.cost_usd);
        }
        c
    }

    /// The parameters, in [`COLUMNS`] order.
    fn params(&self) -> [&(dyn ToSql + Sync); 24] {
        let (i, t, o, s) = (&self.ints, &self.texts, &self.opts, &self.small);
        [
            &i[0],
            &i[1],
            &t[0],
            &o[0],
            &o[1],
            &o[2],
            &o[3],
            &t[1],
            &self.stream,
            &s[0],
            &o[4],
            &i[2],
            &i[3],
            &i[4],
            &i[5],
            &self.cost,
            &i[6],
            &self.ttft,
            &s[1],
            &s[2],
            &t[2],
            &o[5],
            &o[6],
            &o[7],
        ]
    }
}

/// The batch insert: one statement, one array per column.
fn insert_sql() -> String {
    let arrays: Vec<String> = (TYPES.iter().enumerate())
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    format!(
        "INSERT INTO sluice_usage ({COLUMNS}) SELECT * FROM UNNEST({}) \
         ON CONFLICT (id) DO NOTHING",
        arrays.join(", ")
    )
}

/// The SQL expression of a group (days and hours in UTC, labelled as the SQLite store does).
fn group_sql(g: Group) -> &'static str {
    match g {
        Group::Key => "key",
        Group::Team => "team",
        Group::Model => "model",
        Group::Provider => "provider",
        Group::Day => "to_char(to_timestamp(ts_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        Group::Hour => {
            "to_char(to_timestamp(ts_ms / 1000) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24:00\"Z\"')"
        }
    }
}

/// The summary query: the groups, then the totals; groups sort as SQLite sorts them (byte
/// order, no group first).
fn summary_sql(by: &[Group]) -> String {
    let groups: Vec<&str> = by.iter().map(|g| group_sql(*g)).collect();
    let mut select: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    select.extend(
        [
            "COUNT(*)",
            "COUNT(error)",
            "SUM(prompt_tokens)::BIGINT",
            "SUM(completion_tokens)::BIGINT",
            "SUM(cost_usd)",
        ]
        .map(str::to_string),
    );
    let mut sql = format!(
        "SELECT {} FROM sluice_usage WHERE ts_ms >= $1",
        select.join(", ")
    );
    if !groups.is_empty() {
        let ordinals: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
        let order: Vec<String> = (groups.iter())
            .map(|g| format!("({g}) COLLATE \"C\" NULLS FIRST"))
            .collect();
        sql.push_str(&format!(
            " GROUP BY {} ORDER BY {}",
            ordinals.join(", "),
            order.join(", ")
        ));
    }
    sql
}

fn record(r: &tokio_postgres::Row) -> Result<UsageRecord, tokio_postgres::Error> {
    let u = |i: usize| r.try_get::<_, i64>(i).map(|v| v as u64);
    let guardrails: String = r.try_get(20)?;
    Ok(UsageRecord {
        id: u(0)?,
        ts_ms: u(1)?,
        request_id: r.try_get(2)?,
        key: r.try_get(3)?,
        model: r.try_get(4)?,
        provider: r.try_get(5)?,
        upstream_model: r.try_get(6)?,
        api: r.try_get(7)?,
        stream: r.try_get(8)?,
        status: r.try_get::<_, i32>(9)? as u16,
        error: r.try_get(10)?,
        prompt_tokens: u(11)?,
        completion_tokens: u(12)?,
        cached_tokens: u(13)?,
        reasoning_tokens: u(14)?,
        cost_usd: r.try_get(15)?,
        latency_ms: u(16)?,
        ttft_ms: r.try_get::<_, Option<i64>>(17)?.map(|t| t as u64),
        attempts: r.try_get::<_, i32>(18)? as u32,
        failovers: r.try_get::<_, i32>(19)? as u32,
        guardrails: split_actions(&guardrails).map(str::to_string).collect(),
        limit: r.try_get(21)?,
        team: r.try_get(22)?,
        cache: r.try_get(23)?,
    })
}

fn summary_row(r: &tokio_postgres::Row, n: usize) -> Result<Row, tokio_postgres::Error> {
    let mut groups = Vec::with_capacity(n);
    for i in 0..n {
        groups.push(r.try_get::<_, Option<String>>(i)?.unwrap_or_default());
    }
    let int = |i: usize| {
        r.try_get::<_, Option<i64>>(i)
            .map(|v| v.unwrap_or(0) as u64)
    };
    Ok(Row {
        groups,
        requests: int(n)?,
        errors: int(n + 1)?,
        prompt_tokens: int(n + 2)?,
        completion_tokens: int(n + 3)?,
        cost_usd: r.try_get::<_, Option<f64>>(n + 4)?.unwrap_or(0.0),
    })
}

impl Store for Postgres {
    fn insert(&mut self, recs: &[UsageRecord]) -> Result<(), String> {
        if recs.is_empty() {
            return Ok(());
        }
        let cols = Columns::new(recs);
        let (client, cached) = (&self.client, &mut self.insert);
        block(&self.rt, self.deadline, async {
            let st = match cached.clone() {
                Some(st) => st,
                None => {
                    let st = client.prepare(&insert_sql()).await.map_err(pg_err)?;
                    *cached = Some(st.clone());
                    st
                }
            };
            client.execute(&st, &cols.params()).await.map_err(pg_err)?;
            Ok(())
        })
    }

    fn prune(&mut self, retention: Duration) -> Result<u64, String> {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64) as i64;
        block(&self.rt, self.deadline, async {
            (self.client)
                .execute("DELETE FROM sluice_usage WHERE ts_ms < $1", &[&cutoff])
                .await
                .map_err(pg_err)
        })
    }

    fn summary(&mut self, since_ms: u64, by: &[Group]) -> Result<Vec<Row>, String> {
        let n = by.len();
        self.rows(&summary_sql(by), &[&(since_ms as i64)], |r| {
            summary_row(r, n)
        })
    }

    fn recent(
        &mut self,
        since_ms: u64,
        limit: usize,
        failed: bool,
    ) -> Result<Vec<UsageRecord>, String> {
        let filter = if failed { FAILED } else { "TRUE" };
        let sql = format!(
            "SELECT {COLUMNS} FROM sluice_usage WHERE ts_ms >= $1 AND {filter} \
             ORDER BY ts_ms DESC, id DESC LIMIT $2"
        );
        self.rows(&sql, &[&(since_ms as i64), &(limit as i64)], record)
    }

    fn timings(&mut self, since_ms: u64, limit: usize) -> Result<Vec<Timing>, String> {
        let sql = "SELECT model, latency_ms, ttft_ms FROM sluice_usage WHERE ts_ms >= $1 \
                   AND attempts > 0 ORDER BY ts_ms DESC LIMIT $2";
        self.rows(sql, &[&(since_ms as i64), &(limit as i64)], |r| {
            Ok(Timing {
                model: r.try_get(0)?,
                latency_ms: r.try_get::<_, i64>(1)? as u64,
                ttft_ms: r.try_get::<_, Option<i64>>(2)?.map(|t| t as u64),
            })
        })
    }

    fn guardrail_actions(&mut self, since_ms: u64, limit: usize) -> Result<Vec<String>, String> {
        let sql = "SELECT guardrails FROM sluice_usage WHERE ts_ms >= $1 AND guardrails <> '' \
                   ORDER BY ts_ms DESC LIMIT $2";
        let rows = self.rows(sql, &[&(since_ms as i64), &(limit as i64)], |r| {
            r.try_get::<_, String>(0)
        })?;
        Ok(rows
            .iter()
            .flat_map(|s| split_actions(s).map(str::to_string))
            .collect())
    }
}

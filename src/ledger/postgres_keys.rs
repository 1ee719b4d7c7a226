//! Managed keys in the PostgreSQL ledger (table `sluice_keys`), over the usage store's own
//! connection code: the same TLS, deadlines and statement timeout, the schema migrated under
//! the same advisory lock.

use tokio_postgres::types::ToSql;

use super::keys::{
    replace_all, rotate_set, KeyRow, KeyStore, KeyStoreError, StoredKey, KEY_COLUMNS,
};
use super::postgres::{block, pg_err, Postgres};
use crate::core::secret::Secret;

/// The keys' table, created by schema version 3. Lists and maps are JSON text.
pub(crate) const KEYS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS sluice_keys (
    name TEXT PRIMARY KEY,
    sha256 BYTEA NOT NULL,
    prefix TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT,
    models TEXT NOT NULL,
    limits TEXT,
    guardrails TEXT,
    metadata TEXT NOT NULL,
    previous_sha256 BYTEA,
    previous_until_ms BIGINT,
    updated_ms BIGINT NOT NULL
);
";

/// Managed keys in PostgreSQL.
pub struct PostgresKeys {
    pg: Postgres,
}

fn key_row(r: &tokio_postgres::Row) -> Result<KeyRow, tokio_postgres::Error> {
    Ok(KeyRow {
        name: r.try_get(0)?,
        sha256: r.try_get(1)?,
        prefix: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        expires_ms: r.try_get(4)?,
        revoked_ms: r.try_get(5)?,
        models: r.try_get(6)?,
        limits: r.try_get(7)?,
        guardrails: r.try_get(8)?,
        metadata: r.try_get(9)?,
        previous_sha256: r.try_get(10)?,
        previous_until_ms: r.try_get(11)?,
        updated_ms: r.try_get(12)?,
    })
}

impl PostgresKeys {
    /// Connects as the usage store's writer does and brings the schema up to date.
    pub fn open(url: &Secret) -> Result<PostgresKeys, String> {
        Ok(PostgresKeys {
            pg: Postgres::open(url)?,
        })
    }

    /// The keys a query returns.
    fn keys(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<StoredKey>, KeyStoreError> {
        let rows = (self.pg)
            .rows(sql, params, key_row)
            .map_err(KeyStoreError::Backend)?;
        rows.into_iter().map(KeyRow::into_key).collect()
    }

    /// An update of one key that is not revoked, returning it (`$1` is the name).
    fn update(
        &self,
        name: &str,
        set: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<StoredKey, KeyStoreError> {
        let sql = format!(
            "UPDATE sluice_keys SET {set} WHERE name = $1 AND revoked_ms IS NULL \
             RETURNING {KEY_COLUMNS}"
        );
        let mut all: Vec<&(dyn ToSql + Sync)> = vec![&name];
        all.extend_from_slice(params);
        let found = self.keys(&sql, &all)?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| KeyStoreError::NotFound(name.to_string()))
    }
}

impl KeyStore for PostgresKeys {
    fn create(&mut self, key: &StoredKey) -> Result<(), KeyStoreError> {
        let k = KeyRow::of(key);
        let sql = format!(
            "INSERT INTO sluice_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13) ON CONFLICT (name) DO UPDATE SET {} \
             WHERE sluice_keys.revoked_ms IS NOT NULL",
            replace_all()
        );
        let params: [&(dyn ToSql + Sync); 13] = [
            &k.name,
            &k.sha256,
            &k.prefix,
            &k.created_ms,
            &k.expires_ms,
            &k.revoked_ms,
            &k.models,
            &k.limits,
            &k.guardrails,
            &k.metadata,
            &k.previous_sha256,
            &k.previous_until_ms,
            &k.updated_ms,
        ];
        let pg = &self.pg;
        let n = block(&pg.rt, pg.deadline, async {
            pg.client.execute(&sql, &params).await.map_err(pg_err)
        })
        .map_err(KeyStoreError::Backend)?;
        match n {
            0 => Err(KeyStoreError::Exists(key.name.clone())),
            _ => Ok(()),
        }
    }

    fn list(&mut self) -> Result<Vec<StoredKey>, KeyStoreError> {
        // Byte order, as SQLite sorts.
        let sql = format!("SELECT {KEY_COLUMNS} FROM sluice_keys ORDER BY name COLLATE \"C\"");
        self.keys(&sql, &[])
    }

    fn get(&mut self, name: &str) -> Result<Option<StoredKey>, KeyStoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM sluice_keys WHERE name = $1");
        Ok(self.keys(&sql, &[&name])?.into_iter().next())
    }

    fn revoke(&mut self, name: &str, now_ms: u64) -> Result<StoredKey, KeyStoreError> {
        let now = now_ms as i64;
        self.update(
            name,
            "revoked_ms = $2, updated_ms = $2, previous_sha256 = NULL, \
             previous_until_ms = NULL",
            &[&now],
        )
    }

    fn rotate(
        &mut self,
        name: &str,
        new_sha256: [u8; 32],
        new_prefix: &str,
        grace_until_ms: u64,
        now_ms: u64,
    ) -> Result<StoredKey, KeyStoreError> {
        let (digest, grace, now) = (new_sha256.to_vec(), grace_until_ms as i64, now_ms as i64);
        self.update(
            name,
            &rotate_set("$"),
            &[&digest, &new_prefix, &grace, &now],
        )
    }
}

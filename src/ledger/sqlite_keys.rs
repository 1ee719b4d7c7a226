//! Managed keys in the SQLite ledger's file (table `sluice_keys`), on a connection of their
//! own opened as the usage store opens one (WAL, busy timeout, schema migrated): the CLI can
//! write keys while a gateway reads them.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::keys::{
    replace_all, rotate_set, KeyRow, KeyStore, KeyStoreError, StoredKey, KEY_COLUMNS,
};
use super::sqlite::connect;

/// The keys' table, created by schema version 3. Lists and maps are JSON text.
pub(crate) const KEYS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS sluice_keys (
    name TEXT PRIMARY KEY,
    sha256 BLOB NOT NULL,
    prefix TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER,
    models TEXT NOT NULL,
    limits TEXT,
    guardrails TEXT,
    metadata TEXT NOT NULL,
    previous_sha256 BLOB,
    previous_until_ms INTEGER,
    updated_ms INTEGER NOT NULL
);
";

/// Managed keys in SQLite.
pub struct SqliteKeys {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> KeyStoreError {
    KeyStoreError::Backend(e.to_string())
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        name: r.get(0)?,
        sha256: r.get(1)?,
        prefix: r.get(2)?,
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        revoked_ms: r.get(5)?,
        models: r.get(6)?,
        limits: r.get(7)?,
        guardrails: r.get(8)?,
        metadata: r.get(9)?,
        previous_sha256: r.get(10)?,
        previous_until_ms: r.get(11)?,
        updated_ms: r.get(12)?,
    })
}

impl SqliteKeys {
    /// Opens (or creates) the ledger's file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteKeys, String> {
        Ok(SqliteKeys {
            conn: connect(path)?,
        })
    }

    /// An update of one key that is not revoked, returning it (`?1` is the name).
    fn update(
        &mut self,
        name: &str,
        set: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<StoredKey, KeyStoreError> {
        let sql = format!(
            "UPDATE sluice_keys SET {set} WHERE name = ?1 AND revoked_ms IS NULL \
             RETURNING {KEY_COLUMNS}"
        );
        let mut all: Vec<&dyn rusqlite::ToSql> = vec![&name];
        all.extend_from_slice(params);
        let row = (self.conn)
            .query_row(&sql, all.as_slice(), key_row)
            .optional()
            .map_err(db_err)?;
        row.ok_or_else(|| KeyStoreError::NotFound(name.to_string()))?
            .into_key()
    }
}

impl KeyStore for SqliteKeys {
    fn create(&mut self, key: &StoredKey) -> Result<(), KeyStoreError> {
        let k = KeyRow::of(key);
        let sql = format!(
            "INSERT INTO sluice_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
             ?9, ?10, ?11, ?12, ?13) ON CONFLICT (name) DO UPDATE SET {} \
             WHERE sluice_keys.revoked_ms IS NOT NULL",
            replace_all()
        );
        let n = (self.conn)
            .execute(
                &sql,
                params![
                    k.name,
                    k.sha256,
                    k.prefix,
                    k.created_ms,
                    k.expires_ms,
                    k.revoked_ms,
                    k.models,
                    k.limits,
                    k.guardrails,
                    k.metadata,
                    k.previous_sha256,
                    k.previous_until_ms,
                    k.updated_ms,
                ],
            )
            .map_err(db_err)?;
        match n {
            0 => Err(KeyStoreError::Exists(key.name.clone())),
            _ => Ok(()),
        }
    }

    fn list(&mut self) -> Result<Vec<StoredKey>, KeyStoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM sluice_keys ORDER BY name");
        let mut st = self.conn.prepare(&sql).map_err(db_err)?;
        let rows = st.query_map([], key_row).map_err(db_err)?;
        rows.map(|r| r.map_err(db_err)?.into_key()).collect()
    }

    fn get(&mut self, name: &str) -> Result<Option<StoredKey>, KeyStoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM sluice_keys WHERE name = ?1");
        let row = (self.conn)
            .query_row(&sql, params![name], key_row)
            .optional()
            .map_err(db_err)?;
        row.map(KeyRow::into_key).transpose()
    }

    fn revoke(&mut self, name: &str, now_ms: u64) -> Result<StoredKey, KeyStoreError> {
        let now = now_ms as i64;
        self.update(
            name,
            "revoked_ms = ?2, updated_ms = ?2, previous_sha256 = NULL, \
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
            &rotate_set("?"),
            &[&digest, &new_prefix, &grace, &now],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::UsageStore;
    use crate::ledger::keys::open_keys;
    use crate::ledger::sqlite::{SCHEMA_V1, SCHEMA_V2};
    use crate::ledger::{store, UsageRecord};

    fn key(name: &str, digest: u8, now: u64) -> StoredKey {
        StoredKey {
            name: name.into(),
            sha256: [digest; 32],
            prefix: format!("test-{digest:02x}"),
            created_ms: now,
            expires_ms: Some(now + 1_000_000),
            revoked_ms: None,
            models: vec!["gpt-*".into(), "claude-3".into()],
            limits: Some(r#"{"requests_per_minute":10}"#.into()),
            guardrails: Some(vec!["no-secrets".into()]),
            metadata: BTreeMap::from([
                ("team".into(), "search".into()),
                ("owner".into(), "ana".into()),
            ]),
            previous_sha256: None,
            previous_until_ms: None,
            updated_ms: now,
        }
    }

    fn store(dir: &Path) -> UsageStore {
        UsageStore::Sqlite {
            path: dir.join("usage.db"),
        }
    }

    #[test]
    fn keys_are_created_listed_revoked_rotated_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = open_keys(&store(dir.path())).unwrap();
        let ci = key("ci", 1, 100);
        keys.create(&ci).unwrap();
        let mut plain = key("batch", 2, 110);
        (plain.expires_ms, plain.limits, plain.guardrails) = (None, None, None);
        (plain.models, plain.metadata) = (vec![], BTreeMap::new());
        keys.create(&plain).unwrap();
        // A second key of a name in use is refused, and the first is unchanged.
        let err = keys.create(&key("ci", 3, 120)).unwrap_err();
        assert_eq!(err, KeyStoreError::Exists("ci".into()));
        assert_eq!(keys.get("ci").unwrap(), Some(ci.clone()));
        assert_eq!(keys.get("nope").unwrap(), None);
        let names: Vec<String> = keys.list().unwrap().into_iter().map(|k| k.name).collect();
        assert_eq!(names, ["batch", "ci"]);
        assert_eq!(keys.list().unwrap()[0], plain);

        // Rotation: the old digest stays valid as the previous one until the grace ends.
        let r = keys.rotate("ci", [4; 32], "test-04", 500, 200).unwrap();
        assert_eq!((r.sha256, r.prefix.as_str()), ([4; 32], "test-04"));
        assert_eq!(
            (r.previous_sha256, r.previous_until_ms),
            (Some([1; 32]), Some(500))
        );
        assert_eq!(
            (r.updated_ms, r.created_ms, &r.models),
            (200, 100, &ci.models)
        );
        assert_eq!(keys.get("ci").unwrap(), Some(r));
        // A rotation without grace keeps no previous digest.
        let r = keys.rotate("ci", [5; 32], "test-05", 300, 300).unwrap();
        assert_eq!(
            (r.sha256, r.previous_sha256, r.previous_until_ms),
            ([5; 32], None, None)
        );

        // Revocation: once; the key is still listed, and cannot be rotated.
        let r = keys.revoke("ci", 400).unwrap();
        assert_eq!((r.revoked_ms, r.updated_ms), (Some(400), 400));
        let err = keys.revoke("ci", 401).unwrap_err();
        assert_eq!(err, KeyStoreError::NotFound("ci".into()));
        assert!(matches!(
            keys.revoke("nope", 401),
            Err(KeyStoreError::NotFound(_))
        ));
        let err = keys.rotate("ci", [6; 32], "test-06", 900, 402).unwrap_err();
        assert_eq!(err, KeyStoreError::NotFound("ci".into()));
        assert!(matches!(
            keys.rotate("nope", [6; 32], "test-06", 900, 402),
            Err(KeyStoreError::NotFound(_))
        ));
        assert_eq!(keys.list().unwrap().len(), 2);
        assert_eq!(keys.get("ci").unwrap().unwrap().revoked_ms, Some(400));

        // A revoked key's name can be used again: the new key replaces it whole.
        let again = key("ci", 7, 500);
        keys.create(&again).unwrap();
        assert_eq!(keys.get("ci").unwrap(), Some(again));
        assert_eq!(keys.list().unwrap().len(), 2);

        // Another connection (the CLI beside a gateway) sees the same keys.
        let mut other = open_keys(&store(dir.path())).unwrap();
        assert_eq!(other.list().unwrap(), keys.list().unwrap());
    }

    #[test]
    fn a_version_2_ledger_gets_the_keys_table_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let store_cfg = store(dir.path());
        {
            let conn = Connection::open(dir.path().join("usage.db")).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(SCHEMA_V2).unwrap();
            conn.execute_batch(
                "INSERT INTO usage (id, ts_ms, request_id, key, api, stream, status, \
                 prompt_tokens, completion_tokens, cached_tokens, cost_usd, latency_ms, \
                 attempts, guardrails, limited) VALUES (1, 5, 'r', 'old', 'openai', 0, 200, \
                 1, 2, 0, 0.5, 9, 1, '', NULL); PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let mut keys = open_keys(&store_cfg).unwrap();
        keys.create(&key("ci", 1, 100)).unwrap();
        let mut usage = store::open(&store_cfg).unwrap();
        let new = UsageRecord {
            id: 2,
            ts_ms: 6,
            request_id: "r2".into(),
            key: Some("ci".into()),
            team: Some("search".into()),
            api: "openai".into(),
            ..UsageRecord::default()
        };
        usage.insert(std::slice::from_ref(&new)).unwrap();
        let recent = usage.recent(0, 10, false).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0], new);
        assert_eq!(
            (recent[1].key.as_deref(), &recent[1].team),
            (Some("old"), &None)
        );
        let conn = Connection::open(dir.path().join("usage.db")).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 4);
        drop(keys);
        // Opening again migrates nothing more and keeps the key.
        let mut keys = open_keys(&store_cfg).unwrap();
        assert_eq!(keys.list().unwrap().len(), 1);
    }
}

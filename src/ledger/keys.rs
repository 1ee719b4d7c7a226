//! Managed gateway keys as stored: created, revoked and rotated at run time (admin API, CLI)
//! and kept in the usage ledger's database, table `sluice_keys` (in SQLite and PostgreSQL
//! alike, created by schema version 3). Only a key's SHA-256 is stored, never its secret.
//!
//! Every operation is one statement, atomic on its own: a revocation and a rotation that
//! race both see the other's result (each updates only a key that is not revoked).

use std::collections::BTreeMap;

use serde::Serialize;

use super::postgres_keys::PostgresKeys;
use super::sqlite_keys::SqliteKeys;
use crate::config::UsageStore;

/// A managed key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredKey {
    pub name: String,
    /// The secret's SHA-256 (never serialized).
    #[serde(skip)]
    pub sha256: [u8; 32],
    /// The first characters of the secret, to recognise a key in lists.
    pub prefix: String,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    /// Allowed public models (globs); empty = every model.
    pub models: Vec<String>,
    /// The key's limits as JSON text in the shape of a config key's `limits:` (validated by
    /// the caller), or None.
    pub limits: Option<String>,
    /// Guardrail names; None = the config's default_guardrails.
    pub guardrails: Option<Vec<String>>,
    /// team, owner, cost_center, … (free-form strings).
    pub metadata: BTreeMap<String, String>,
    /// After a rotation: the old secret's digest, valid until `previous_until_ms` (never
    /// serialized).
    #[serde(skip)]
    pub previous_sha256: Option<[u8; 32]>,
    pub previous_until_ms: Option<u64>,
    /// When the key was last written (created, revoked, rotated).
    pub updated_ms: u64,
}

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyStoreError {
    /// A key that is not revoked has this name.
    #[error("a key named {0:?} exists")]
    Exists(String),
    /// No key has this name, or it is revoked.
    #[error("no active key named {0:?}")]
    NotFound(String),
    /// The database failed (its message, never a URL or a password).
    #[error("the key store: {0}")]
    Backend(String),
}

/// Where managed keys are kept.
pub trait KeyStore: Send {
    /// Stores a new key. [`KeyStoreError::Exists`] if a key that is not revoked has the
    /// name; a revoked key of that name is replaced.
    fn create(&mut self, key: &StoredKey) -> Result<(), KeyStoreError>;

    /// Every key, revoked ones included, by name (byte order).
    fn list(&mut self) -> Result<Vec<StoredKey>, KeyStoreError>;

    /// The key of that name, revoked or not.
    fn get(&mut self, name: &str) -> Result<Option<StoredKey>, KeyStoreError>;

    /// Revokes a key at `now_ms` (its previous digest, if any, is dropped too) and returns
    /// it; [`KeyStoreError::NotFound`] if it is absent or already revoked.
    fn revoke(&mut self, name: &str, now_ms: u64) -> Result<StoredKey, KeyStoreError>;

    /// Gives a key a new secret and returns it. The old digest stays valid as the previous
    /// one until `grace_until_ms` (none is kept when that is not after `now_ms`);
    /// [`KeyStoreError::NotFound`] if the key is absent or revoked.
    fn rotate(
        &mut self,
        name: &str,
        new_sha256: [u8; 32],
        new_prefix: &str,
        grace_until_ms: u64,
        now_ms: u64,
    ) -> Result<StoredKey, KeyStoreError>;
}

/// Opens the key store of the configured usage store, creating or migrating its schema as
/// the usage store does.
pub fn open_keys(store: &UsageStore) -> Result<Box<dyn KeyStore>, String> {
    match store {
        UsageStore::Sqlite { path } => Ok(Box::new(SqliteKeys::open(path)?)),
        UsageStore::Postgres { url } => Ok(Box::new(PostgresKeys::open(url)?)),
    }
}

/// The key table's columns, in [`KeyRow`] order (the same in every store).
pub(super) const KEY_COLUMNS: &str = "name, sha256, prefix, created_ms, expires_ms, revoked_ms, \
    models, limits, guardrails, metadata, previous_sha256, previous_until_ms, updated_ms";

/// A key as its columns hold it: times as signed integers, lists and maps as JSON text.
pub(super) struct KeyRow {
    pub name: String,
    pub sha256: Vec<u8>,
    pub prefix: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub models: String,
    pub limits: Option<String>,
    pub guardrails: Option<String>,
    pub metadata: String,
    pub previous_sha256: Option<Vec<u8>>,
    pub previous_until_ms: Option<i64>,
    pub updated_ms: i64,
}

/// A digest as stored, checked for its length.
fn digest(name: &str, bytes: &[u8]) -> Result<[u8; 32], KeyStoreError> {
    bytes.try_into().map_err(|_| {
        KeyStoreError::Backend(format!("key {name:?}: a stored digest is not 32 bytes"))
    })
}

fn json<T: serde::de::DeserializeOwned>(
    name: &str,
    what: &str,
    s: &str,
) -> Result<T, KeyStoreError> {
    serde_json::from_str(s)
        .map_err(|e| KeyStoreError::Backend(format!("key {name:?}: stored {what}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl KeyRow {
    pub fn of(k: &StoredKey) -> KeyRow {
        KeyRow {
            name: k.name.clone(),
            sha256: k.sha256.to_vec(),
            prefix: k.prefix.clone(),
            created_ms: k.created_ms as i64,
            expires_ms: k.expires_ms.map(|t| t as i64),
            revoked_ms: k.revoked_ms.map(|t| t as i64),
            models: to_json(&k.models),
            limits: k.limits.clone(),
            guardrails: k.guardrails.as_ref().map(to_json),
            metadata: to_json(&k.metadata),
            previous_sha256: k.previous_sha256.map(|d| d.to_vec()),
            previous_until_ms: k.previous_until_ms.map(|t| t as i64),
            updated_ms: k.updated_ms as i64,
        }
    }

    pub fn into_key(self) -> Result<StoredKey, KeyStoreError> {
        let n = &self.name;
        Ok(StoredKey {
            sha256: digest(n, &self.sha256)?,
            prefix: self.prefix,
            created_ms: self.created_ms as u64,
            expires_ms: self.expires_ms.map(|t| t as u64),
            revoked_ms: self.revoked_ms.map(|t| t as u64),
            models: json(n, "models", &self.models)?,
            limits: self.limits,
            guardrails: (self.guardrails.as_deref())
                .map(|g| json(n, "guardrails", g))
                .transpose()?,
            metadata: json(n, "metadata", &self.metadata)?,
            previous_sha256: (self.previous_sha256.as_deref())
                .map(|d| digest(n, d))
                .transpose()?,
            previous_until_ms: self.previous_until_ms.map(|t| t as u64),
            updated_ms: self.updated_ms as u64,
            name: self.name,
        })
    }
}

/// `col = excluded.col` for every column but the name: a revoked key replaced by a new one.
pub(super) fn replace_all() -> String {
    let cols = KEY_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| *c != "name");
    cols.map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `SET` of a rotation, parameters 2 to 5 (digest, prefix, grace end, now) marked by
/// `mark` (`?` or `$`). The right-hand sides read the row as it was: the old digest becomes
/// the previous one, unless the grace period is already over.
pub(super) fn rotate_set(mark: &str) -> String {
    let grace = format!("CAST({mark}4 AS BIGINT) > CAST({mark}5 AS BIGINT)");
    format!(
        "previous_sha256 = CASE WHEN {grace} THEN sha256 ELSE NULL END, \
         previous_until_ms = CASE WHEN {grace} THEN {mark}4 ELSE NULL END, \
         sha256 = {mark}2, prefix = {mark}3, updated_ms = {mark}5"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializing_a_key_never_shows_its_digests() {
        let key = StoredKey {
            name: "ci".into(),
            sha256: [7; 32],
            prefix: "test-ab12".into(),
            created_ms: 1,
            expires_ms: None,
            revoked_ms: None,
            models: vec!["gpt-*".into()],
            limits: None,
            guardrails: None,
            metadata: BTreeMap::from([("team".into(), "search".into())]),
            previous_sha256: Some([9; 32]),
            previous_until_ms: Some(5),
            updated_ms: 2,
        };
        let v = serde_json::to_value(&key).unwrap();
        assert_eq!(v["name"], "ci");
        assert_eq!(v["metadata"]["team"], "search");
        assert_eq!(v["previous_until_ms"], 5);
        let obj = v.as_object().unwrap();
        assert!(!obj.contains_key("sha256") && !obj.contains_key("previous_sha256"));
        let text = v.to_string();
        assert!(!text.contains("[7,7") && !text.contains("[9,9"), "{text}");
        let row = KeyRow::of(&key);
        assert_eq!(row.into_key().unwrap(), key);
    }
}

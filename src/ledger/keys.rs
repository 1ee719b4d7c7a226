//! Placeholder until the managed-key store lands.
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredKey {
    pub name: String,
    #[serde(skip)]
    pub sha256: [u8; 32],
    pub prefix: String,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub revoked_ms: Option<u64>,
    pub models: Vec<String>,
    pub limits: Option<String>,
    pub guardrails: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    #[serde(skip)]
    pub previous_sha256: Option<[u8; 32]>,
    pub previous_until_ms: Option<u64>,
    pub updated_ms: u64,
}

#[derive(Debug)]
pub enum KeyStoreError {
    Exists(String),
    NotFound(String),
    Backend(String),
}

impl std::fmt::Display for KeyStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStoreError::Exists(n) => write!(f, "a key named {n:?} exists"),
            KeyStoreError::NotFound(n) => write!(f, "no key named {n:?}"),
            KeyStoreError::Backend(m) => f.write_str(m),
        }
    }
}

pub trait KeyStore: Send {
    fn create(&mut self, key: &StoredKey) -> Result<(), KeyStoreError>;
    fn list(&mut self) -> Result<Vec<StoredKey>, KeyStoreError>;
    fn get(&mut self, name: &str) -> Result<Option<StoredKey>, KeyStoreError>;
    fn revoke(&mut self, name: &str, now_ms: u64) -> Result<StoredKey, KeyStoreError>;
    fn rotate(
        &mut self,
        name: &str,
        new_sha256: [u8; 32],
        new_prefix: &str,
        grace_until_ms: u64,
        now_ms: u64,
    ) -> Result<StoredKey, KeyStoreError>;
}

pub fn open_keys(_store: &crate::config::UsageStore) -> Result<Box<dyn KeyStore>, String> {
    Err("not yet".into())
}

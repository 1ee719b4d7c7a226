//! `usage:`: the usage ledger's store.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawUsage;
use super::secrets::Ctx;
use super::{ConfigError, UsageSettings, UsageStore};
use crate::core::secret::Secret;

/// Records are kept this long unless `usage.retention` says otherwise.
const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

pub(super) fn validate(
    ctx: &Ctx,
    u: Option<RawUsage>,
) -> Result<Option<UsageSettings>, ConfigError> {
    let Some(u) = u else { return Ok(None) };
    let (store, spill) = match u.store.as_deref().unwrap_or("sqlite") {
        "sqlite" => sqlite(u.path, u.url)?,
        "postgres" => postgres(ctx, u.path, u.url)?,
        other => {
            return Err(ConfigError::new(
                "usage.store",
                format!("unknown store {other:?} (known: sqlite, postgres)"),
            ))
        }
    };
    Ok(Some(UsageSettings {
        store,
        spill,
        retention: retention(u.retention)?,
        key_refresh: key_refresh(u.key_refresh)?,
    }))
}

/// Managed keys are read from the store this often unless `usage.key_refresh` says otherwise.
const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(2);

/// `usage.key_refresh`: 100 ms to 5 minutes.
fn key_refresh(raw: Option<String>) -> Result<Duration, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_KEY_REFRESH);
    };
    let d =
        super::units::parse_duration(&raw).map_err(|e| ConfigError::new("usage.key_refresh", e))?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(300) {
        return Err(ConfigError::new(
            "usage.key_refresh",
            "must be from 100ms to 5m",
        ));
    }
    Ok(d)
}

/// The systemd unit's state directory, else the working directory.
fn state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// An SQLite file (`usage.path`, by default `usage.db` in the state directory); records
/// spill beside it.
fn sqlite(path: Option<String>, url: Option<String>) -> Result<(UsageStore, PathBuf), ConfigError> {
    if url.is_some() {
        return Err(ConfigError::new(
            "usage.url",
            "is for store: postgres; a sqlite store takes path",
        ));
    }
    let path = match path {
        Some(p) if p.trim().is_empty() => {
            return Err(ConfigError::new("usage.path", "must not be empty"))
        }
        Some(p) => PathBuf::from(p),
        None => state_dir().join("usage.db"),
    };
    let mut spill = path.as_os_str().to_owned();
    spill.push(".spill");
    Ok((UsageStore::Sqlite { path }, PathBuf::from(spill)))
}

/// A PostgreSQL database (`usage.url`: `${ENV}`, `file:PATH` or a literal URL; it may carry
/// a password, so no error quotes it); records spill to `usage.spill` in the state directory.
/// A reference not read is not checked further.
fn postgres(
    ctx: &Ctx,
    path: Option<String>,
    url: Option<String>,
) -> Result<(UsageStore, PathBuf), ConfigError> {
    if path.is_some() {
        return Err(ConfigError::new(
            "usage.path",
            "is for store: sqlite; a postgres store takes url",
        ));
    }
    let Some(raw) = url else {
        return Err(ConfigError::new(
            "usage.url",
            "is required when usage.store is postgres (e.g. url: ${DATABASE_URL})",
        ));
    };
    let url = ctx
        .reference("usage.url", &raw)?
        .unwrap_or_else(|| Secret::new(raw));
    if !url.is_placeholder() {
        super::pg_url::postgres_target(url.expose())
            .map_err(|e| ConfigError::new("usage.url", e))?;
    }
    Ok((
        UsageStore::Postgres { url },
        state_dir().join("usage.spill"),
    ))
}

fn retention(raw: Option<String>) -> Result<Duration, ConfigError> {
    let retention = match raw {
        None => DEFAULT_RETENTION,
        Some(r) => humantime::parse_duration(r.trim()).map_err(|_| {
            ConfigError::new(
                "usage.retention",
                format!("invalid duration {r:?} (e.g. 90d, 36h)"),
            )
        })?,
    };
    if retention < Duration::from_secs(3600) {
        return Err(ConfigError::new("usage.retention", "must be at least 1h"));
    }
    Ok(retention)
}

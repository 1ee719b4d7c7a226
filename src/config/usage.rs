//! `usage:`: the usage ledger's store.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawUsage;
use super::{ConfigError, UsageSettings, UsageStore};

/// Records are kept this long unless `usage.retention` says otherwise.
const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

pub(super) fn validate(u: Option<RawUsage>) -> Result<Option<UsageSettings>, ConfigError> {
    let Some(u) = u else { return Ok(None) };
    match u.store.as_deref().unwrap_or("sqlite") {
        "sqlite" => {}
        "postgres" => {
            return Err(ConfigError::new(
                "usage.store",
                "postgres is not available in this build; use sqlite",
            ))
        }
        other => {
            return Err(ConfigError::new(
                "usage.store",
                format!("unknown store {other:?} (known: sqlite, postgres)"),
            ))
        }
    }
    if u.url.is_some() {
        return Err(ConfigError::new(
            "usage.url",
            "is for store: postgres; a sqlite store takes path",
        ));
    }
    // Under the systemd unit's state directory by default, else the working directory.
    let path = match u.path {
        Some(p) if p.trim().is_empty() => {
            return Err(ConfigError::new("usage.path", "must not be empty"))
        }
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("STATE_DIRECTORY")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join("usage.db"),
    };
    let retention = match u.retention {
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
    let mut spill = path.as_os_str().to_owned();
    spill.push(".spill");
    Ok(Some(UsageSettings {
        store: UsageStore::Sqlite { path },
        spill: PathBuf::from(spill),
        retention,
    }))
}

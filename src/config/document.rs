//! Reading the file into its sections: YAML syntax first (one error, with its line), then
//! each top-level section on its own, so that a wrong key or type in two sections gives two
//! errors, each with its full key path.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::raw::RawConfig;
use super::{ConfigError, ErrorCollector};

/// The sections read from a file, with defaults for those absent or unreadable.
pub(super) struct Document {
    pub(super) raw: RawConfig,
    /// The sections present but unreadable: checks that depend on them are skipped.
    pub(super) unreadable: BTreeSet<&'static str>,
}

impl Document {
    /// Whether `section` could be read (or was absent).
    pub(super) fn read(&self, section: &str) -> bool {
        !self.unreadable.contains(section)
    }
}

/// Every top-level section: (name, how it is read into [`RawConfig`]).
type Reader =
    fn(&mut RawConfig, Value) -> Result<(), serde_path_to_error::Error<serde_yaml::Error>>;

/// Deserializes `value` into `slot`, tracking the key path.
fn into<T: DeserializeOwned>(
    slot: &mut T,
    value: Value,
) -> Result<(), serde_path_to_error::Error<serde_yaml::Error>> {
    *slot = serde_path_to_error::deserialize(value)?;
    Ok(())
}

macro_rules! sections {
    ($($name:ident),* $(,)?) => {
        const SECTIONS: &[(&str, Reader)] = &[
            $((stringify!($name), |raw, v| into(&mut raw.$name, v)),)*
        ];
    };
}

sections!(
    listen,
    tls,
    admin,
    keys,
    providers,
    models,
    limits,
    pricing,
    timeouts,
    server,
    upstream,
    retry,
    health,
    allow_inline_secrets,
    access_log,
    guardrails,
    default_guardrails,
    usage,
    cache,
    tracing,
);

/// Reads `text` (already through `quote_env_refs`). `None` when the document itself cannot
/// be read (its error is in `errors`); otherwise the sections that could be, every section
/// error in `errors`.
pub(super) fn read(text: &str, errors: &mut ErrorCollector) -> Option<Document> {
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(ConfigError::new("", e.to_string()));
            return None;
        }
    };
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => Default::default(),
        _ => {
            errors.push(ConfigError::new(
                "",
                "the file must be a mapping of sections (listen:, keys:, providers:, …)",
            ));
            return None;
        }
    };
    let mut doc = Document {
        raw: RawConfig::default(),
        unreadable: BTreeSet::new(),
    };
    let mut found = Vec::new();
    let first = errors.len();
    for (key, value) in map {
        let name = match &key {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other).map_or_else(|_| "?".into(), |s| s.trim().into()),
        };
        let Some((section, reader)) = SECTIONS.iter().find(|(s, _)| *s == name) else {
            let known: Vec<String> = SECTIONS.iter().map(|(s, _)| format!("`{s}`")).collect();
            errors.push(ConfigError::new(
                "",
                format!(
                    "unknown field `{name}`, expected one of {}",
                    known.join(", ")
                ),
            ));
            continue;
        };
        found.push(*section);
        if let Err(e) = reader(&mut doc.raw, value) {
            doc.unreadable.insert(section);
            errors.push(ConfigError::new(
                join(section, &e.path().to_string()),
                e.into_inner().to_string(),
            ));
        }
    }
    if !found.contains(&"listen") {
        errors.push(ConfigError::new("", "missing field `listen`"));
        doc.unreadable.insert("listen");
    }
    if errors.len() > first {
        locate_first(text, errors, first);
    }
    Some(doc)
}

/// `section` followed by the path serde_path_to_error gives inside it (`.` for the section
/// itself).
fn join(section: &str, inner: &str) -> String {
    match inner {
        "." | "" => section.to_string(),
        i if i.starts_with('[') => format!("{section}{i}"),
        i => format!("{section}.{i}"),
    }
}

/// A section read from a parsed value has no line numbers; the first error in the file has
/// one when the whole text is read as a stream, so that error (found again by its path and
/// message) gets its line and column.
fn locate_first(text: &str, errors: &mut ErrorCollector, from: usize) {
    let de = serde_yaml::Deserializer::from_str(text);
    let Err(e) = serde_path_to_error::deserialize::<_, RawConfig>(de) else {
        return;
    };
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let e = e.into_inner();
    let Some(at) = e.location() else { return };
    let message = e.to_string();
    let same = |c: &ConfigError| message.contains(&c.message);
    let kept = &mut errors.as_mut_slice()[from..];
    let found = match kept.iter().position(|c| c.path == path && same(c)) {
        Some(i) => Some(i),
        None => kept.iter().position(same),
    };
    if let Some(i) = found {
        let c = &mut kept[i];
        c.message = format!("{} at line {} column {}", c.message, at.line(), at.column());
    }
}

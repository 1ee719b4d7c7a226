//! `sluice keys`: managed keys from the command line, against the store the config's
//! `usage:` names — the same store, validation and views as the admin API. Running
//! instances put a change in force within `usage.key_refresh`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::keys::{self, KeyRequest, Models};
use crate::config::Config;
use crate::ledger::keys::{open_keys, KeyStore};
use crate::pipeline::keyring::now_ms;

/// What `sluice keys create` takes besides the config.
#[derive(Debug, Default, clap::Args)]
pub struct CreateArgs {
    /// The key's name (letters, digits, '.', '_', '-').
    #[arg(long)]
    pub name: String,
    /// Allowed models, comma-separated globs ('gpt-*,claude-*'); every model by default.
    #[arg(long)]
    pub models: Option<String>,
    /// Lifetime: 30d, 12h, …; no expiry by default.
    #[arg(long)]
    pub expires: Option<String>,
    /// The team, recorded in the usage ledger.
    #[arg(long)]
    pub team: Option<String>,
    /// More metadata, as name=value (owner=…, cost_center=…); repeatable.
    #[arg(long = "meta", value_name = "NAME=VALUE")]
    pub meta: Vec<String>,
    /// Limits as JSON, in the shape of a config key's `limits:`.
    #[arg(long)]
    pub limits: Option<String>,
    /// Guardrail names, comma-separated (default: default_guardrails).
    #[arg(long)]
    pub guardrails: Option<String>,
    /// The response cache never serves this key.
    #[arg(long)]
    pub no_cache: bool,
    /// Share cached answers with the keys naming the same scope.
    #[arg(long, value_name = "NAME")]
    pub cache_scope: Option<String>,
}

fn load(config: &Path) -> Result<(Config, Box<dyn KeyStore>), String> {
    let cfg = crate::config::load(config)
        .map_err(|e| format!("{}: config error: {e}", config.display()))?;
    let usage = cfg.usage.as_ref().ok_or_else(|| {
        format!(
            "{}: managed keys live in the usage store, and there is no `usage:` section",
            config.display()
        )
    })?;
    let store = open_keys(&usage.store)?;
    Ok((cfg, store))
}

/// Formats a Unix time in milliseconds as RFC 3339 (UTC, seconds).
fn when(ms: Option<u64>) -> String {
    ms.map_or_else(
        || "-".to_string(),
        |ms| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        },
    )
}

/// `sluice keys create`: the key's description, then the secret alone on the last line.
pub fn create(config: &Path, args: CreateArgs) -> Result<String, String> {
    let (cfg, mut store) = load(config)?;
    let mut metadata = BTreeMap::new();
    for pair in &args.meta {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--meta: expected name=value, got {pair:?}"))?;
        metadata.insert(k.trim().to_string(), v.trim().to_string());
    }
    if let Some(team) = args.team {
        metadata.insert("team".into(), team);
    }
    let limits = match args.limits {
        Some(text) => Some(
            serde_json::from_str::<Value>(&text).map_err(|e| format!("--limits: not JSON: {e}"))?,
        ),
        None => None,
    };
    let req = KeyRequest {
        name: args.name,
        models: args.models.map(Models::Text),
        expires: args.expires,
        expires_at: None,
        limits,
        guardrails: args
            .guardrails
            .map(|g| g.split(',').map(|s| s.trim().to_string()).collect()),
        metadata: Some(metadata),
        cache: args.no_cache.then_some(false),
        cache_scope: args.cache_scope,
    };
    let (key, secret) = keys::create(req, &cfg, now_ms()).map_err(|e| e.to_string())?;
    store.create(&key).map_err(|e| e.to_string())?;
    Ok(format!(
        "created key '{}' (models: {}; expires: {}). The secret is shown once, below; only \
         its SHA-256 is stored.\n{secret}\n",
        key.name,
        if key.models.is_empty() {
            "*".to_string()
        } else {
            key.models.join(",")
        },
        when(key.expires_ms),
    ))
}

/// Every key, the config file's and the managed ones, as the API lists them.
fn all(cfg: &Config, store: &mut dyn KeyStore) -> Result<Vec<Value>, String> {
    let now = now_ms();
    let mut data: Vec<Value> = cfg.keys.iter().map(keys::config_view).collect();
    let stored = store.list().map_err(|e| e.to_string())?;
    data.extend(stored.iter().map(|k| keys::view(k, now)));
    Ok(data)
}

/// `sluice keys list`: a table, or the API's JSON with `--format json`.
pub fn list(config: &Path, format: &str) -> Result<String, String> {
    let (cfg, mut store) = load(config)?;
    let data = all(&cfg, store.as_mut())?;
    match format {
        "json" => Ok(json!({"object": "list", "data": data}).to_string() + "\n"),
        "table" => Ok(table(&data)),
        other => Err(format!(
            "--format: unknown format {other:?} (table or json)"
        )),
    }
}

fn table(data: &[Value]) -> String {
    let secs = |v: &Value| v.as_u64().map(|s| when(Some(s * 1000)));
    let rows: Vec<[String; 7]> = data
        .iter()
        .map(|k| {
            let text = |f: &str| k[f].as_str().unwrap_or("-").to_string();
            let models: Vec<&str> = k["models"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            [
                text("name"),
                text("source"),
                text("status"),
                text("prefix"),
                models.join(","),
                secs(&k["expires_at"]).unwrap_or_else(|| "-".into()),
                k["metadata"]["team"].as_str().unwrap_or("-").to_string(),
            ]
        })
        .collect();
    let head = [
        "NAME", "SOURCE", "STATUS", "PREFIX", "MODELS", "EXPIRES", "TEAM",
    ];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&head);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    out
}

/// `sluice keys show`: one key as JSON.
pub fn show(config: &Path, name: &str) -> Result<String, String> {
    let (cfg, mut store) = load(config)?;
    if let Some(k) = cfg.keys.iter().find(|k| k.name == name) {
        return Ok(keys::config_view(k).to_string() + "\n");
    }
    match store.get(name).map_err(|e| e.to_string())? {
        Some(k) => Ok(keys::view(&k, now_ms()).to_string() + "\n"),
        None => Err(format!("no key named {name:?}")),
    }
}

fn refuse_config_key(cfg: &Config, name: &str) -> Result<(), String> {
    if cfg.keys.iter().any(|k| k.name == name) {
        return Err(format!(
            "{name:?} is a key of the config file: edit the file and reload to change it"
        ));
    }
    Ok(())
}

/// `sluice keys revoke`.
pub fn revoke(config: &Path, name: &str) -> Result<String, String> {
    let (cfg, mut store) = load(config)?;
    refuse_config_key(&cfg, name)?;
    let k = store.revoke(name, now_ms()).map_err(|e| e.to_string())?;
    Ok(format!(
        "revoked key '{}' at {}; running instances refuse it within {}\n",
        k.name,
        when(k.revoked_ms),
        refresh(&cfg)
    ))
}

/// `sluice keys rotate`: the new secret alone on the last line.
pub fn rotate(config: &Path, name: &str, grace: Option<&str>) -> Result<String, String> {
    let (cfg, mut store) = load(config)?;
    refuse_config_key(&cfg, name)?;
    let grace = keys::grace(grace).map_err(|e| format!("--{e}"))?;
    let secret = keys::new_secret();
    let (sha, prefix) = keys::digest(&secret);
    let now = now_ms();
    let until = now + grace.as_millis() as u64;
    let k = store
        .rotate(name, sha, &prefix, until, now)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "rotated key '{}': the old secret works until {}; the new one is shown once, below.\n{secret}\n",
        k.name,
        when(Some(until)),
    ))
}

fn refresh(cfg: &Config) -> String {
    let d = cfg
        .usage
        .as_ref()
        .map_or(std::time::Duration::from_secs(2), |u| u.key_refresh);
    format!("{} ms", d.as_millis())
}

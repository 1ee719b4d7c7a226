//! The control plane's admin endpoints (on the admin listener, behind its roles):
//!
//! | endpoint                      | does                                                  |
//! |-------------------------------|-------------------------------------------------------|
//! | `POST /reload`                | re-reads the config file (as SIGHUP)                  |
//! | `GET /keys`                   | every key: the config's (read-only) and managed ones  |
//! | `POST /keys`                  | creates a managed key; the secret is in this answer only |
//! | `GET /keys/{name}`            | one key                                               |
//! | `DELETE /keys/{name}`         | revokes a managed key                                 |
//! | `POST /keys/{name}/rotate`    | a new secret; the old one works for `grace` (1h)      |
//!
//! `GET /keys` also says whether keys can be made here (`managed_keys`: is there a store).
//! A change made here is in force on this instance before the answer is sent, and on the
//! others sharing the store within `usage.key_refresh`.

use http::{Method, Response};
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::{json, Value};

use super::keys::{self, KeyError, KeyRequest};
use super::Control;
use crate::ledger::keys::KeyStoreError;
use crate::pipeline::keyring::now_ms;

/// The largest request body the control endpoints read.
const MAX_BODY: usize = 64 << 10;
/// How long a request body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `path` is one of the control endpoints.
pub fn handles(path: &str) -> bool {
    path == "/reload" || path == "/keys" || path.starts_with("/keys/")
}

fn reply(status: u16, body: &Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(body).expect("JSON values serialise");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .expect("valid response")
}

fn error(status: u16, code: &str, message: &str, param: Option<&str>) -> Response<Vec<u8>> {
    reply(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}),
    )
}

fn key_error(e: &KeyError) -> Response<Vec<u8>> {
    error(e.status, e.code, &e.message, e.param)
}

fn store_error(e: &KeyStoreError) -> Response<Vec<u8>> {
    match e {
        KeyStoreError::Exists(_) => error(409, "key_exists", &e.to_string(), Some("name")),
        KeyStoreError::NotFound(_) => error(404, "key_not_found", &e.to_string(), None),
        KeyStoreError::Backend(m) => {
            log::warn!("managed keys: {m}");
            error(
                503,
                "key_store_unavailable",
                "the key store cannot be reached",
                None,
            )
        }
    }
}

/// The request body, if it is at most [`MAX_BODY`] and arrives within [`BODY_TIMEOUT`].
pub async fn read_body(session: &mut ServerSession, max: usize) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        let piece = tokio::time::timeout(BODY_TIMEOUT, session.read_request_body())
            .await
            .map_err(|_| "the request body did not arrive in time")?
            .map_err(|_| "the request body could not be read")?;
        match piece {
            Some(bytes) if body.len() + bytes.len() <= max => body.extend_from_slice(&bytes),
            Some(_) => return Err("the request body is too large"),
            None => return Ok(body),
        }
    }
}

/// A JSON body as `T`; an empty body as `T::default()`.
async fn json_body<T: for<'de> Deserialize<'de> + Default>(
    session: &mut ServerSession,
) -> Result<T, Response<Vec<u8>>> {
    let body = read_body(session, MAX_BODY)
        .await
        .map_err(|m| error(400, "invalid_body", m, None))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| {
        error(
            400,
            "invalid_json",
            &format!("the body is not a valid request: {e}"),
            None,
        )
    })
}

/// `POST /rotate`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    grace: Option<String>,
}

/// Serves a control endpoint; `who` names the admin token, for the log.
pub async fn serve(control: &Control, session: &mut ServerSession, who: &str) -> Response<Vec<u8>> {
    let method = session.req_header().method.clone();
    let path = session.req_header().uri.path().to_string();
    let rest = path.strip_prefix("/keys/").map(str::to_string);
    match (&method, path.as_str(), rest.as_deref()) {
        (&Method::POST, "/reload", _) => reload(control, who).await,
        (&Method::GET, "/keys", _) => list(control).await,
        (&Method::POST, "/keys", _) => create(control, session, who).await,
        (&Method::POST, _, Some(r)) if r.ends_with("/rotate") => {
            let name = r.trim_end_matches("/rotate");
            rotate(control, session, name, who).await
        }
        (&Method::GET, _, Some(name)) if !name.contains('/') => show(control, name).await,
        (&Method::DELETE, _, Some(name)) if !name.contains('/') => revoke(control, name, who).await,
        (_, "/reload", _) | (_, "/keys", _) => error(
            405,
            "method_not_allowed",
            "method not allowed on this endpoint",
            None,
        ),
        _ => error(404, "unknown_url", "unknown admin endpoint", None),
    }
}

async fn reload(control: &Control, who: &str) -> Response<Vec<u8>> {
    match control.reload(&format!("POST /reload by {who}")).await {
        Ok(r) => reply(
            200,
            &json!({"status": "reloaded", "generation": r.generation, "needs_upgrade": r.needs_upgrade}),
        ),
        Err(errors) => reply(
            400,
            &json!({"error": {
                "message": "the config file is invalid; the running config stays",
                "type": "invalid_request_error", "param": null, "code": "invalid_config",
                "errors": errors,
            }}),
        ),
    }
}

/// The config file's keys, and the managed ones when there is a store.
async fn list(control: &Control) -> Response<Vec<u8>> {
    let cfg = control.current().cfg.clone();
    let mut data: Vec<Value> = cfg.keys.iter().map(keys::config_view).collect();
    if control.has_store() {
        match control.with_store(|s| s.list()).await {
            Ok(stored) => {
                let now = now_ms();
                data.extend(stored.iter().map(|k| keys::view(k, now)));
            }
            Err(e) => return store_error(&e),
        }
    }
    // `managed_keys`: whether keys can be created here (the dashboard says when not).
    let managed = control.has_store();
    reply(
        200,
        &json!({"object": "list", "data": data, "managed_keys": managed}),
    )
}

async fn show(control: &Control, name: &str) -> Response<Vec<u8>> {
    let cfg = control.current().cfg.clone();
    if let Some(k) = cfg.keys.iter().find(|k| k.name == name) {
        return reply(200, &keys::config_view(k));
    }
    let owned = name.to_string();
    match control.with_store(move |s| s.get(&owned)).await {
        Ok(Some(k)) => reply(200, &keys::view(&k, now_ms())),
        Ok(None) => store_error(&KeyStoreError::NotFound(name.to_string())),
        Err(e) => store_error(&e),
    }
}

/// Refuses a change to a key of the config file.
fn config_key(control: &Control, name: &str) -> Option<Response<Vec<u8>>> {
    let cfg = control.current().cfg.clone();
    cfg.keys.iter().any(|k| k.name == name).then(|| {
        error(
            409,
            "config_key",
            "keys from the config file cannot be changed through the API; edit the file and reload",
            None,
        )
    })
}

/// After a change: in force here before the answer (the other instances poll).
async fn in_force(control: &Control) {
    if let Err(e) = control.sync_keys().await {
        log::warn!("managed keys: changed in the store but not yet in force here: {e}");
        control.refresh.notify_one();
    }
}

async fn create(control: &Control, session: &mut ServerSession, who: &str) -> Response<Vec<u8>> {
    if !control.has_store() {
        return store_error(&KeyStoreError::Backend(String::new()));
    }
    let req: KeyRequest = match json_body(session).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let cfg = control.current().cfg.clone();
    let now = now_ms();
    let (key, secret) = match keys::create(req, &cfg, now) {
        Ok(k) => k,
        Err(e) => return key_error(&e),
    };
    let stored = key.clone();
    if let Err(e) = control.with_store(move |s| s.create(&stored)).await {
        return store_error(&e);
    }
    in_force(control).await;
    log::info!("managed key '{}' created by {who}", key.name);
    let mut v = keys::view(&key, now);
    v["key"] = Value::String(secret);
    reply(201, &v)
}

async fn revoke(control: &Control, name: &str, who: &str) -> Response<Vec<u8>> {
    if let Some(refused) = config_key(control, name) {
        return refused;
    }
    let owned = name.to_string();
    let now = now_ms();
    match control.with_store(move |s| s.revoke(&owned, now)).await {
        Ok(k) => {
            in_force(control).await;
            log::info!("managed key '{name}' revoked by {who}");
            reply(200, &keys::view(&k, now))
        }
        Err(e) => store_error(&e),
    }
}

async fn rotate(
    control: &Control,
    session: &mut ServerSession,
    name: &str,
    who: &str,
) -> Response<Vec<u8>> {
    if let Some(refused) = config_key(control, name) {
        return refused;
    }
    let req: Rotate = match json_body(session).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let grace = match keys::grace(req.grace.as_deref()) {
        Ok(g) => g,
        Err(e) => return key_error(&e),
    };
    let secret = keys::new_secret();
    let (sha, prefix) = keys::digest(&secret);
    let (owned, now) = (name.to_string(), now_ms());
    let until = now + grace.as_millis() as u64;
    match control
        .with_store(move |s| s.rotate(&owned, sha, &prefix, until, now))
        .await
    {
        Ok(k) => {
            in_force(control).await;
            log::info!("managed key '{name}' rotated by {who} (old secret valid for {grace:?})");
            let mut v = keys::view(&k, now);
            v["key"] = Value::String(secret);
            reply(200, &v)
        }
        Err(e) => store_error(&e),
    }
}

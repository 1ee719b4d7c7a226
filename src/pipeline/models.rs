//! `GET /v1/models` and `GET /v1/models/{id}`: the models a key may use, answered locally.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::core::ApiError;
use crate::ctx::Ctx;
use crate::downstream::Session;
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::Key;
use crate::pipeline::respond;

pub(super) async fn list(gw: &Gateway, session: &mut Session<'_>, ctx: &mut Ctx, key: &Key) {
    let data: Vec<Value> = gw
        .cfg
        .models
        .keys()
        .filter(|m| key.allows(m))
        .map(|m| model_object(gw, m))
        .collect();
    let body = json!({"object": "list", "data": data});
    send_json(session, ctx, &body).await;
}

pub(super) async fn retrieve(
    gw: &Gateway,
    session: &mut Session<'_>,
    ctx: &mut Ctx,
    key: &Key,
    model: &str,
) -> Result<(), ApiError> {
    if !gw.cfg.models.contains_key(model) || !key.allows(model) {
        return Err(ApiError::model_not_found(model));
    }
    send_json(session, ctx, &model_object(gw, model)).await;
    Ok(())
}

fn model_object(gw: &Gateway, name: &str) -> Value {
    json!({"id": name, "object": "model", "created": gw.started_unix, "owned_by": "sluice"})
}

async fn send_json(session: &mut Session<'_>, ctx: &mut Ctx, body: &Value) {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON values serialise"));
    let h = respond::header(200, "application/json", ctx);
    respond::json(session, ctx, 200, bytes, h).await;
}

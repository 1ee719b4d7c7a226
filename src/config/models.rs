//! Public models and the deployments that serve them: `models:`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawDeployment;
use super::{ConfigError, Deployment, Provider, Route};

/// Every public model, by name; each deployment names a known provider.
pub(super) fn validate(
    raw: BTreeMap<String, Vec<RawDeployment>>,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Result<BTreeMap<String, Arc<Route>>, ConfigError> {
    let mut models = BTreeMap::new();
    for (public, deps) in raw {
        let route = validate_route(public.clone(), deps, providers)?;
        models.insert(public, Arc::new(route));
    }
    Ok(models)
}

/// `models.<public>`: a non-empty name and at least one deployment.
fn validate_route(
    public: String,
    deps: Vec<RawDeployment>,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Result<Route, ConfigError> {
    let base = format!("models.{public}");
    if public.is_empty() {
        return Err(ConfigError::new("models", "model names must not be empty"));
    }
    if deps.is_empty() {
        return Err(ConfigError::new(base, "needs at least one deployment"));
    }
    let mut deployments = Vec::with_capacity(deps.len());
    for (i, d) in deps.into_iter().enumerate() {
        let path = format!("{base}[{i}]");
        let deployment = validate_deployment(&path, &public, d, providers)?;
        deployments.push(Arc::new(deployment));
    }
    Ok(Route {
        name: public,
        deployments,
    })
}

/// `models.<public>[i]`: its provider, weight and model name (the public name by default).
fn validate_deployment(
    path: &str,
    public: &str,
    d: RawDeployment,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Result<Deployment, ConfigError> {
    let provider = providers
        .get(&d.provider)
        .ok_or_else(|| unknown_provider(path, &d.provider, providers))?;
    let weight = d.weight.unwrap_or(1);
    if weight == 0 {
        return Err(ConfigError::new(
            format!("{path}.weight"),
            "must be at least 1",
        ));
    }
    let model = d.model.unwrap_or_else(|| public.to_string());
    if model.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.model"),
            "must not be empty",
        ));
    }
    Ok(Deployment {
        provider: provider.clone(),
        model,
        weight,
        priority: d.priority.unwrap_or(0),
    })
}

fn unknown_provider(
    path: &str,
    name: &str,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> ConfigError {
    let known: Vec<&str> = providers.keys().map(String::as_str).collect();
    ConfigError::new(
        format!("{path}.provider"),
        format!(
            "unknown provider {:?} (known providers: {})",
            name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    )
}

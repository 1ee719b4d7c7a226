//! Public models and the deployments that serve them: `models:`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawDeployment;
use super::{ConfigError, ConfigErrors, Deployment, ErrorCollector, Provider, Route};

/// The providers deployments may name: the valid ones, and the names of every provider
/// declared (`None` when the `providers:` section itself could not be read). A deployment
/// on a declared provider that failed its own validation is not checked further: the
/// provider's error is reported already.
pub(super) struct KnownProviders<'a> {
    pub(super) valid: &'a BTreeMap<String, Arc<Provider>>,
    pub(super) declared: Option<Vec<String>>,
}

/// Every public model, by name; each deployment names a known provider. Every bad model and
/// deployment is reported.
pub(super) fn validate(
    raw: BTreeMap<String, Vec<RawDeployment>>,
    providers: &KnownProviders,
) -> Result<BTreeMap<String, Arc<Route>>, ConfigErrors> {
    let mut errors = ErrorCollector::new();
    let mut models = BTreeMap::new();
    for (public, deps) in raw {
        if let Some(route) = errors.take(validate_route(public.clone(), deps, providers)) {
            models.insert(public, Arc::new(route));
        }
    }
    errors.finish(models)
}

/// `models.<public>`: a non-empty name and at least one deployment.
fn validate_route(
    public: String,
    deps: Vec<RawDeployment>,
    providers: &KnownProviders,
) -> Result<Route, ConfigErrors> {
    let base = format!("models.{public}");
    if public.is_empty() {
        return Err(ConfigError::new("models", "model names must not be empty").into());
    }
    if deps.is_empty() {
        return Err(ConfigError::new(base, "needs at least one deployment").into());
    }
    let mut errors = ErrorCollector::new();
    let mut deployments = Vec::with_capacity(deps.len());
    for (i, d) in deps.into_iter().enumerate() {
        let path = format!("{base}[{i}]");
        if let Some(Some(d)) = errors.take(validate_deployment(&path, &public, d, providers)) {
            deployments.push(Arc::new(d));
        }
    }
    errors.finish(Route {
        name: public,
        deployments,
    })
}

/// `models.<public>[i]`: its provider, weight and model name (the public name by default).
/// `None` when its provider could not be checked.
fn validate_deployment(
    path: &str,
    public: &str,
    d: RawDeployment,
    providers: &KnownProviders,
) -> Result<Option<Deployment>, ConfigError> {
    let provider = match (providers.valid.get(&d.provider), &providers.declared) {
        (Some(p), _) => Some(p),
        (None, Some(declared)) if !declared.contains(&d.provider) => {
            return Err(unknown_provider(path, &d.provider, declared))
        }
        (None, _) => None,
    };
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
    let Some(provider) = provider else {
        return Ok(None);
    };
    Ok(Some(Deployment {
        provider: provider.clone(),
        model,
        weight,
        priority: d.priority.unwrap_or(0),
    }))
}

fn unknown_provider(path: &str, name: &str, declared: &[String]) -> ConfigError {
    let known: Vec<&str> = declared.iter().map(String::as_str).collect();
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

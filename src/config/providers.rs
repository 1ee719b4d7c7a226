//! Upstream accounts: `providers:`. What a kind needs by default (base URL, whether a key is
//! required, its API version root, its base-URL rules) comes from the provider's descriptor,
//! [`crate::providers::Wire::of`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawProvider;
use super::secrets::{resolve_reference, Ctx};
use super::{BaseUrl, ConfigError, Provider, ProviderKind};
use crate::core::secret::Secret;
use crate::providers::Wire;

/// Headers sluice sets itself; `providers.<name>.headers` may not name them.
const RESERVED_HEADERS: [&str; 8] = [
    "authorization",
    "x-api-key",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "accept-encoding",
];

/// Every provider, by config name.
pub(super) fn validate(
    ctx: &Ctx,
    raw: BTreeMap<String, RawProvider>,
) -> Result<BTreeMap<String, Arc<Provider>>, ConfigError> {
    let mut providers = BTreeMap::new();
    for (name, p) in raw {
        let provider = validate_provider(ctx, &name, p)?;
        providers.insert(name, Arc::new(provider));
    }
    Ok(providers)
}

/// `providers.<name>`.
fn validate_provider(ctx: &Ctx, name: &str, p: RawProvider) -> Result<Provider, ConfigError> {
    let path = format!("providers.{name}");
    let kind = parse_kind(&path, &p.kind)?;
    let base = base_url(&path, kind, p.base_url)?;
    let api_key = api_key(ctx, &path, kind, p.api_key)?;
    let headers = headers(&path, p.headers)?;
    let http2 = http2(&path, p.http2, &base)?;
    let api_root = api_root(&path, kind, &base)?;
    Ok(Provider {
        name: name.to_string(),
        kind,
        base,
        api_root,
        api_key,
        headers,
        http2,
    })
}

/// `providers.<name>.kind`: one of the known kinds.
fn parse_kind(path: &str, kind: &str) -> Result<ProviderKind, ConfigError> {
    ProviderKind::parse(kind).ok_or_else(|| {
        let known: Vec<&str> = ProviderKind::ALL.iter().map(|(n, _)| *n).collect();
        ConfigError::new(
            format!("{path}.kind"),
            format!("unknown kind {:?} (one of: {})", kind, known.join(", ")),
        )
    })
}

/// `providers.<name>.base_url`, or the kind's default; required for kinds without one.
fn base_url(path: &str, kind: ProviderKind, raw: Option<String>) -> Result<BaseUrl, ConfigError> {
    let base_url = match (raw, Wire::of(kind).descriptor().default_base_url) {
        (Some(u), _) => u,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(ConfigError::new(
                format!("{path}.base_url"),
                format!("is required for kind {}", kind.as_str()),
            ))
        }
    };
    BaseUrl::parse(&base_url).map_err(|m| ConfigError::new(format!("{path}.base_url"), m))
}

/// `providers.<name>.api_key`: a secret, required by kinds that need one.
fn api_key(
    ctx: &Ctx,
    path: &str,
    kind: ProviderKind,
    raw: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let api_key = raw
        .map(|k| ctx.secret(&format!("{path}.api_key"), &k))
        .transpose()?;
    if api_key.is_none() && Wire::of(kind).descriptor().requires_api_key {
        return Err(ConfigError::new(
            format!("{path}.api_key"),
            format!("is required for kind {}", kind.as_str()),
        ));
    }
    Ok(api_key)
}

/// `providers.<name>.headers`: valid names and values (`${ENV}` and `file:` resolved), none
/// that sluice sets itself.
fn headers(
    path: &str,
    raw: BTreeMap<String, String>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigError> {
    let mut headers = Vec::with_capacity(raw.len());
    for (h, v) in raw {
        let hpath = format!("{path}.headers.{h}");
        let hname = http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| ConfigError::new(&hpath, "invalid header name"))?;
        if is_reserved_header(&hname) {
            return Err(ConfigError::new(
                &hpath,
                "this header is set by sluice itself (use api_key for credentials)",
            ));
        }
        let value = resolve_reference(&hpath, &v)?.unwrap_or(v);
        let hvalue = http::HeaderValue::from_str(&value)
            .map_err(|_| ConfigError::new(&hpath, "invalid header value"))?;
        headers.push((hname, hvalue));
    }
    Ok(headers)
}

/// `providers.<name>.http2`: on by default over TLS, refused without it.
fn http2(path: &str, raw: Option<bool>, base: &BaseUrl) -> Result<bool, ConfigError> {
    match raw {
        Some(true) if !base.tls => Err(ConfigError::new(
            format!("{path}.http2"),
            "HTTP/2 is negotiated over TLS: it needs an https:// base_url",
        )),
        Some(v) => Ok(v),
        None => Ok(base.tls),
    }
}

/// The versioned API root: OpenAI-style base URLs already include it; Anthropic and Gemini
/// base URLs are the server root, their APIs live under /v1 or /v1beta.
fn api_root(path: &str, kind: ProviderKind, base: &BaseUrl) -> Result<String, ConfigError> {
    let wire = Wire::of(kind);
    wire.check_base_path(&base.path)
        .map_err(|m| ConfigError::new(format!("{path}.base_url"), m))?;
    let version = wire.descriptor().api_version;
    Ok(if base.path.ends_with(version) {
        base.path.clone()
    } else {
        format!("{}{version}", base.path)
    })
}

fn is_reserved_header(h: &http::HeaderName) -> bool {
    RESERVED_HEADERS.contains(&h.as_str())
}

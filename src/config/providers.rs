//! Upstream accounts: `providers:`. What a kind needs by default (base URL, whether a key is
//! required, its API version root, its base-URL rules) comes from the provider's descriptor,
//! [`crate::providers::Wire::of`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::raw::RawProvider;
use super::secrets::Ctx;
use super::{BaseUrl, ConfigError, ConfigErrors, ErrorCollector, Provider, ProviderKind};
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

/// Every valid provider, by config name; the errors of the others go to `errors`.
pub(super) fn validate(
    ctx: &Ctx,
    raw: BTreeMap<String, RawProvider>,
    errors: &mut ErrorCollector,
) -> BTreeMap<String, Arc<Provider>> {
    let mut providers = BTreeMap::new();
    for (name, p) in raw {
        if let Some(provider) = errors.take(validate_provider(ctx, &name, p)) {
            providers.insert(name, Arc::new(provider));
        }
    }
    providers
}

/// `providers.<name>`: every error of its settings, those that depend on its kind only when
/// the kind is known.
fn validate_provider(ctx: &Ctx, name: &str, p: RawProvider) -> Result<Provider, ConfigErrors> {
    let path = format!("providers.{name}");
    let mut errors = ErrorCollector::new();
    let kind = errors.take(parse_kind(&path, &p.kind));
    let api_key = errors.take(
        p.api_key
            .map(|k| ctx.secret(&format!("{path}.api_key"), &k))
            .transpose(),
    );
    let headers = errors.take(headers(ctx, &path, p.headers));
    let (Some(kind), Some(api_key), Some(headers)) = (kind, api_key, headers) else {
        return Err(errors.fail());
    };
    let base = errors.take(base_url(&path, kind, p.base_url));
    errors.take(require_api_key(&path, kind, &api_key));
    let Some(base) = base else {
        return Err(errors.fail());
    };
    let http2 = errors.take(http2(&path, p.http2, &base));
    let api_root = errors.take(api_root(&path, kind, &base));
    let (Some(http2), Some(api_root)) = (http2, api_root) else {
        return Err(errors.fail());
    };
    errors.finish(Provider {
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

/// `providers.<name>.api_key`: required by kinds that need one.
fn require_api_key(
    path: &str,
    kind: ProviderKind,
    api_key: &Option<Secret>,
) -> Result<(), ConfigError> {
    if api_key.is_none() && Wire::of(kind).descriptor().requires_api_key {
        return Err(ConfigError::new(
            format!("{path}.api_key"),
            format!("is required for kind {}", kind.as_str()),
        ));
    }
    Ok(())
}

/// `providers.<name>.headers`: valid names and values (`${ENV}` and `file:` resolved), none
/// that sluice sets itself; every bad header is reported. A value not read stands empty.
fn headers(
    ctx: &Ctx,
    path: &str,
    raw: BTreeMap<String, String>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigErrors> {
    let mut errors = ErrorCollector::new();
    let mut headers = Vec::with_capacity(raw.len());
    for (h, v) in raw {
        let hpath = format!("{path}.headers.{h}");
        if let Some(header) = errors.take(header(ctx, &hpath, &h, v)) {
            headers.push(header);
        }
    }
    errors.finish(headers)
}

/// One header at `hpath`.
fn header(
    ctx: &Ctx,
    hpath: &str,
    h: &str,
    v: String,
) -> Result<(http::HeaderName, http::HeaderValue), ConfigError> {
    let hname = http::HeaderName::from_bytes(h.as_bytes())
        .map_err(|_| ConfigError::new(hpath, "invalid header name"))?;
    if is_reserved_header(&hname) {
        return Err(ConfigError::new(
            hpath,
            "this header is set by sluice itself (use api_key for credentials)",
        ));
    }
    let value = match ctx.reference(hpath, &v)? {
        Some(secret) => secret.expose().to_string(),
        None => v,
    };
    let hvalue = http::HeaderValue::from_str(&value)
        .map_err(|_| ConfigError::new(hpath, "invalid header value"))?;
    Ok((hname, hvalue))
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

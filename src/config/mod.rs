//! Configuration: the YAML file operators write, validated into a typed [`Config`].
//!
//! Two layers, as in River: [`raw`] is the serde shape of the file (unknown keys are errors);
//! [`load`]/[`parse`] turn it into a [`Config`] that the rest of the program uses and that is
//! already known to be consistent (every deployment names a known provider, every secret was
//! resolved). Every error names the key path, e.g.
//! `models.claude-fast[1].provider: unknown provider "gemni"`.
//!
//! Secrets never sit in the file: `api_key`, `key` and `admin.token` take `${ENV_VAR}` or
//! `file:/path` (the path may use `${CREDENTIALS_DIRECTORY}`). A literal value is refused unless
//! `allow_inline_secrets: true` is set, which exists for tests only.

mod raw;
pub mod units;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::secret::Secret;
use raw::RawConfig;

/// A configuration error: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `providers.openai.api_key`; empty for whole-file errors.
    pub path: String,
    /// What is wrong. Never contains a secret value.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which wire protocol a provider speaks, and its quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    OpenAiCompatible,
    Groq,
    Xai,
    Ollama,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    const ALL: [(&'static str, ProviderKind); 7] = [
        ("openai", ProviderKind::OpenAi),
        ("openai_compatible", ProviderKind::OpenAiCompatible),
        ("groq", ProviderKind::Groq),
        ("xai", ProviderKind::Xai),
        ("ollama", ProviderKind::Ollama),
        ("anthropic", ProviderKind::Anthropic),
        ("gemini", ProviderKind::Gemini),
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Groq => Some("https://api.groq.com/openai/v1"),
            ProviderKind::Xai => Some("https://api.x.ai/v1"),
            ProviderKind::Ollama => Some("http://127.0.0.1:11434"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
            ProviderKind::OpenAiCompatible => None,
        }
    }

    fn requires_api_key(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenAi
                | ProviderKind::Groq
                | ProviderKind::Xai
                | ProviderKind::Anthropic
                | ProviderKind::Gemini
        )
    }
}

/// A parsed `base_url`: where a provider's API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    /// Host name or IP literal, without brackets; used for DNS and SNI.
    pub host: String,
    pub port: u16,
    /// Value for the `Host` header.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub path: String,
}

impl BaseUrl {
    fn parse(s: &str) -> Result<Self, String> {
        let uri: http::Uri = s.parse().map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("unsupported scheme {other:?} (use http or https)")),
            None => return Err(format!("invalid URL {s:?}: missing http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("invalid URL {s:?}: missing host"))?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not allowed; use api_key".into());
        }
        if uri.query().is_some() {
            return Err(format!("invalid URL {s:?}: a query string is not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(format!("invalid URL {s:?}: missing host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(BaseUrl {
            tls,
            host,
            port,
            authority: authority.as_str().to_string(),
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// An upstream account.
#[derive(Debug)]
pub struct Provider {
    /// The config name, e.g. `openai`; used in logs and metrics.
    pub name: String,
    pub kind: ProviderKind,
    pub base: BaseUrl,
    /// Path prefix for the OpenAI-wire endpoints (`/chat/completions` is appended).
    pub openai_path: String,
    pub api_key: Option<Secret>,
    /// Extra headers sent with every request to this provider.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Offer HTTP/2 (ALPN) and multiplex requests on one connection when the provider agrees.
    pub http2: bool,
}

/// One way to serve a public model.
#[derive(Debug)]
pub struct Deployment {
    pub provider: Arc<Provider>,
    /// The provider's model name.
    pub model: String,
    pub weight: u32,
    /// Tier: deployments with a lower number are used first; higher tiers only when every
    /// deployment of the lower ones is unavailable.
    pub priority: u32,
}

/// A public model name and the deployments that can serve it.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
}

/// A gateway key clients present.
#[derive(Debug)]
pub struct GatewayKey {
    pub name: String,
    pub sha256: [u8; 32],
    /// Allow-list of public model names (globs with `*` and `?`).
    pub models: Vec<String>,
}

impl GatewayKey {
    /// Whether this key may use the public model `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|g| glob_match(g, model))
    }
}

#[derive(Debug)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
    /// Offer HTTP/2 to clients (ALPN).
    pub http2: bool,
}

#[derive(Debug)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_response_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
}

/// Retries and failover.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The longest sluice waits (for a `Retry-After` or a backoff) before another attempt.
    pub max_wait: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Retries allowed as a share of requests (0.2: at most one retry per five requests).
    pub budget_ratio: f64,
    /// Retries always allowed per second, whatever the ratio says.
    pub budget_min_per_second: u32,
}

/// Passive and active health checking.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Consecutive failures that put a deployment into cooldown.
    pub failure_threshold: u32,
    /// Cooldown when the provider gave no `Retry-After`.
    pub cooldown: Duration,
    /// Upper bound for a cooldown set by `Retry-After`.
    pub max_cooldown: Duration,
    pub check: Option<HealthCheckSettings>,
}

/// Active checks: a periodic request to each provider.
#[derive(Debug, Clone)]
pub struct HealthCheckSettings {
    /// Path under the provider's OpenAI base path, e.g. `/models`.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub ca_file: Option<String>,
    pub keepalive_pool_size: usize,
    pub keepalive_idle: Duration,
    /// Concurrent requests on one HTTP/2 connection to a provider.
    pub max_h2_streams: usize,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub admin: Admin,
    pub keys: Vec<GatewayKey>,
    pub providers: BTreeMap<String, Arc<Provider>>,
    /// Public model name → route, sorted by name.
    pub models: BTreeMap<String, Arc<Route>>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub retry: RetrySettings,
    pub health: HealthSettings,
    /// One JSON line per request on stdout.
    pub access_log: bool,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read config file {}: {e}", path.display()),
        )
    })?;
    parse(&text)
}

/// Validates a config given as YAML text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let text = quote_env_refs(text);
    let de = serde_yaml::Deserializer::from_str(&text);
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, e.into_inner().to_string())
    })?;
    validate(raw)
}

/// Wraps unquoted scalars that contain `${...}` in double quotes.
///
/// In a YAML flow mapping such as `{ kind: openai, api_key: ${OPENAI_API_KEY} }` the braces of
/// `${...}` would otherwise open a nested mapping and the file would not parse; the config
/// shape is documented with exactly that style, so it is accepted as written. Quoted scalars
/// and comments are left alone; the result differs from the input only by the added quotes.
fn quote_env_refs(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("${") {
        return std::borrow::Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut flow_depth: usize = 0;
    let mut last = 0; // bytes of `text` before this index are already in `out`
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                i += 1;
                continue;
            }
            b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            q @ (b'"' | b'\'')
                if i == 0 || b[i - 1].is_ascii_whitespace() || b",[{:".contains(&b[i - 1]) =>
            {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        // '' is an escaped quote inside a single-quoted scalar
                        if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if q == b'"' && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'{' | b'[' => flow_depth += 1,
            b'}' | b']' => flow_depth = flow_depth.saturating_sub(1),
            b'$' if b.get(i + 1) == Some(&b'{') => {
                let is_boundary = |c: u8| {
                    c.is_ascii_whitespace()
                        || (flow_depth > 0 && matches!(c, b',' | b'{' | b'[' | b'}' | b']'))
                };
                let mut start = i;
                while start > last && !is_boundary(b[start - 1]) {
                    start -= 1;
                }
                let mut end = i;
                loop {
                    if b[end..].starts_with(b"${") {
                        match text[end..].find('}') {
                            Some(close) => end += close + 1,
                            None => {
                                end = b.len();
                                break;
                            }
                        }
                    } else if end >= b.len() || is_boundary(b[end]) {
                        break;
                    } else {
                        end += 1;
                    }
                }
                out.push_str(&text[last..start]);
                out.push('"');
                out.push_str(&text[start..end].replace('\\', "\\\\").replace('"', "\\\""));
                out.push('"');
                last = end;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

struct Ctx {
    allow_inline: bool,
}

impl Ctx {
    /// Resolves `${ENV}` or `file:PATH`; refuses literals unless inline secrets are allowed.
    fn secret(&self, path: &str, raw: &str) -> Result<Secret, ConfigError> {
        match resolve_reference(path, raw)? {
            Some(v) => Ok(Secret::new(v)),
            None if self.allow_inline => {
                if raw.is_empty() {
                    return Err(ConfigError::new(path, "is empty"));
                }
                Ok(Secret::new(raw))
            }
            None => Err(ConfigError::new(
                path,
                "inline secrets are refused: use ${ENV_VAR} or file:/path \
                 (allow_inline_secrets: true permits them, for tests only)",
            )),
        }
    }
}

/// `${VAR}` → the variable's value; `file:PATH` → the file's content (trailing newline
/// stripped); anything else → `None`. Errors name the key and the variable or file, never the
/// value.
fn resolve_reference(path: &str, raw: &str) -> Result<Option<String>, ConfigError> {
    if let Some(var) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        return env_var(path, var).map(Some);
    }
    if let Some(file) = raw.strip_prefix("file:") {
        let file = expand_env(path, file)?;
        let content = std::fs::read_to_string(&file).map_err(|e| {
            ConfigError::new(
                path,
                format!("cannot read secret file {file}: {}", e.kind()),
            )
        })?;
        let value = content.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            return Err(ConfigError::new(
                path,
                format!("secret file {file} is empty"),
            ));
        }
        return Ok(Some(value));
    }
    Ok(None)
}

fn env_var(path: &str, var: &str) -> Result<String, ConfigError> {
    if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::new(
            path,
            format!("invalid environment variable name {var:?}"),
        ));
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => Err(ConfigError::new(
            path,
            format!("environment variable {var} is empty"),
        )),
        Err(_) => Err(ConfigError::new(
            path,
            format!("environment variable {var} is not set"),
        )),
    }
}

/// Expands `${VAR}` occurrences inside a non-secret string such as a file path.
fn expand_env(path: &str, s: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::new(path, "unterminated ${ in value"))?;
        out.push_str(&env_var(path, &after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_listen(path: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::new(
            path,
            format!("invalid address {s:?}: expected IP:PORT, e.g. 127.0.0.1:8080"),
        )
    })
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        allow_inline: raw.allow_inline_secrets,
    };
    let listen = parse_listen("listen", &raw.listen)?;
    let tls = raw.tls.map(|t| TlsFiles {
        cert: t.cert,
        key: t.key,
        http2: t.http2.unwrap_or(true),
    });
    if let Some(t) = &tls {
        for (key, file) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
            if !Path::new(file).is_file() {
                return Err(ConfigError::new(key, format!("file {file} does not exist")));
            }
        }
    }

    let admin = {
        let raw_admin = raw.admin.unwrap_or(raw::RawAdmin {
            listen: None,
            token: None,
        });
        let listen = match raw_admin.listen {
            Some(s) => parse_listen("admin.listen", &s)?,
            None => "127.0.0.1:9091".parse().expect("static address"),
        };
        let token = raw_admin
            .token
            .map(|t| ctx.secret("admin.token", &t))
            .transpose()?;
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(ConfigError::new(
                "admin.listen",
                "a non-loopback admin listener requires admin.token",
            ));
        }
        Admin { listen, token }
    };
    if admin.listen == listen {
        return Err(ConfigError::new(
            "admin.listen",
            "must differ from listen: admin and client traffic use separate listeners",
        ));
    }

    let keys = validate_keys(&ctx, raw.keys)?;

    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let provider = validate_provider(&ctx, &name, p)?;
        providers.insert(name, Arc::new(provider));
    }

    let mut models = BTreeMap::new();
    for (public, deps) in raw.models {
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
            let provider = providers.get(&d.provider).ok_or_else(|| {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                ConfigError::new(
                    format!("{path}.provider"),
                    format!(
                        "unknown provider {:?} (known providers: {})",
                        d.provider,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            let weight = d.weight.unwrap_or(1);
            if weight == 0 {
                return Err(ConfigError::new(
                    format!("{path}.weight"),
                    "must be at least 1",
                ));
            }
            let model = d.model.unwrap_or_else(|| public.clone());
            if model.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.model"),
                    "must not be empty",
                ));
            }
            deployments.push(Arc::new(Deployment {
                provider: provider.clone(),
                model,
                weight,
                priority: d.priority.unwrap_or(0),
            }));
        }
        models.insert(
            public.clone(),
            Arc::new(Route {
                name: public,
                deployments,
            }),
        );
    }

    let limits = Limits {
        max_body_bytes: raw.limits.max_body_bytes.map_or(8 << 20, |b| b.0 as usize),
        max_response_bytes: raw
            .limits
            .max_response_bytes
            .map_or(64 << 20, |b| b.0 as usize),
    };
    if limits.max_body_bytes == 0 {
        return Err(ConfigError::new(
            "limits.max_body_bytes",
            "must be positive",
        ));
    }
    if limits.max_response_bytes < 1024 {
        return Err(ConfigError::new(
            "limits.max_response_bytes",
            "must be at least 1KiB",
        ));
    }

    let t = raw.timeouts;
    let timeouts = Timeouts {
        connect: t.connect.map_or(Duration::from_secs(10), |d| d.0),
        first_byte: t.first_byte.map_or(Duration::from_secs(600), |d| d.0),
        idle: t.idle.map_or(Duration::from_secs(300), |d| d.0),
        total: t.total.map_or(Duration::from_secs(1800), |d| d.0),
    };
    for (key, d) in [
        ("timeouts.connect", timeouts.connect),
        ("timeouts.first_byte", timeouts.first_byte),
        ("timeouts.idle", timeouts.idle),
        ("timeouts.total", timeouts.total),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(key, "must be positive"));
        }
    }

    let s = raw.server;
    let threads = match s.threads {
        Some(0) => return Err(ConfigError::new("server.threads", "must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let server = ServerSettings {
        threads,
        pid_file: s.pid_file.unwrap_or_else(|| "/tmp/sluice.pid".into()),
        upgrade_sock: s
            .upgrade_sock
            .unwrap_or_else(|| "/tmp/sluice_upgrade.sock".into()),
        grace_period: s.grace_period.map_or(Duration::from_secs(300), |d| d.0),
        graceful_shutdown_timeout: s
            .graceful_shutdown_timeout
            .map_or(Duration::from_secs(5), |d| d.0),
    };

    let u = raw.upstream;
    if let Some(ca) = &u.ca_file {
        if !Path::new(ca).is_file() {
            return Err(ConfigError::new(
                "upstream.ca_file",
                format!("file {ca} does not exist"),
            ));
        }
    }
    let upstream = UpstreamSettings {
        ca_file: u.ca_file,
        keepalive_pool_size: u.keepalive_pool_size.unwrap_or(256),
        keepalive_idle: u.keepalive_idle.map_or(Duration::from_secs(60), |d| d.0),
        max_h2_streams: u.max_h2_streams.unwrap_or(100),
    };
    if upstream.max_h2_streams == 0 {
        return Err(ConfigError::new(
            "upstream.max_h2_streams",
            "must be at least 1",
        ));
    }

    let retry = validate_retry(raw.retry)?;
    let health = validate_health(raw.health)?;

    Ok(Config {
        access_log: raw.access_log.unwrap_or(true),
        retry,
        health,
        listen,
        tls,
        admin,
        keys,
        providers,
        models,
        limits,
        timeouts,
        server,
        upstream,
    })
}

fn validate_retry(r: raw::RawRetry) -> Result<RetrySettings, ConfigError> {
    let retry = RetrySettings {
        max_attempts: r.max_attempts.unwrap_or(3),
        max_wait: r.max_wait.map_or(Duration::from_secs(10), |d| d.0),
        backoff_base: r.backoff_base.map_or(Duration::from_millis(200), |d| d.0),
        backoff_max: r.backoff_max.map_or(Duration::from_secs(5), |d| d.0),
        budget_ratio: r.budget_ratio.unwrap_or(0.2),
        budget_min_per_second: r.budget_min_per_second.unwrap_or(5),
    };
    if !(1..=10).contains(&retry.max_attempts) {
        return Err(ConfigError::new(
            "retry.max_attempts",
            "must be between 1 and 10",
        ));
    }
    if !(0.0..=1.0).contains(&retry.budget_ratio) {
        return Err(ConfigError::new(
            "retry.budget_ratio",
            "must be between 0 and 1",
        ));
    }
    if retry.backoff_base > retry.backoff_max {
        return Err(ConfigError::new(
            "retry.backoff_base",
            "must not exceed retry.backoff_max",
        ));
    }
    Ok(retry)
}

fn validate_health(h: raw::RawHealth) -> Result<HealthSettings, ConfigError> {
    let c = h.check;
    let check = if c.enabled.unwrap_or(true) {
        let path = c.path.unwrap_or_else(|| "/models".into());
        if !path.starts_with('/') {
            return Err(ConfigError::new("health.check.path", "must start with /"));
        }
        let check = HealthCheckSettings {
            path,
            interval: c.interval.map_or(Duration::from_secs(30), |d| d.0),
            timeout: c.timeout.map_or(Duration::from_secs(5), |d| d.0),
            unhealthy_threshold: c.unhealthy_threshold.unwrap_or(2),
            healthy_threshold: c.healthy_threshold.unwrap_or(1),
        };
        if check.interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "health.check.interval",
                "must be at least 100ms",
            ));
        }
        if check.timeout.is_zero() {
            return Err(ConfigError::new("health.check.timeout", "must be positive"));
        }
        if check.unhealthy_threshold == 0 || check.healthy_threshold == 0 {
            return Err(ConfigError::new(
                "health.check",
                "unhealthy_threshold and healthy_threshold must be at least 1",
            ));
        }
        Some(check)
    } else {
        None
    };
    let health = HealthSettings {
        failure_threshold: h.failure_threshold.unwrap_or(3),
        cooldown: h.cooldown.map_or(Duration::from_secs(10), |d| d.0),
        max_cooldown: h.max_cooldown.map_or(Duration::from_secs(300), |d| d.0),
        check,
    };
    if health.failure_threshold == 0 {
        return Err(ConfigError::new(
            "health.failure_threshold",
            "must be at least 1",
        ));
    }
    Ok(health)
}

fn validate_keys(ctx: &Ctx, raw: Vec<raw::RawKey>) -> Result<Vec<GatewayKey>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            "keys",
            "at least one gateway key is required (clients authenticate with it)",
        ));
    }
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut keys = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let path = format!("keys[{i}]");
        if k.name.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        if !names.insert(k.name.clone()) {
            return Err(ConfigError::new(
                format!("{path}.name"),
                format!("duplicate key name {:?}", k.name),
            ));
        }
        let sha256: [u8; 32] = match (k.key, k.key_sha256) {
            (Some(key), None) => {
                let secret = ctx.secret(&format!("{path}.key"), &key)?;
                Sha256::digest(secret.expose().as_bytes()).into()
            }
            (None, Some(hex_hash)) => {
                let bytes = hex::decode(hex_hash.trim()).ok().filter(|b| b.len() == 32);
                match bytes {
                    Some(b) => b.try_into().expect("length checked"),
                    None => {
                        return Err(ConfigError::new(
                            format!("{path}.key_sha256"),
                            "must be 64 hexadecimal characters (a SHA-256 digest)",
                        ))
                    }
                }
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    path,
                    "set either key or key_sha256, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(path, "needs key or key_sha256"));
            }
        };
        if !hashes.insert(sha256) {
            return Err(ConfigError::new(
                path,
                "the same key is configured twice (under another name)",
            ));
        }
        let models = k.models.unwrap_or_else(|| vec!["*".into()]);
        for (j, g) in models.iter().enumerate() {
            if g.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.models[{j}]"),
                    "must not be empty",
                ));
            }
        }
        keys.push(GatewayKey {
            name: k.name,
            sha256,
            models,
        });
    }
    Ok(keys)
}

fn validate_provider(ctx: &Ctx, name: &str, p: raw::RawProvider) -> Result<Provider, ConfigError> {
    let path = format!("providers.{name}");
    let kind = ProviderKind::parse(&p.kind).ok_or_else(|| {
        let known: Vec<&str> = ProviderKind::ALL.iter().map(|(n, _)| *n).collect();
        ConfigError::new(
            format!("{path}.kind"),
            format!("unknown kind {:?} (one of: {})", p.kind, known.join(", ")),
        )
    })?;
    if matches!(kind, ProviderKind::Anthropic | ProviderKind::Gemini) {
        return Err(ConfigError::new(
            format!("{path}.kind"),
            format!(
                "kind {:?} is not supported by this version yet \
                 (supported: openai, openai_compatible, groq, xai, ollama)",
                p.kind
            ),
        ));
    }
    let base_url = match (p.base_url, kind.default_base_url()) {
        (Some(u), _) => u,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(ConfigError::new(
                format!("{path}.base_url"),
                format!("is required for kind {}", kind.as_str()),
            ))
        }
    };
    let base =
        BaseUrl::parse(&base_url).map_err(|m| ConfigError::new(format!("{path}.base_url"), m))?;
    let api_key = p
        .api_key
        .map(|k| ctx.secret(&format!("{path}.api_key"), &k))
        .transpose()?;
    if api_key.is_none() && kind.requires_api_key() {
        return Err(ConfigError::new(
            format!("{path}.api_key"),
            format!("is required for kind {}", kind.as_str()),
        ));
    }
    let mut headers = Vec::with_capacity(p.headers.len());
    for (h, v) in p.headers {
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
    let http2 = match p.http2 {
        Some(true) if !base.tls => {
            return Err(ConfigError::new(
                format!("{path}.http2"),
                "HTTP/2 is negotiated over TLS: it needs an https:// base_url",
            ))
        }
        Some(v) => v,
        None => base.tls,
    };
    let openai_path = if kind == ProviderKind::Ollama && !base.path.ends_with("/v1") {
        format!("{}/v1", base.path)
    } else {
        base.path.clone()
    };
    Ok(Provider {
        name: name.to_string(),
        kind,
        base,
        openai_path,
        api_key,
        headers,
        http2,
    })
}

fn is_reserved_header(h: &http::HeaderName) -> bool {
    const RESERVED: [&str; 8] = [
        "authorization",
        "x-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "accept-encoding",
    ];
    RESERVED.contains(&h.as_str())
}

/// Glob match with `*` (any run, possibly empty) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Looks a presented key up among the configured ones. Every configured hash is compared in
/// constant time, so the time taken says nothing about which key (if any) came close.
pub fn find_key<'a>(keys: &'a [GatewayKey], presented: &str) -> Option<&'a GatewayKey> {
    use subtle::ConstantTimeEq;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for k in keys {
        if bool::from(k.sha256.ct_eq(&digest)) {
            found = Some(k);
        }
    }
    found
}

#[cfg(test)]
mod tests;

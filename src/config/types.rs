//! The validated configuration: what the rest of sluice reads. Built only by
//! [`super::parse`], so every value here has been checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::core::secret::Secret;

pub use super::cidr::Cidr;

pub use crate::providers::ProviderKind;

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
    pub(super) fn parse(s: &str) -> Result<Self, String> {
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
    /// The versioned API root path: endpoint paths (`/chat/completions`, `/messages`,
    /// `/models`) are appended to it.
    pub api_root: String,
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
    /// The names of the guardrails that apply to this key's requests and answers, in
    /// order: its own list, or `default_guardrails`. Compiled per key at startup (the
    /// gateway's key ring).
    pub guardrails: Vec<String>,
    /// The team the key belongs to, recorded in the usage ledger.
    pub team: Option<String>,
    /// Whether the response cache serves this key (`keys[].cache`, default true).
    pub cache: bool,
    /// The cache scope the key shares with others (`keys[].cache_scope`); `None` = its own.
    pub cache_scope: Option<String>,
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

/// `admin:`: the admin listener and who may use it.
#[derive(Debug)]
pub struct Admin {
    pub listen: SocketAddr,
    /// `admin.token` (named `admin`, role admin) first, then `admin.tokens`. Empty: no token
    /// is required, and only requests naming a loopback host are answered.
    pub tokens: Vec<AdminToken>,
    /// The client networks the admin listener answers at all; `None`: every network.
    pub allow: Option<Vec<Cidr>>,
}

/// A bearer token of the admin listener and what it may do.
#[derive(Debug)]
pub struct AdminToken {
    /// Names the holder in the audit log and metrics; never the token itself.
    pub name: String,
    pub token: Secret,
    pub role: Role,
    /// The networks this token is accepted from; `None`: wherever the listener answers.
    pub allow: Option<Vec<Cidr>>,
}

/// What an admin token may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: metrics, health, usage, the dashboard.
    Viewer,
    /// Also manages gateway keys (`/keys`).
    Operator,
    /// Everything, including `POST /reload`.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Largest whole answer read from a provider.
    pub max_response_bytes: usize,
    /// Largest streamed answer relayed from a provider.
    pub max_stream_bytes: usize,
    /// Request-body bytes all requests in flight may hold together.
    pub max_inflight_body_bytes: usize,
    /// Largest `max_tokens` (or `max_completion_tokens`, `max_output_tokens`) a request may
    /// name.
    pub max_completion_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
    /// A client's whole request header, from the first byte (or from the previous answer on
    /// a kept-alive connection).
    pub request_header: Duration,
    /// A client's whole request body.
    pub request_body: Duration,
    /// How long a kept-alive client connection may wait for its next request.
    pub client_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub threads: usize,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    /// Client connections open at once; more are closed as they arrive.
    pub max_connections: usize,
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
    /// Path under the provider's API root; `None` means the wire format's own (`/models`,
    /// or `/api/tags` for Ollama).
    pub path: Option<String>,
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
    /// `default_guardrails`: the guardrails of a key without a list of its own (managed
    /// keys included).
    pub default_guardrails: Vec<String>,
    /// The guardrails defined in `guardrails:`, validated and compiled.
    pub guardrails: Arc<crate::guardrails::Guardrails>,
    pub providers: BTreeMap<String, Arc<Provider>>,
    /// Public model name → route, sorted by name.
    pub models: BTreeMap<String, Arc<Route>>,
    pub limits: Limits,
    /// Rate limits, concurrency caps and spend budgets (`limits:`, `pricing:`,
    /// `keys[].limits`).
    pub rate_limits: crate::limits::LimitsConfig,
    pub timeouts: Timeouts,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub retry: RetrySettings,
    pub health: HealthSettings,
    /// One JSON line per request on stdout.
    pub access_log: bool,
    /// The usage ledger; `None` when `usage:` is absent.
    pub usage: Option<UsageSettings>,
    /// The response cache; `None` when `cache:` is absent (off).
    pub cache: Option<CacheSettings>,
    /// OpenTelemetry traces; `None` when `tracing:` is absent.
    pub tracing: Option<TracingSettings>,
}

/// `cache:`: the response cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    /// How long an answer is served from the cache.
    pub ttl: Duration,
    /// Larger answers are not stored.
    pub max_entry_bytes: usize,
    /// `cache.models`: the public models cached; `None` = every model.
    pub models: Option<Vec<String>>,
}

/// `cache.backend`: where answers are kept.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheBackend {
    /// In this process, bounded by `max_bytes` (least recently used evicted first).
    Memory { max_bytes: u64 },
    /// A Redis server shared by every instance (`cache.redis_url`, else `limits.redis_url`).
    Redis {
        url: crate::core::secret::Secret,
        timeout: Duration,
    },
}

/// `tracing:`: where spans are exported (OTLP/HTTP, protobuf) and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// The collector's root; spans go to `<endpoint>/v1/traces`.
    pub endpoint: BaseUrl,
    /// The share of new traces recorded; a client's `traceparent` decides for its own.
    pub sample_ratio: f64,
    /// Sent with every export (e.g. `authorization`); the values are secrets.
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// The longest one export may take.
    pub timeout: Duration,
}

/// `usage:`: where the usage ledger is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSettings {
    pub store: UsageStore,
    /// Where records go while the store is behind or unreachable (JSON lines), replayed
    /// into the store once it catches up: beside the SQLite file, or `usage.spill` under the
    /// state directory for a database server.
    pub spill: std::path::PathBuf,
    /// Records older than this are pruned.
    pub retention: Duration,
    /// How often each instance reads the managed keys from the store: a key created,
    /// revoked or rotated on one instance holds on all within this (plus one query).
    pub key_refresh: Duration,
}

/// `usage.store`: where the ledger is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum UsageStore {
    /// An embedded SQLite file (`usage.path`).
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL database (`usage.url`, a `postgres://` URL that may carry a password).
    Postgres { url: crate::core::secret::Secret },
}

/// Glob match with `*` (any run, possibly empty) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    // Byte by byte unless a `?` must match a character of several bytes. Without `?`, a
    // literal's UTF-8 starts with a byte no character's middle has, so it matches bytes at
    // character boundaries only: the same answer as matching characters.
    if !pattern.contains('?') || (pattern.is_ascii() && text.is_ascii()) {
        return glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t, '*', '?')
}

/// [`glob_match`] over a pattern and a text of units, `any` and `one` the wildcards.
fn glob<T: PartialEq + Copy>(p: &[T], t: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
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
    while pi < p.len() && p[pi] == any {
        pi += 1;
    }
    pi == p.len()
}

//! Errors as clients see them: `{"error":{"message","type","param","code"}}` with the matching
//! HTTP status. Every failure in the request path becomes an [`ApiError`]; this is the one place
//! that decides its status, body and metric label.

use bytes::Bytes;
use serde_json::json;

/// Where an error came from; also its low-cardinality label for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something wrong.
    Client,
    /// Missing or wrong credentials, or a model the key may not use.
    Auth,
    /// The provider failed, timed out or answered with an error.
    Upstream,
    /// sluice itself failed.
    Internal,
    /// A rate limit, budget or concurrency cap refused the request.
    Limit,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Auth => "auth",
            Origin::Upstream => "upstream",
            Origin::Internal => "internal",
            Origin::Limit => "limit",
        }
    }
}

/// An error to be sent to the client in the OpenAI shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<String>,
    pub message: String,
    pub origin: Origin,
    /// `Retry-After` to pass on (seconds or HTTP date), for 429/503.
    pub retry_after: Option<String>,
}

/// Client-supplied strings are echoed in messages only up to this many characters.
const ECHO_MAX: usize = 128;

/// Shortens client-supplied text before it is echoed back in an error message.
pub fn echo(s: &str) -> String {
    if s.chars().count() <= ECHO_MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(ECHO_MAX).collect();
        out.push('…');
        out
    }
}

/// Longest provider error message passed on, in bytes.
const PROVIDER_MESSAGE_MAX: usize = 2000;
/// Longest provider `param` or `code` passed on, in bytes.
const PROVIDER_FIELD_MAX: usize = 128;
/// Longest `Retry-After` passed on from a provider: a day.
const RETRY_AFTER_MAX_SECS: f64 = 86_400.0;

/// Removes `secret` from text that came from a provider, and bounds it to `max` bytes (cut on
/// a character boundary, with `…` appended). A secret shorter than 8 bytes is not searched
/// for: it would match ordinary words.
pub fn scrub(mut text: String, secret: Option<&str>, max: usize) -> String {
    if let Some(secret) = secret.filter(|k| k.len() >= 8) {
        if text.contains(secret) {
            text = text.replace(secret, "***");
        }
    }
    if let std::borrow::Cow::Owned(clipped) = clip(&text, max) {
        text = clipped;
    }
    text
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` appended when cut.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut]).into()
}

impl ApiError {
    fn new(status: u16, kind: &'static str, origin: Origin, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            code: None,
            param: None,
            message: message.into(),
            origin,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", Origin::Client, message)
    }

    /// 400 for a body that is not valid JSON; the message says where parsing failed.
    pub fn invalid_json(e: &serde_json::Error) -> Self {
        Self::invalid_request(format!(
            "We could not parse the JSON body of your request: {e}. \
             The body must be a valid JSON object."
        ))
        .with_code("invalid_json")
    }

    /// 400 for a missing required parameter.
    pub fn missing_param(param: &str) -> Self {
        Self::invalid_request(format!("Missing required parameter: '{param}'."))
            .with_param(param)
            .with_code("missing_required_parameter")
    }

    /// 400 for a parameter of the wrong type or value.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid_request(message)
            .with_param(param)
            .with_code("invalid_value")
    }

    /// 401: no key, or a key sluice does not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", Origin::Auth, message).with_code("invalid_api_key")
    }

    /// 404 for an unknown model, and for a model the key may not use: the two are
    /// indistinguishable so that a key cannot probe which models exist.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            Origin::Client,
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                echo(model)
            ),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for a path sluice does not serve.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            Origin::Client,
            format!("Unknown request URL: {} {}.", echo(method), echo(path)),
        )
        .with_code("unknown_url")
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            Origin::Client,
            format!(
                "Method {} is not allowed for {}; use {allowed}.",
                echo(method),
                echo(path)
            ),
        )
        .with_code("method_not_allowed")
    }

    /// 413: the request body is larger than `limits.max_body_bytes`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            Origin::Client,
            format!("Request body too large: the limit is {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// 502: the provider could not be reached or sent something unusable.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "api_error", Origin::Upstream, message).with_code("bad_gateway")
    }

    /// 504: the provider did not answer in time.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(504, "api_error", Origin::Upstream, message).with_code("upstream_timeout")
    }

    /// 500: a bug or an impossible state in sluice.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "api_error", Origin::Internal, message).with_code("internal_error")
    }

    /// A request refused by a rate limit, budget or concurrency cap (429), or because the
    /// limits backend is unreachable (503).
    pub fn limited(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        let kind = if status == 429 {
            "rate_limit_error"
        } else {
            "api_error"
        };
        Self::new(status, kind, Origin::Limit, message).with_code(code)
    }

    /// A request refused by an input guardrail. Names the guardrail and the kind of match,
    /// never the matched text.
    pub fn content_filter(guardrail: &str, kind: &str) -> Self {
        Self::invalid_request(format!(
            "The request was blocked by the gateway's guardrail '{guardrail}' ({kind}). \
             Remove the flagged content and try again."
        ))
        .with_code("content_filter")
    }

    /// 503: a guardrail that must judge the request (a webhook with `on_error: fail_closed`)
    /// could not. Names the guardrail only.
    pub fn guardrail_unavailable(guardrail: &str) -> Self {
        Self::new(
            503,
            "api_error",
            Origin::Internal,
            format!(
                "The gateway's guardrail '{guardrail}' could not check the request. Try again \
                 later."
            ),
        )
        .with_code("guardrail_unavailable")
    }

    /// An error the provider answered with, normalised. `status` is the status to give the
    /// client; `kind` the OpenAI error type.
    pub fn upstream(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, kind, Origin::Upstream, message)
    }

    pub fn with_retry_after(mut self, retry_after: Option<String>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Makes an error built from a provider's answer safe to pass to the client: `secret`
    /// (the provider's credential) is removed from the message, `param` and `code`, each of
    /// them is bounded, `code` keeps only identifier characters, and `Retry-After` survives
    /// only as whole seconds parsed from seconds or an HTTP date (anything else is dropped).
    pub fn from_provider(mut self, secret: Option<&str>) -> Self {
        self.message = scrub(
            std::mem::take(&mut self.message),
            secret,
            PROVIDER_MESSAGE_MAX,
        );
        self.param = self
            .param
            .take()
            .map(|p| scrub(p, secret, PROVIDER_FIELD_MAX))
            .filter(|p| !p.is_empty());
        self.code = self
            .code
            .take()
            .map(|c| scrub(c, secret, PROVIDER_FIELD_MAX))
            .filter(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
            });
        self.retry_after = self
            .retry_after
            .take()
            .and_then(|v| parse_retry_after(&v))
            .map(|d| {
                d.as_secs_f64()
                    .ceil()
                    .clamp(0.0, RETRY_AFTER_MAX_SECS)
                    .to_string()
            });
        self
    }

    /// The JSON object `{"error": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }

    /// The response body.
    pub fn body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&self.to_json()).expect("JSON values serialise"))
    }

    /// The error as one SSE event, for failures after a stream has started.
    pub fn sse_event(&self) -> Bytes {
        let mut out = bytes::BytesMut::with_capacity(160 + self.message.len());
        super::sse::write_event(&mut out, &self.to_json());
        out.freeze()
    }
}

/// A configuration error: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `providers.openai.api_key`; empty for whole-file errors.
    pub path: String,
    /// What is wrong. Never contains a secret value.
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error found in a config file, in the order they were found; never empty. `Display`
/// writes one error per line, so that an operator fixes them all in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// `errors` as one value; `None` when there are none.
    pub fn new(errors: Vec<ConfigError>) -> Option<Self> {
        (!errors.is_empty()).then_some(ConfigErrors(errors))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// The first error found.
    pub fn first(&self) -> &ConfigError {
        &self.0[0]
    }

    /// How many errors; at least 1.
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Gathers config errors while validation goes on, so that one run reports all of them.
#[derive(Debug, Default)]
pub struct ErrorCollector(Vec<ConfigError>);

impl ErrorCollector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `r`, or `None` with its error(s) kept.
    pub fn take<T, E: Into<ConfigErrors>>(&mut self, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.into().0);
                None
            }
        }
    }

    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }

    /// Whether nothing was wrong so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many errors were kept so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The errors kept so far, to refine their messages.
    pub fn as_mut_slice(&mut self) -> &mut [ConfigError] {
        &mut self.0
    }

    /// The errors kept, for a caller that could not build its value because of them.
    /// (Called with none kept, which would be a bug, it still returns an error.)
    pub fn fail(self) -> ConfigErrors {
        ConfigErrors::new(self.0)
            .unwrap_or_else(|| ConfigError::new("", "invalid configuration").into())
    }

    /// `value` when no error was kept, else every error.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        match ConfigErrors::new(self.0) {
            None => Ok(value),
            Some(e) => Err(e),
        }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(std::time::Duration::from_secs_f64(secs.min(86_400.0)));
        }
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let e = ApiError::missing_param("model");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "missing_required_parameter");
        assert!(v["error"]["message"].as_str().unwrap().contains("model"));
        assert_eq!(e.status, 400);
    }

    #[test]
    fn echo_is_bounded() {
        let long = "x".repeat(10_000);
        let e = ApiError::model_not_found(&long);
        assert!(e.message.len() < 300, "{}", e.message.len());
    }

    #[test]
    fn provider_fields_are_scrubbed_and_bounded() {
        const KEY: &str = "sk-test-provider-secret-1234";
        let mut e = ApiError::upstream(400, "invalid_request_error", format!("bad key {KEY}"));
        e.param = Some(format!("{KEY}{}", "p".repeat(5000)));
        e.code = Some(format!("code_{KEY}"));
        e.retry_after = Some(KEY.to_string());
        let e = e.from_provider(Some(KEY));
        let body = String::from_utf8(e.body().to_vec()).unwrap();
        assert!(!body.contains(KEY), "{body}");
        assert!(e
            .param
            .as_deref()
            .is_some_and(|p| p.len() < 200 && p.starts_with("***")));
        // `code_***` is not an identifier any more: dropped rather than passed on mangled.
        assert_eq!(e.code, None);
        assert_eq!(e.retry_after, None, "not seconds, not a date: dropped");

        let with = |ra: &str| {
            ApiError::upstream(429, "rate_limit_error", "slow down")
                .with_retry_after(Some(ra.into()))
                .from_provider(Some(KEY))
                .retry_after
        };
        assert_eq!(with("7").as_deref(), Some("7"));
        assert_eq!(with("1.2").as_deref(), Some("2"));
        assert_eq!(with("99999999999999").as_deref(), Some("86400"));
        let soon = httpdate::fmt_http_date(
            std::time::SystemTime::now() + std::time::Duration::from_secs(30),
        );
        let secs: u64 = with(&soon).unwrap().parse().unwrap();
        assert!((28..=31).contains(&secs), "{secs}");
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT").as_deref(), Some("0"));
        let ok = ApiError::upstream(400, "invalid_request_error", "x")
            .with_code("context_length_exceeded")
            .with_param("messages")
            .from_provider(Some(KEY));
        assert_eq!(ok.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(ok.param.as_deref(), Some("messages"));
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let e = ApiError::bad_gateway("upstream closed\nthe stream");
        let ev = e.sse_event();
        let s = std::str::from_utf8(&ev).unwrap();
        assert!(s.starts_with("data: {"));
        assert!(s.ends_with("\n\n"));
        assert_eq!(
            s.matches('\n').count(),
            2,
            "newlines in the message are escaped"
        );
    }
}

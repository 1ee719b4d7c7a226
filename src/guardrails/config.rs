//! The `guardrails:` config section: raw serde types and their validation into
//! [`Guardrails`].
//!
//! ```yaml
//! guardrails:
//!   - name: no-secrets
//!     type: secrets            # secrets | pii | prompt_injection | regex
//!     action: redact           # block | redact | log
//!     apply_to: [input, output]  # default: both
//!   - name: internal-codenames
//!     type: regex
//!     patterns: ["(?i)project\\s+falcon"]
//!     max_match_len: 256       # regex only: longest match considered (default 256)
//!     action: block
//!     fields: ["$.messages[*].content"]  # optional: what is inspected on input
//!     hidden_characters: strip # strip | block | keep: hidden characters, input and output
//!   - name: classifier
//!     type: webhook            # the text goes to an HTTP service (see `webhook`)
//!     url: http://127.0.0.1:9000/check
//!     action: block            # block: apply its verdicts | log: record them only
//!     on_error: fail_closed    # fail_closed | fail_open
//!   - name: personal-data
//!     type: pii
//!     action: redact
//!     phone_regions: [FR, GB]  # pii only: regions for numbers without a country code
//! ```
//!
//! Every error names the key path, e.g. `guardrails[2].patterns[0]: invalid regex: ...`.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::detectors::{self, Detector};
use super::engine::{Engine, Entry};
use super::jsonpath::JsonPath;
use super::normalize::Profile;
use super::{Action, Guardrails, Hidden, Rule};
use crate::core::{ConfigError, ConfigErrors, ErrorCollector};

/// Largest user pattern program (bytes), for the `regex` validation pass.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Default and largest `max_match_len` for `regex` guardrails.
pub const DEFAULT_MAX_MATCH_LEN: usize = 256;
const MAX_MAX_MATCH_LEN: usize = 4096;

/// One guardrail as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrail {
    /// Unique name; also the redaction kind of a `regex` guardrail.
    pub name: String,
    /// `secrets`, `pii`, `prompt_injection` or `regex`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `block`, `redact` or `log`.
    pub action: String,
    /// `input` and/or `output`; both when absent.
    #[serde(default)]
    pub apply_to: Option<Vec<String>>,
    /// `regex` only: the patterns (Rust `regex` syntax).
    #[serde(default)]
    pub patterns: Option<Vec<String>>,
    /// `regex` only: longest match considered, in bytes.
    #[serde(default)]
    pub max_match_len: Option<usize>,
    /// Optional JSONPath selection of the request strings inspected on input.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// What to do with hidden characters in the inspected input and in answers: `strip`
    /// (default), `block` or `keep`.
    #[serde(default)]
    pub hidden_characters: Option<String>,
    /// `webhook` only: the service's URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook` only: headers sent with every call (values may be `${ENV}` or `file:`).
    #[serde(default)]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// `headers` with their references resolved (set by the config loader).
    #[serde(skip)]
    pub resolved_headers: Vec<(String, crate::core::secret::Secret)>,
    /// `webhook` only: how long a call may take (default 2s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// `webhook` only: `fail_closed` (default) or `fail_open`.
    #[serde(default)]
    pub on_error: Option<String>,
    /// `webhook` only: how long a verdict is reused for the same text (default 5m; 0s: never).
    #[serde(default)]
    pub cache_ttl: Option<String>,
    /// `webhook` only: most text bytes per call (default 1 MiB).
    #[serde(default)]
    pub max_text_bytes: Option<usize>,
    /// `webhook` only: bytes of streamed answer text per call (default 2048).
    #[serde(default)]
    pub window: Option<usize>,
    /// `pii` only: regions (ISO 3166 alpha-2) tried for phone numbers written without a
    /// country code; a built-in list when absent.
    #[serde(default)]
    pub phone_regions: Option<Vec<String>>,
}

fn parse_action(path: &str, s: &str) -> Result<Action, ConfigError> {
    match s {
        "block" => Ok(Action::Block),
        "redact" => Ok(Action::Redact),
        "log" => Ok(Action::Log),
        _ => Err(ConfigError::new(
            path,
            format!("unknown action {s:?} (one of: block, redact, log)"),
        )),
    }
}

fn parse_hidden(path: &str, g: &RawGuardrail) -> Result<Hidden, ConfigError> {
    let path = format!("{path}.hidden_characters");
    let Some(h) = &g.hidden_characters else {
        return Ok(Hidden::Strip);
    };
    match h.as_str() {
        "strip" => Ok(Hidden::Strip),
        "block" => Ok(Hidden::Block),
        "keep" => Ok(Hidden::Keep),
        _ => Err(ConfigError::new(
            path,
            format!("unknown value {h:?} (one of: strip, block, keep)"),
        )),
    }
}

fn user_detectors(
    path: &str,
    name: &str,
    g: &RawGuardrail,
) -> Result<Vec<Arc<Detector>>, ConfigError> {
    let patterns = match &g.patterns {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(ConfigError::new(
                format!("{path}.patterns"),
                "a regex guardrail needs at least one pattern",
            ))
        }
    };
    let max_len = g.max_match_len.unwrap_or(DEFAULT_MAX_MATCH_LEN);
    if !(1..=MAX_MAX_MATCH_LEN).contains(&max_len) {
        return Err(ConfigError::new(
            format!("{path}.max_match_len"),
            format!("must be between 1 and {MAX_MAX_MATCH_LEN}"),
        ));
    }
    let mut out = Vec::new();
    for (j, p) in patterns.iter().enumerate() {
        let ppath = format!("{path}.patterns[{j}]");
        let re = regex::RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                let msg = e.to_string().replace('\n', " ");
                ConfigError::new(&ppath, format!("invalid regex: {msg}"))
            })?;
        if re.is_match("") {
            return Err(ConfigError::new(
                &ppath,
                "pattern matches the empty string (it would match everywhere)",
            ));
        }
        // The pattern runs on the original text and on its normalised form.
        for profile in [Profile::Original, Profile::Norm] {
            let d = Detector::new(name, profile, p, max_len)
                .map_err(|e| ConfigError::new(&ppath, format!("invalid regex: {e}")))?;
            out.push(Arc::new(d));
        }
    }
    Ok(out)
}

/// Validates the `guardrails:` list; every bad guardrail is reported.
pub fn compile(raw: Vec<RawGuardrail>) -> Result<Guardrails, ConfigErrors> {
    let mut errors = ErrorCollector::new();
    let guardrails = compile_valid(raw, &mut errors);
    errors.finish(guardrails)
}

/// The guardrails of `raw` that are valid; the errors of the others go to `errors`.
pub fn compile_valid(raw: Vec<RawGuardrail>, errors: &mut ErrorCollector) -> Guardrails {
    let mut names = HashSet::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let path = format!("guardrails[{i}]");
        if let Some(rule) = errors.take(compile_one(&path, g, &mut names)) {
            rules.push(Arc::new(rule));
        }
    }
    Guardrails { rules }
}

/// `guardrails[i]`.
fn compile_one(
    path: &str,
    g: RawGuardrail,
    names: &mut HashSet<String>,
) -> Result<Rule, ConfigError> {
    check_name(path, &g.name, names)?;
    let webhook = super::webhook::parse(path, &g)?;
    let action = match webhook {
        // Verdicts decide; `action` was checked by the webhook's own parse.
        Some(_) => Action::Block,
        None => parse_action(&format!("{path}.action"), &g.action)?,
    };
    let (input, output) = parse_apply_to(path, g.apply_to.as_deref())?;
    let dets = detectors_of(path, &g)?;
    let fields = parse_fields(path, g.fields.as_deref(), input)?;
    let hidden = parse_hidden(path, &g)?;
    let name: Arc<str> = g.name.as_str().into();
    let engine = engine_for(&name, action, &dets).map_err(|e| ConfigError::new(path, e))?;
    Ok(Rule {
        name,
        action,
        input,
        output,
        detectors: dets,
        engine: Arc::new(engine),
        fields,
        hidden,
        webhook,
    })
}

/// Checks a guardrail's name: well-formed, and not taken by an earlier one (`names`).
fn check_name(path: &str, name: &str, names: &mut HashSet<String>) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ConfigError::new(
            format!("{path}.name"),
            "must be non-empty and use only ASCII letters, digits, '_', '-' and '.'",
        ));
    }
    if !names.insert(name.to_string()) {
        return Err(ConfigError::new(
            format!("{path}.name"),
            format!("duplicate guardrail name {name:?}"),
        ));
    }
    Ok(())
}

/// `apply_to` → whether the guardrail applies to (input, output); both when absent.
fn parse_apply_to(path: &str, apply_to: Option<&[String]>) -> Result<(bool, bool), ConfigError> {
    let (mut input, mut output) = (false, false);
    match apply_to {
        None => (input, output) = (true, true),
        Some([]) => {
            return Err(ConfigError::new(
                format!("{path}.apply_to"),
                "must name input and/or output",
            ))
        }
        Some(list) => {
            for (j, a) in list.iter().enumerate() {
                match a.as_str() {
                    "input" => input = true,
                    "output" => output = true,
                    _ => {
                        return Err(ConfigError::new(
                            format!("{path}.apply_to[{j}]"),
                            format!("unknown value {a:?} (one of: input, output)"),
                        ))
                    }
                }
            }
        }
    }
    Ok((input, output))
}

/// The detectors of a guardrail's `type`: built in, or its own `patterns` for `regex` (the
/// only type that takes `patterns` and `max_match_len`).
fn detectors_of(path: &str, g: &RawGuardrail) -> Result<Vec<Arc<Detector>>, ConfigError> {
    let builtin = |d: Vec<Detector>| d.into_iter().map(Arc::new).collect::<Vec<_>>();
    let dets = match g.kind.as_str() {
        "secrets" => builtin(detectors::secrets()),
        "pii" => builtin(detectors::pii(phone_regions(path, g)?)),
        "prompt_injection" => builtin(detectors::injection()),
        "regex" => user_detectors(path, &g.name, g)?,
        "webhook" => Vec::new(),
        other => {
            return Err(ConfigError::new(
                format!("{path}.type"),
                format!(
                    "unknown type {other:?} (one of: secrets, pii, prompt_injection, regex, \
                     webhook)"
                ),
            ))
        }
    };
    if g.kind != "pii" && g.phone_regions.is_some() {
        return Err(ConfigError::new(
            format!("{path}.phone_regions"),
            "only pii guardrails take phone_regions",
        ));
    }
    if g.kind != "regex" {
        for (key, set) in [
            ("patterns", g.patterns.is_some()),
            ("max_match_len", g.max_match_len.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(
                    format!("{path}.{key}"),
                    format!("only regex guardrails take {key}"),
                ));
            }
        }
    }
    Ok(dets)
}

/// `phone_regions` of a `pii` guardrail, parsed; the default list when absent.
fn phone_regions(
    path: &str,
    g: &RawGuardrail,
) -> Result<Vec<phonenumber::country::Id>, ConfigError> {
    match &g.phone_regions {
        None => Ok(super::phone::default_regions()),
        Some(list) => super::phone::parse_regions(list)
            .map_err(|(j, m)| ConfigError::new(format!("{path}.phone_regions[{j}]"), m)),
    }
}

/// `fields` → the parsed paths; only for a guardrail that applies to input (`input`).
fn parse_fields(
    path: &str,
    fields: Option<&[String]>,
    input: bool,
) -> Result<Option<Vec<JsonPath>>, ConfigError> {
    let Some(list) = fields else {
        return Ok(None);
    };
    if !input {
        return Err(ConfigError::new(
            format!("{path}.fields"),
            "fields select what is inspected on input, but this guardrail does not apply to input",
        ));
    }
    if list.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.fields"),
            "must not be empty (omit it to inspect all text)",
        ));
    }
    let mut paths = Vec::with_capacity(list.len());
    for (j, f) in list.iter().enumerate() {
        let jp =
            JsonPath::parse(f).map_err(|m| ConfigError::new(format!("{path}.fields[{j}]"), m))?;
        paths.push(jp);
    }
    Ok(Some(paths))
}

pub(crate) fn engine_for(
    name: &Arc<str>,
    action: Action,
    dets: &[Arc<Detector>],
) -> Result<Engine, String> {
    Engine::new(
        dets.iter()
            .map(|d| Entry {
                det: d.clone(),
                guardrail: name.clone(),
                action,
            })
            .collect(),
    )
}

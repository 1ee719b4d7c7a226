//! The `headers` of webhook guardrails: each value is a reference (`${ENV}`, `file:PATH`),
//! a literal prefix then a `${ENV}` reference (`Bearer ${CLASSIFIER_TOKEN}`), or a literal.
//! Resolved here, like every other secret of the config, and kept as secrets: never logged.
//! A literal value of a credential header (`authorization`, or a name with `key`, `token`
//! or `secret` in it) is refused like any inline secret, unless `allow_inline_secrets`.

use super::secrets::Ctx;
use crate::core::secret::Secret;
use crate::core::{ConfigError, ErrorCollector};
use crate::guardrails::RawGuardrail;

/// Fills in each guardrail's `resolved_headers`; a bad reference is an error at
/// `guardrails[i].headers.<name>`.
pub(super) fn resolve(ctx: &Ctx, raw: &mut [RawGuardrail], errors: &mut ErrorCollector) {
    for (i, g) in raw.iter_mut().enumerate() {
        let Some(headers) = &g.headers else {
            continue;
        };
        let mut resolved = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let path = format!("guardrails[{i}].headers.{name}");
            if let Some(v) = errors.take(header(ctx, &path, name, value)) {
                resolved.push((name.clone(), v));
            }
        }
        g.resolved_headers = resolved;
    }
}

fn header(ctx: &Ctx, path: &str, name: &str, value: &str) -> Result<Secret, ConfigError> {
    let (prefix, reference) = match value.find("${") {
        Some(p) if p > 0 => value.split_at(p),
        _ => ("", value),
    };
    match ctx.reference(path, reference)? {
        Some(s) if s.is_placeholder() => Ok(s),
        Some(s) => Ok(Secret::new(format!("{prefix}{}", s.expose()))),
        None if credential(name) && !ctx.allow_inline => Err(ConfigError::new(
            path,
            "inline secrets are refused: use ${ENV_VAR}, \"Bearer ${ENV_VAR}\" or file:/path \
             (allow_inline_secrets: true permits them, for tests only)",
        )),
        None => Ok(Secret::new(value)),
    }
}

/// Whether a header carries a credential.
fn credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("authorization") || ["key", "token", "secret"].iter().any(|w| n.contains(w))
}

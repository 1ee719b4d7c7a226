//! Secrets and environment references in the config file: `${ENV_VAR}`, `file:PATH`, and the
//! quoting that lets `${...}` stand unquoted in YAML flow mappings.

use super::ConfigError;
use crate::core::secret::Secret;

/// Wraps unquoted scalars that contain `${...}` in double quotes.
///
/// In a YAML flow mapping such as `{ kind: openai, api_key: ${OPENAI_API_KEY} }` the braces of
/// `${...}` would otherwise open a nested mapping and the file would not parse; the config
/// shape is documented with exactly that style, so it is accepted as written. Quoted scalars
/// and comments are left alone; the result differs from the input only by the added quotes.
pub(super) fn quote_env_refs(text: &str) -> std::borrow::Cow<'_, str> {
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
                i = comment_end(b, i);
                continue;
            }
            q @ (b'"' | b'\'')
                if i == 0 || b[i - 1].is_ascii_whitespace() || b",[{:".contains(&b[i - 1]) =>
            {
                i = quoted_end(b, i, q);
                continue;
            }
            b'{' | b'[' => flow_depth += 1,
            b'}' | b']' => flow_depth = flow_depth.saturating_sub(1),
            b'$' if b.get(i + 1) == Some(&b'{') => {
                let (start, end) = scalar_around(text, i, last, flow_depth > 0);
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

/// Where the comment starting at `i` ends: at its newline, or at the end of the text.
fn comment_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Just past the closing `q` of the quoted scalar that opens at `i` (past the end of the text
/// when it is not closed).
fn quoted_end(b: &[u8], mut i: usize, q: u8) -> usize {
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
    i + 1
}

/// The bounds of the unquoted scalar around the `${` at `at`: back to the previous boundary
/// (whitespace, or inside a flow collection also `,` and brackets) but not before `floor`,
/// and forward past every `${...}` to the next boundary.
fn scalar_around(text: &str, at: usize, floor: usize, in_flow: bool) -> (usize, usize) {
    let b = text.as_bytes();
    let is_boundary = |c: u8| {
        c.is_ascii_whitespace() || (in_flow && matches!(c, b',' | b'{' | b'[' | b'}' | b']'))
    };
    let mut start = at;
    while start > floor && !is_boundary(b[start - 1]) {
        start -= 1;
    }
    let mut end = at;
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
    (start, end)
}

pub(super) struct Ctx {
    pub(super) allow_inline: bool,
    /// Whether `${ENV}` and `file:` references are read; when not, they are checked for
    /// syntax only and stand as [`Secret::placeholder`]s.
    pub(super) resolve: bool,
}

impl Ctx {
    /// Resolves `${ENV}` or `file:PATH`; refuses literals unless inline secrets are allowed.
    pub(super) fn secret(&self, path: &str, raw: &str) -> Result<Secret, ConfigError> {
        match self.reference(path, raw)? {
            Some(v) => Ok(v),
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

    /// `${VAR}` → the variable's value; `file:PATH` → the file's content (trailing newline
    /// stripped); anything else → `None`. Without resolving, a reference is checked for
    /// syntax and yields a placeholder. Errors name the key and the variable or file, never
    /// the value.
    pub(super) fn reference(&self, path: &str, raw: &str) -> Result<Option<Secret>, ConfigError> {
        if let Some(var) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            check_var_name(path, var)?;
            if !self.resolve {
                return Ok(Some(Secret::placeholder()));
            }
            return env_var(path, var).map(|v| Some(Secret::new(v)));
        }
        let Some(file) = raw.strip_prefix("file:") else {
            return Ok(None);
        };
        if file.trim().is_empty() {
            return Err(ConfigError::new(path, "file: needs a path"));
        }
        let file = expand_env(path, file, self.resolve)?;
        if !self.resolve {
            return Ok(Some(Secret::placeholder()));
        }
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
        Ok(Some(Secret::new(value)))
    }
}

/// Refuses a variable name other than ASCII letters, digits and `_`.
fn check_var_name(path: &str, var: &str) -> Result<(), ConfigError> {
    if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::new(
            path,
            format!("invalid environment variable name {var:?}"),
        ));
    }
    Ok(())
}

fn env_var(path: &str, var: &str) -> Result<String, ConfigError> {
    check_var_name(path, var)?;
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

/// Expands `${VAR}` occurrences inside a non-secret string such as a file path; without
/// `resolve`, only checks their names.
fn expand_env(path: &str, s: &str, resolve: bool) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::new(path, "unterminated ${ in value"))?;
        let var = &after[..end];
        if resolve {
            out.push_str(&env_var(path, var)?);
        } else {
            check_var_name(path, var)?;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

//! `admin:`: the admin listener's address, its tokens and their roles, and the networks it
//! answers.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::raw::{RawAdmin, RawAdminToken};
use super::secrets::Ctx;
use super::server::parse_listen;
use super::{Admin, AdminToken, Cidr, ConfigError, Role};

/// The shortest admin token accepted, in characters.
const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The fewest distinct characters an admin token must have.
const MIN_ADMIN_TOKEN_DISTINCT: usize = 8;
/// The longest token name, in characters.
const MAX_NAME_LEN: usize = 64;
/// The name `admin.token` goes by.
const LEGACY_NAME: &str = "admin";

/// `admin:`: its own listener (loopback unless a token guards it), apart from `listen`
/// (`None` when `listen` is invalid: not compared). A token not read is not judged.
pub(super) fn admin(
    ctx: &Ctx,
    raw: Option<RawAdmin>,
    client_listen: Option<SocketAddr>,
) -> Result<Admin, ConfigError> {
    let raw = raw.unwrap_or_default();
    let listen = match raw.listen {
        Some(s) => parse_listen("admin.listen", &s)?,
        None => "127.0.0.1:9091".parse().expect("static address"),
    };
    let mut tokens = Vec::new();
    if let Some(t) = raw.token {
        let token = ctx.secret("admin.token", &t)?;
        if !token.is_placeholder() {
            check_admin_token("admin.token", token.expose())?;
        }
        tokens.push(AdminToken {
            name: LEGACY_NAME.into(),
            token,
            role: Role::Admin,
            allow: None,
        });
    }
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let token = admin_token(ctx, &format!("admin.tokens[{i}]"), t, &tokens)?;
        tokens.push(token);
    }
    let allow = raw
        .allow
        .map(|nets| networks("admin.allow", &nets))
        .transpose()?;
    if !listen.ip().is_loopback() && tokens.is_empty() {
        return Err(ConfigError::new(
            "admin.listen",
            "a non-loopback admin listener requires admin.token or admin.tokens",
        ));
    }
    if Some(listen) == client_listen {
        return Err(ConfigError::new(
            "admin.listen",
            "must differ from listen: admin and client traffic use separate listeners",
        ));
    }
    Ok(Admin {
        listen,
        tokens,
        allow,
    })
}

/// One entry of `admin.tokens` at `path`, unlike every one before it in name and token.
fn admin_token(
    ctx: &Ctx,
    path: &str,
    raw: RawAdminToken,
    before: &[AdminToken],
) -> Result<AdminToken, ConfigError> {
    let name_ok = raw
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if raw.name.is_empty() || raw.name.len() > MAX_NAME_LEN || !name_ok {
        return Err(ConfigError::new(
            format!("{path}.name"),
            format!(
                "invalid name {:?}: 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`",
                raw.name
            ),
        ));
    }
    if before.iter().any(|t| t.name == raw.name) {
        let why = if raw.name == LEGACY_NAME {
            " (admin.token is named admin)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            format!("{path}.name"),
            format!("duplicate name {:?}{why}", raw.name),
        ));
    }
    let role = Role::ALL
        .into_iter()
        .find(|r| r.as_str() == raw.role)
        .ok_or_else(|| {
            ConfigError::new(
                format!("{path}.role"),
                format!("unknown role {:?} (viewer, operator or admin)", raw.role),
            )
        })?;
    let token_path = format!("{path}.token");
    let token = ctx.secret(&token_path, &raw.token)?;
    // A placeholder (a reference not read) is judged only when read.
    if !token.is_placeholder() {
        check_admin_token(&token_path, token.expose())?;
    }
    let same_token =
        |t: &&AdminToken| !token.is_placeholder() && t.token.expose() == token.expose();
    if let Some(same) = before.iter().find(same_token) {
        return Err(ConfigError::new(
            token_path,
            format!(
                "is the same token as {:?}'s: each holder needs a token of its own",
                same.name
            ),
        ));
    }
    let allow = raw
        .allow
        .map(|nets| networks(&format!("{path}.allow"), &nets))
        .transpose()?;
    Ok(AdminToken {
        name: raw.name,
        token,
        role,
        allow,
    })
}

/// A list of networks at `path` (`admin.allow`, `admin.tokens[0].allow`); not empty.
fn networks(path: &str, nets: &[String]) -> Result<Vec<Cidr>, ConfigError> {
    if nets.is_empty() {
        return Err(ConfigError::new(
            path,
            "is empty, which would refuse every client: leave it out to allow every network",
        ));
    }
    nets.iter()
        .enumerate()
        .map(|(i, n)| {
            n.parse()
                .map_err(|e| ConfigError::new(format!("{path}[{i}]"), e))
        })
        .collect()
}

/// Refuses an admin token at `path` that could be guessed: too short, or made of few
/// characters (`aaaaaaaaaaaaaaaa`, `1212121212121212`). The message never quotes the token.
fn check_admin_token(path: &str, token: &str) -> Result<(), ConfigError> {
    let len = token.chars().count();
    let distinct = token.chars().collect::<HashSet<char>>().len();
    if len < MIN_ADMIN_TOKEN_LEN || distinct < MIN_ADMIN_TOKEN_DISTINCT {
        return Err(ConfigError::new(
            path,
            format!(
                "is too weak: it must be at least {MIN_ADMIN_TOKEN_LEN} characters long with at \
                 least {MIN_ADMIN_TOKEN_DISTINCT} different characters (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Config};
    use super::*;

    const A: &str = "viewer-token-0123456789";
    const B: &str = "operator-token-0123456789";
    const C: &str = "root-token-0123456789";

    fn with_admin(admin: &str) -> Result<Config, ConfigError> {
        parse(&format!(
            "listen: 127.0.0.1:8080\nallow_inline_secrets: true\nkeys:\n  - {{ name: t, key: gw-test-key-a }}\n\
             providers:\n  local: {{ kind: ollama }}\nmodels:\n  m:\n    - {{ provider: local, model: x }}\n\
             admin:\n{admin}"
        ))
        .map_err(|e| e.first().clone())
    }

    fn refused(admin: &str) -> ConfigError {
        with_admin(admin).expect_err("admin section should be refused")
    }

    #[test]
    fn tokens_with_roles_names_and_networks() {
        let c = with_admin(&format!(
            "  listen: 0.0.0.0:9091\n  token: {C}\n  tokens:\n\
             \x20   - {{ name: grafana, token: {A}, role: viewer, allow: [10.1.2.0/24] }}\n\
             \x20   - {{ name: platform-team, token: {B}, role: operator }}\n\
             \x20 allow: [127.0.0.0/8, '::1/128', 10.0.0.0/8]\n"
        ))
        .unwrap();
        let t: Vec<_> = c
            .admin
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.role, t.token.expose()))
            .collect();
        assert_eq!(
            t,
            [
                ("admin", Role::Admin, C),
                ("grafana", Role::Viewer, A),
                ("platform-team", Role::Operator, B)
            ]
        );
        let own = c.admin.tokens[1].allow.as_ref().unwrap();
        assert_eq!(own.len(), 1);
        assert!(own[0].contains("10.1.2.9".parse().unwrap()));
        assert!(c.admin.tokens[2].allow.is_none());
        assert_eq!(c.admin.allow.as_ref().unwrap().len(), 3);
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);

        let c = with_admin("  listen: 127.0.0.1:9091\n").unwrap();
        assert!(c.admin.tokens.is_empty() && c.admin.allow.is_none());
    }

    #[test]
    fn mistakes_are_refused_at_their_key_path() {
        let entry = |name: &str, token: &str, role: &str| {
            format!("    - {{ name: {name}, token: {token}, role: {role} }}\n")
        };
        let cases = [
            (
                format!("  tokens:\n{}{}{}", entry("a", A, "viewer"), entry("b", B, "viewer"), entry("c", C, "root")),
                "admin.tokens[2].role",
                "unknown role \"root\" (viewer, operator or admin)",
            ),
            (
                format!("  tokens:\n{}{}", entry("a", A, "viewer"), entry("a", B, "admin")),
                "admin.tokens[1].name",
                "duplicate name \"a\"",
            ),
            (
                format!("  token: {C}\n  tokens:\n{}", entry("admin", A, "viewer")),
                "admin.tokens[0].name",
                "duplicate name \"admin\" (admin.token is named admin)",
            ),
            (
                format!("  tokens:\n{}{}", entry("a", A, "viewer"), entry("b", A, "admin")),
                "admin.tokens[1].token",
                "is the same token as \"a\"'s",
            ),
            (
                format!("  token: {A}\n  tokens:\n{}", entry("b", A, "viewer")),
                "admin.tokens[0].token",
                "is the same token as \"admin\"'s",
            ),
            (
                format!("  tokens:\n{}", entry("a", "aaaaaaaaaaaaaaaaaaaa", "viewer")),
                "admin.tokens[0].token",
                "is too weak",
            ),
            (
                format!("  tokens:\n{}", entry("'a b'", A, "viewer")),
                "admin.tokens[0].name",
                "invalid name \"a b\"",
            ),
            (
                format!("  tokens:\n    - {{ name: a, token: {A}, role: viewer, allow: [10.0.0.0/8, 10.0.0.1/8] }}\n"),
                "admin.tokens[0].allow[1]",
                "did you mean 10.0.0.0/8?",
            ),
            (
                format!("  token: {A}\n  allow: [127.0.0.0/8, nowhere]\n"),
                "admin.allow[1]",
                "invalid network \"nowhere\"",
            ),
            (format!("  token: {A}\n  allow: []\n"), "admin.allow", "is empty"),
            ("  token: short\n".to_string(), "admin.token", "is too weak"),
            (
                "  listen: 0.0.0.0:9091\n".to_string(),
                "admin.listen",
                "requires admin.token or admin.tokens",
            ),
            (
                format!("  tokens:\n    - {{ name: a, token: {A} }}\n"),
                "admin.tokens[0]",
                "missing field `role`",
            ),
        ];
        for (admin, path, message) in cases {
            let e = refused(&admin);
            assert_eq!(e.path, path, "{admin}: {e}");
            assert!(e.message.contains(message), "{admin}: {e}");
            for secret in [A, B, C] {
                assert!(!e.message.contains(secret), "{e}");
            }
        }
    }
}

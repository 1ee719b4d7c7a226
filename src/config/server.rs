//! The listeners and the process: `listen`, `tls`, `admin` and `server`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawAdmin, RawServer, RawTls};
use super::secrets::Ctx;
use super::{Admin, ConfigError, ServerSettings, TlsFiles};

/// The shortest admin token accepted, in characters.
const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The fewest distinct characters an admin token must have.
const MIN_ADMIN_TOKEN_DISTINCT: usize = 8;

/// Client connections open at once unless `server.max_connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

/// An `IP:PORT` at `path` (`listen`, `admin.listen`).
pub(super) fn parse_listen(path: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::new(
            path,
            format!("invalid address {s:?}: expected IP:PORT, e.g. 127.0.0.1:8080"),
        )
    })
}

/// `tls:`: the certificate and key files must exist.
pub(super) fn tls(raw: Option<RawTls>) -> Result<Option<TlsFiles>, ConfigError> {
    let tls = raw.map(|t| TlsFiles {
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
    Ok(tls)
}

/// `admin:`: its own listener (loopback unless a token guards it), apart from `listen`.
pub(super) fn admin(
    ctx: &Ctx,
    raw: Option<RawAdmin>,
    client_listen: SocketAddr,
) -> Result<Admin, ConfigError> {
    let raw = raw.unwrap_or(RawAdmin {
        listen: None,
        token: None,
    });
    let listen = match raw.listen {
        Some(s) => parse_listen("admin.listen", &s)?,
        None => "127.0.0.1:9091".parse().expect("static address"),
    };
    let token = raw
        .token
        .map(|t| ctx.secret("admin.token", &t))
        .transpose()?;
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(ConfigError::new(
            "admin.listen",
            "a non-loopback admin listener requires admin.token",
        ));
    }
    if let Some(t) = &token {
        check_admin_token(t.expose())?;
    }
    if listen == client_listen {
        return Err(ConfigError::new(
            "admin.listen",
            "must differ from listen: admin and client traffic use separate listeners",
        ));
    }
    Ok(Admin { listen, token })
}

/// Refuses an admin token that could be guessed: too short, or made of few characters
/// (`aaaaaaaaaaaaaaaa`, `1212121212121212`). The message never quotes the token.
fn check_admin_token(token: &str) -> Result<(), ConfigError> {
    let len = token.chars().count();
    let distinct = token.chars().collect::<HashSet<char>>().len();
    if len < MIN_ADMIN_TOKEN_LEN || distinct < MIN_ADMIN_TOKEN_DISTINCT {
        return Err(ConfigError::new(
            "admin.token",
            format!(
                "is too weak: it must be at least {MIN_ADMIN_TOKEN_LEN} characters long with at \
                 least {MIN_ADMIN_TOKEN_DISTINCT} different characters (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(())
}

/// `server:`: threads, the files of the upgrade handover, shutdown and connection bounds.
pub(super) fn settings(s: RawServer) -> Result<ServerSettings, ConfigError> {
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
        max_connections: s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
    };
    if server.max_connections == 0 {
        return Err(ConfigError::new(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    Ok(server)
}

//! The listeners and the process: `listen`, `tls` and `server` (`admin` has its own module).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawServer, RawTls};
use super::{ConfigError, ServerSettings, TlsFiles};

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

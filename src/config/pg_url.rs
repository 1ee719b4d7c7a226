//! `usage.url`: a `postgres://` URL, parsed into the connection settings and the TLS mode the
//! ledger's PostgreSQL store connects with. The URL may carry a password: no error here quotes
//! it.
//!
//! Besides what the PostgreSQL client takes (`user`, `password`, `host`, `port`, `dbname`,
//! `connect_timeout`, `options`, `application_name`, …), two TLS settings are read here, as
//! libpq reads them: `sslmode` (`disable`, `prefer` — the default —, `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert` (a PEM file of CA certificates, or `system` for the
//! system's roots).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;

/// How the connection is protected (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, its certificate not verified.
    Prefer,
    /// TLS always, its certificate not verified.
    Require,
    /// TLS, the certificate verified against the roots, not the host name.
    VerifyCa,
    /// TLS, the certificate verified against the roots and the host name.
    VerifyFull,
}

/// What a `postgres://` URL says.
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
    /// `sslrootcert`: the CA certificates to verify against (`None`: the system's roots).
    pub root_cert: Option<PathBuf>,
}

/// Connecting gives up after this long unless the URL sets `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses a `postgres://` or `postgresql://` URL. Errors never quote the URL.
pub fn postgres_target(url: &str) -> Result<PgTarget, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql:// (its value is not shown)".into());
    }
    // The query starts at the first `?` after the credentials (a password may hold one only
    // percent-encoded, but stay on the safe side).
    let after_at = url.rfind('@').map_or(0, |i| i + 1);
    let (base, query) = match url[after_at..].find('?') {
        Some(i) => url.split_at(after_at + i),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let (mut mode, mut root_cert) = (None, None);
    for pair in query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        match k {
            "sslmode" => mode = Some(ssl_mode(&v)?),
            "sslrootcert" if v == "system" => root_cert = None,
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rebuilt)
        .map_err(|_| "is not a valid PostgreSQL URL (its value is not shown)".to_string())?;
    if config.get_hosts().is_empty() {
        return Err("names no host (its value is not shown)".into());
    }
    // libpq: `require` with a root certificate verifies like `verify-ca`.
    let tls = match mode.unwrap_or(PgTls::Prefer) {
        PgTls::Require if root_cert.is_some() => PgTls::VerifyCa,
        m => m,
    };
    config.ssl_mode(match tls {
        PgTls::Disable => SslMode::Disable,
        PgTls::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("sluice");
    }
    if let Some(path) = root_cert.as_ref().filter(|_| tls != PgTls::Disable) {
        std::fs::metadata(path)
            .map_err(|e| format!("sslrootcert {}: {}", path.display(), e.kind()))?;
    }
    Ok(PgTarget {
        config,
        tls,
        root_cert,
    })
}

fn ssl_mode(v: &str) -> Result<PgTls, String> {
    Ok(match v {
        "disable" => PgTls::Disable,
        "prefer" => PgTls::Prefer,
        "require" => PgTls::Require,
        "verify-ca" => PgTls::VerifyCa,
        "verify-full" => PgTls::VerifyFull,
        other => {
            return Err(format!(
                "unknown sslmode {other:?} (disable, prefer, require, verify-ca or verify-full)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tls_settings_and_defaults() {
        let t = postgres_target("postgres://u:p%3Fw@db.example:6432/ledger?sslmode=verify-full")
            .unwrap();
        assert_eq!(t.tls, PgTls::VerifyFull);
        assert_eq!(t.root_cert, None);
        assert_eq!(t.config.get_password(), Some(&b"p?w"[..]));
        assert_eq!(t.config.get_ports(), [6432]);
        assert_eq!(t.config.get_dbname(), Some("ledger"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        assert_eq!(t.config.get_application_name(), Some("sluice"));

        let t = postgresql_plain("postgresql://u@h/d?connect_timeout=2&application_name=x");
        assert_eq!(t.tls, PgTls::Prefer);
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        assert_eq!(t.config.get_application_name(), Some("x"));

        // `require` with a root certificate verifies the chain (as libpq does).
        let ca = tempfile::NamedTempFile::new().unwrap();
        let url = format!(
            "postgres://u@h/d?sslmode=require&sslrootcert={}",
            ca.path().display()
        );
        let t = postgres_target(&url).unwrap();
        assert_eq!(t.tls, PgTls::VerifyCa);
        assert_eq!(t.root_cert.as_deref(), Some(ca.path()));
    }

    fn postgresql_plain(url: &str) -> PgTarget {
        postgres_target(url).unwrap()
    }

    #[test]
    fn errors_never_quote_the_url() {
        for url in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@h:notaport/d",
            "postgres://u:hunter2@h/d?bogus_option=1",
            "postgres://u:hunter2@/d",
            "postgres://u:hunter2@h/d?sslmode=sometimes",
            "postgres://u:hunter2@h/d?sslmode=require&sslrootcert=/nonexistent/ca.pem",
        ] {
            let e = postgres_target(url)
                .err()
                .unwrap_or_else(|| panic!("{url} parsed"));
            assert!(!e.contains("hunter2") && !e.contains("u:"), "{e}");
        }
    }
}

//! A small HTTP/1.1 client for webhook guardrails: one POST per connection
//! (`Connection: close`), over TCP or TLS (rustls, the system's roots), with a bounded
//! response. The caller puts the whole exchange under its timeout.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::core::secret::Secret;

/// Where a webhook is: parsed from its `url`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Parses `http://host[:port]/path` or `https://…`. No user info (credentials belong in
    /// `headers`, where they are kept secret), no fragment.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("must not carry credentials; put them in headers".into());
        }
        if path.contains('#') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the path must not contain a fragment, spaces or control characters".into(),
            );
        }
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
        Ok(Target {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }
}

/// `host[:port]`, `[v6]:port` → (host, port).
fn split_host_port(authority: &str, default: u16) -> Result<(String, u16), String> {
    let bad = || format!("invalid host and port {authority:?}");
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, tail) = r.split_once(']').ok_or_else(bad)?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tail.is_empty() => default,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
    {
        return Err(bad());
    }
    Ok((host, port))
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// POSTs `body` (JSON) and returns the status and the response body, which may be at most
/// `max` bytes. Errors say what failed, never a header value.
pub(crate) async fn post(
    t: &Target,
    headers: &[(String, Secret)],
    body: &[u8],
    max: usize,
) -> Result<(u16, Vec<u8>), String> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let head = request_head(t, headers, body.len());
    if !t.tls {
        return exchange(tcp, &head, body, max).await;
    }
    let name = ServerName::try_from(t.host.trim_matches(['[', ']']).to_string())
        .map_err(|_| "invalid TLS server name".to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    exchange(tls, &head, body, max).await
}

fn request_head(t: &Target, headers: &[(String, Secret)], len: usize) -> Vec<u8> {
    let host = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.clone()
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {host}:{}\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\nconnection: close\r\nuser-agent: sluice\r\n",
        t.path, t.port
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v.expose());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
    max: usize,
) -> Result<(u16, Vec<u8>), String> {
    let io = |e: std::io::Error| format!("I/O: {}", e.kind());
    s.write_all(head).await.map_err(io)?;
    s.write_all(body).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    // Headers are bounded too: 16 KiB on top of the body's bound.
    let limit = max + (16 << 10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(format!("response larger than {max} bytes"));
        }
        if let Some(done) = complete(&buf)? {
            return Ok(done);
        }
    }
    match complete(&buf)? {
        Some(done) => Ok(done),
        None => body_at_close(&buf)
            .ok_or_else(|| "the connection closed before the response was complete".into()),
    }
}

/// The response in `buf` when it is complete: its status and body.
fn complete(buf: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("malformed status line")?;
    let (mut length, mut chunked) = (None, false);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = Some(v.parse::<usize>().map_err(|_| "bad content-length")?);
        } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let rest = &buf[end + 4..];
    if chunked {
        return Ok(dechunk(rest).map(|b| (status, b)));
    }
    match length {
        Some(n) if rest.len() >= n => Ok(Some((status, rest[..n].to_vec()))),
        Some(_) => Ok(None),
        // Without a length the body ends with the connection.
        None => Ok(None),
    }
}

/// A complete chunked body, decoded; `None` while incomplete.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A response without length or chunking, read to the end of the connection.
fn body_at_close(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&buf[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, buf[end + 4..].to_vec()))
}

//! A small HTTP/1.1 client for sluice's own calls out (webhook guardrails, trace export):
//! one POST per connection (`connection: close`), over TCP or TLS (rustls, the system's
//! roots, loaded once), with a bounded answer (content-length, chunked, or to the close).
//! The caller puts the whole exchange under its timeout.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::secret::Secret;

/// Verifies servers against the system's roots, loaded once for every call out.
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

/// Where a POST goes.
pub struct Dest<'a> {
    pub tls: bool,
    /// Host name or IP literal, without brackets: what is connected to, and the TLS name.
    pub host: &'a str,
    pub port: u16,
    /// The `host` header's value.
    pub authority: &'a str,
    pub path: &'a str,
}

/// POSTs `body` (of `content_type`, with `headers`) and returns the status and the
/// response body, which may be at most `max` bytes. Errors say what failed, never a header
/// value.
pub async fn post<N: AsRef<str>>(
    to: &Dest<'_>,
    content_type: &str,
    headers: &[(N, Secret)],
    body: &[u8],
    max: usize,
) -> Result<(u16, Vec<u8>), String> {
    let tcp = TcpStream::connect((to.host, to.port))
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let head = request_head(to, content_type, headers, body.len());
    if !to.tls {
        return exchange(tcp, &head, body, max).await;
    }
    let name = ServerName::try_from(to.host.to_string())
        .map_err(|_| "invalid TLS server name".to_string())?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    exchange(tls, &head, body, max).await
}

fn request_head<N: AsRef<str>>(
    to: &Dest<'_>,
    content_type: &str,
    headers: &[(N, Secret)],
    len: usize,
) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: {content_type}\r\n\
         content-length: {len}\r\nconnection: close\r\nuser-agent: sluice/{}\r\n",
        to.path,
        to.authority,
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(k.as_ref());
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
            return within(done, max);
        }
    }
    match complete(&buf)? {
        Some(done) => within(done, max),
        None => body_at_close(&buf)
            .ok_or_else(|| "the connection closed before the response was complete".into())
            .and_then(|done| within(done, max)),
    }
}

/// The answer, if its body is at most `max` bytes.
fn within(answer: (u16, Vec<u8>), max: usize) -> Result<(u16, Vec<u8>), String> {
    if answer.1.len() > max {
        return Err(format!("response larger than {max} bytes"));
    }
    Ok(answer)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_end_by_length_by_chunks_or_at_the_close() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(complete(whole).unwrap(), Some((200, b"hello".to_vec())));
        assert_eq!(complete(&whole[..whole.len() - 1]).unwrap(), None);
        let chunked = b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(complete(chunked).unwrap(), Some((202, b"abcde".to_vec())));
        for cut in 1..chunked.len() - 4 {
            assert_eq!(complete(&chunked[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(complete(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(complete(b"garbage\r\n\r\n").is_err());
        let closed = b"HTTP/1.0 200 OK\r\n\r\nto the end";
        assert_eq!(complete(closed).unwrap(), None);
        assert_eq!(body_at_close(closed), Some((200, b"to the end".to_vec())));
    }

    #[tokio::test]
    async fn a_post_carries_its_headers_and_reads_a_bounded_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            let long = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{}",
                "x".repeat(11)
            );
            for answer in ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", &long] {
                let (mut sock, _) = listener.accept().await.unwrap();
                // Head and body may come in separate reads: up to the body's end.
                let mut request = Vec::new();
                while !(request.ends_with(b"body") || request.ends_with(b"{}")) {
                    let mut chunk = [0u8; 4096];
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the request was cut short");
                    request.extend_from_slice(&chunk[..n]);
                }
                seen.push(String::from_utf8_lossy(&request).into_owned());
                sock.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        let to = Dest {
            tls: false,
            host: "127.0.0.1",
            port,
            authority: "collector.test:4318",
            path: "/v1/traces",
        };
        let headers = [("x-api-key", Secret::new("fake-key-1"))];
        let got = post(&to, "application/x-protobuf", &headers, b"body", 10).await;
        assert_eq!(got.unwrap(), (200, b"ok".to_vec()));
        let too_big = post(&to, "application/json", &headers, b"{}", 10).await;
        assert_eq!(too_big.unwrap_err(), "response larger than 10 bytes");
        let seen = server.await.unwrap();
        let first = &seen[0];
        assert!(first.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{first}");
        for line in [
            "host: collector.test:4318\r\n",
            "content-type: application/x-protobuf\r\n",
            "content-length: 4\r\n",
            "connection: close\r\n",
            "x-api-key: fake-key-1\r\n",
        ] {
            assert!(first.contains(line), "{line:?} in {first}");
        }
        assert!(first.ends_with("\r\n\r\nbody"), "{first}");
    }
}

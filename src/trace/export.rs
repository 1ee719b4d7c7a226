//! The exporter: a background service that takes what the queue holds every
//! [`LINGER`], encodes it in batches of at most [`BATCH`] spans and POSTs each to
//! `<otlp_endpoint>/v1/traces` (HTTP/1.1, protobuf; https through rustls). One connection
//! per export, bounded by `tracing.timeout`. A failed export is dropped and counted (no
//! retry: the queue behind it keeps moving), and logged at most once per [`LOG_EVERY`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{proto, Span, Tracer};

/// How long the exporter waits between rounds.
const LINGER: Duration = Duration::from_millis(200);
/// Spans in one export at most.
const BATCH: usize = 512;
/// Export failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The largest collector answer read.
const MAX_ANSWER: usize = 64 << 10;

/// Runs the exporter as a Pingora background service.
pub struct TraceExporter(pub Arc<Tracer>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for TraceExporter {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(mut rx) = self.0.take_queue() else {
            return;
        };
        let mut client = Client::new(&self.0);
        let mut last_log: Option<Instant> = None;
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(LINGER) => false,
                _ = shutdown.changed() => true,
            };
            let mut batch: Vec<Span> = Vec::new();
            while let Ok(spans) = rx.try_recv() {
                batch.extend(spans);
                if batch.len() >= BATCH {
                    client.export(&self.0, &batch, &mut last_log).await;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                client.export(&self.0, &batch, &mut last_log).await;
            }
            if stopping {
                return;
            }
        }
    }
}

/// What an export needs besides the spans.
struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
    head: String,
}

impl Client {
    fn new(tracer: &Tracer) -> Client {
        let s = &tracer.settings;
        let tls = s.endpoint.tls.then(connector);
        let mut head = format!(
            "POST {}/v1/traces HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-protobuf\r\n\
             user-agent: sluice/{}\r\nconnection: close\r\n",
            s.endpoint.path,
            s.endpoint.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in &s.headers {
            head.push_str(&format!("{name}: {}\r\n", value.expose()));
        }
        Client { tls, head }
    }

    /// Sends one batch; counts what became of it.
    async fn export(&mut self, tracer: &Tracer, spans: &[Span], last_log: &mut Option<Instant>) {
        let s = &tracer.settings;
        let body = proto::export_request(&s.service_name, spans);
        let n = spans.len() as u64;
        match tokio::time::timeout(s.timeout, self.post(tracer, &body)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                tracer.stats.exported.inc_by(n);
            }
            Ok(Ok(status)) => fail(
                tracer,
                n,
                &format!("the collector answered {status}"),
                last_log,
            ),
            Ok(Err(e)) => fail(tracer, n, &e, last_log),
            Err(_) => fail(
                tracer,
                n,
                &format!("no answer within {:?}", s.timeout),
                last_log,
            ),
        }
    }

    /// POSTs `body`; the collector's status.
    async fn post(&self, tracer: &Tracer, body: &[u8]) -> Result<u16, String> {
        let ep = &tracer.settings.endpoint;
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("cannot connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        let mut request = Vec::with_capacity(self.head.len() + 32 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        match &self.tls {
            None => exchange(tcp, &request).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|_| "invalid host name for TLS".to_string())?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                exchange(stream, &request).await
            }
        }
    }
}

/// Counts a failed export and logs it, at most once per [`LOG_EVERY`]. The message never
/// holds the headers (they may be credentials).
fn fail(tracer: &Tracer, spans: u64, why: &str, last_log: &mut Option<Instant>) {
    tracer.stats.export_failures.inc();
    tracer
        .stats
        .dropped
        .with_label_values(&["export_failed"])
        .inc_by(spans);
    if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
        *last_log = Some(Instant::now());
        log::warn!(
            "tracing: export to {}/v1/traces failed ({why}); {spans} spans dropped (counted in \
             sluice_trace_spans_dropped_total; this is logged at most once a minute)",
            tracer.settings.endpoint.authority
        );
    }
}

/// Writes the request and reads the answer's status line (and its body, bounded).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> Result<u16, String> {
    s.write_all(request)
        .await
        .map_err(|e| format!("write failed: {}", e.kind()))?;
    s.flush()
        .await
        .map_err(|e| format!("write failed: {}", e.kind()))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_ANSWER {
            return Err("answer header too large".into());
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read failed: {}", e.kind()))?;
        if n == 0 {
            return Err("the collector closed the connection without answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| head.starts_with("HTTP/1."))
        .ok_or_else(|| "the answer is not HTTP".to_string())?;
    // Read the rest of a small body so the collector sees a clean close.
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
        .min(MAX_ANSWER);
    let mut have = buf.len() - head_end;
    while have < length {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    Ok(status)
}

/// A TLS connector verifying the collector against the system's roots.
fn connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

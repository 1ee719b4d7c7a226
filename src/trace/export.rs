//! The exporter: a background service that takes what the queue holds every [`LINGER`],
//! encodes it in batches of at most [`BATCH`] spans and POSTs each to
//! `<otlp_endpoint>/v1/traces` (protobuf, with sluice's small HTTP/1.1 client
//! [`crate::core::post`]). One connection per export, bounded by `tracing.timeout`. A failed
//! export is dropped and counted (no retry: the queue behind it keeps moving), and logged at
//! most once per [`LOG_EVERY`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{proto, Span, Tracer};
use crate::core::post::{post, Dest};

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

/// Where exports go.
struct Client {
    /// `<otlp_endpoint's path>/v1/traces`.
    path: String,
}

impl Client {
    fn new(tracer: &Tracer) -> Client {
        let path = format!("{}/v1/traces", tracer.settings.endpoint.path);
        Client { path }
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
        let (s, ep) = (&tracer.settings, &tracer.settings.endpoint);
        let to = Dest {
            tls: ep.tls,
            host: &ep.host,
            port: ep.port,
            authority: &ep.authority,
            path: &self.path,
        };
        let protobuf = "application/x-protobuf";
        let answer = post(&to, protobuf, &s.headers, body, MAX_ANSWER).await;
        answer.map(|(status, _)| status)
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

//! The load generator: HTTP/1.1 keep-alive clients that measure what a streaming client sees —
//! time to first token, gaps between chunks, total time — in closed-loop (fixed concurrency)
//! or open-loop (fixed arrival rate) mode. In open-loop mode latency is measured from when a
//! request was *due*, not when it was sent, so a slow server cannot hide its queueing
//! (coordinated omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How load is offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// This many clients, each sending its next request when the previous one is done.
    Closed { concurrency: usize },
    /// Requests due at this rate, whatever the server does; at most `max_in_flight` at once.
    Open { rate: f64, max_in_flight: usize },
}

/// One load run against one target.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub port: u16,
    pub mode: Mode,
    pub duration: Duration,
    pub stream: bool,
    /// The whole request, head and body.
    pub request: Arc<Vec<u8>>,
    /// Spread the first connections over this long (thousands of clients).
    pub ramp: Duration,
    /// A request not answered completely within this long counts as a timeout error.
    pub timeout: Duration,
    pub label: String,
}

/// What one run measured. Times in microseconds.
#[derive(Debug, Default)]
pub struct Measured {
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: Vec<u64>,
    pub ttft: Vec<u64>,
    pub gaps: Vec<u64>,
    pub elapsed: Duration,
    pub peak_in_flight: usize,
}

impl Measured {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Percentile (0-100) of unsorted samples, in milliseconds.
pub fn percentile_ms(samples: &mut [u64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    Some(samples[rank.min(samples.len() - 1)] as f64 / 1000.0)
}

/// Builds a POST request for `path` with a JSON body.
pub fn post_request(port: u16, path: &str, key: Option<&str>, body: &str) -> Vec<u8> {
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Sample {
    latency: u64,
    ttft: Option<u64>,
    gaps: Vec<u64>,
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(port: u16) -> Result<Conn, String> {
        let sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = sock.set_nodelay(true);
        Ok(Conn {
            sock,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// Whether the server has not closed this idle connection (nothing to read, no end of
    /// file).
    fn still_open(c: &Conn) -> bool {
        let mut probe = [0u8; 1];
        matches!(c.sock.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    async fn fill(&mut self) -> Result<(), String> {
        match self.sock.read_buf(&mut self.buf).await {
            Ok(0) => Err("closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {}", e.kind())),
        }
    }

    /// [`Conn::exchange`] bounded by the spec's timeout.
    async fn exchange_within(&mut self, spec: &LoadSpec, due: Instant) -> Result<Sample, String> {
        tokio::time::timeout(spec.timeout, self.exchange(&spec.request, spec.stream, due))
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
    }

    /// Sends `req` and reads the whole response; `due` is when the request should have gone.
    async fn exchange(&mut self, req: &[u8], stream: bool, due: Instant) -> Result<Sample, String> {
        self.sock
            .write_all(req)
            .await
            .map_err(|e| format!("write: {}", e.kind()))?;
        let (status, chunked, len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut chunked = false;
                    let mut len = 0usize;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = h.value.windows(7).any(|w| w == b"chunked");
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            len = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                        }
                    }
                    self.buf.advance(n);
                    break (status, chunked, len);
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(_) => return Err("bad response".into()),
            }
        };
        let mut ttft = None;
        let mut gaps = Vec::new();
        let mut last = Instant::now();
        let mut tail: Vec<u8> = Vec::new();
        if chunked {
            loop {
                let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                    self.fill().await?;
                    continue;
                };
                let size = std::str::from_utf8(&self.buf[..pos])
                    .ok()
                    .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
                    .ok_or("bad chunk")?;
                if self.buf.len() < pos + 2 + size + 2 {
                    self.fill().await?;
                    continue;
                }
                let now = Instant::now();
                if size > 0 {
                    match ttft {
                        None => ttft = Some(now.duration_since(due).as_micros() as u64),
                        Some(_) => gaps.push(now.duration_since(last).as_micros() as u64),
                    }
                    last = now;
                    let data = &self.buf[pos + 2..pos + 2 + size];
                    tail = data[data.len().saturating_sub(32)..].to_vec();
                }
                self.buf.advance(pos + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            // A body with a length (a stream replayed whole, say): its first token arrives
            // with its first bytes.
            while self.buf.is_empty() && len > 0 {
                self.fill().await?;
            }
            if stream && len > 0 {
                ttft = Some(Instant::now().duration_since(due).as_micros() as u64);
            }
            while self.buf.len() < len {
                self.fill().await?;
            }
            tail = self.buf[len.saturating_sub(32)..len].to_vec();
            self.buf.advance(len);
        }
        let latency = due.elapsed().as_micros() as u64;
        if status != 200 {
            return Err(format!("http {status}"));
        }
        if stream && !tail.windows(6).any(|w| w == b"[DONE]") {
            return Err("stream without [DONE]".into());
        }
        Ok(Sample {
            latency,
            ttft,
            gaps,
        })
    }
}

#[derive(Default)]
struct Shared {
    measured: Mutex<Measured>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Shared {
    fn record(&self, r: Result<Sample, String>) {
        let mut m = self.measured.lock().unwrap();
        match r {
            Ok(s) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                m.ok += 1;
                m.latency.push(s.latency);
                if let Some(t) = s.ttft {
                    m.ttft.push(t);
                }
                m.gaps.extend(s.gaps);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *m.errors.entry(e).or_default() += 1;
            }
        }
    }

    fn enter(&self) {
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one load; `progress` is told (done, failed, in flight) every second.
pub async fn run(spec: &LoadSpec, progress: &(dyn Fn(u64, u64, usize) + Sync)) -> Measured {
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let end = start + spec.ramp + spec.duration;
    let mut tasks = Vec::new();
    match spec.mode {
        Mode::Closed { concurrency } => {
            for i in 0..concurrency {
                let shared = shared.clone();
                let spec = spec.clone();
                let delay = spec.ramp.mul_f64(i as f64 / concurrency.max(1) as f64);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut conn: Option<Conn> = None;
                    while Instant::now() < end {
                        if conn.is_none() {
                            match Conn::open(spec.port).await {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    shared.record(Err(e));
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                }
                            }
                        }
                        let c = conn.as_mut().expect("opened above");
                        shared.enter();
                        let r = c.exchange_within(&spec, Instant::now()).await;
                        shared.leave();
                        if r.is_err() {
                            conn = None;
                        }
                        shared.record(r);
                    }
                }));
            }
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let pool: Arc<Mutex<Vec<Conn>>> = Arc::default();
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut due = start;
            while due < end {
                tokio::time::sleep_until(due.into()).await;
                if shared.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                    shared.record(Err("client in-flight limit".into()));
                } else {
                    let (shared, pool, spec) = (shared.clone(), pool.clone(), spec.clone());
                    let scheduled = due;
                    shared.enter();
                    tasks.push(tokio::spawn(async move {
                        // A pooled connection the server has closed since (its idle
                        // timeout) is dropped, as an HTTP client's pool does.
                        let reused = {
                            let mut pool = pool.lock().unwrap();
                            std::iter::from_fn(|| pool.pop()).find(Conn::still_open)
                        };
                        let conn = match reused {
                            Some(c) => Ok(c),
                            None => Conn::open(spec.port).await,
                        };
                        let r = match conn {
                            Ok(mut c) => {
                                let r = c.exchange_within(&spec, scheduled).await;
                                if r.is_ok() {
                                    pool.lock().unwrap().push(c);
                                }
                                r
                            }
                            Err(e) => Err(e),
                        };
                        shared.leave();
                        shared.record(r);
                    }));
                }
                due += interval;
            }
        }
    }
    let ticker = {
        let shared = shared.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress(
                    shared.done.load(Ordering::Relaxed),
                    shared.failed.load(Ordering::Relaxed),
                    shared.in_flight.load(Ordering::Relaxed),
                );
            }
        }
    };
    tokio::select! {
        _ = async { for t in tasks { let _ = t.await; } } => {}
        _ = ticker => {}
    }
    let elapsed = start.elapsed();
    let mut m = std::mem::take(&mut *shared.measured.lock().unwrap());
    m.elapsed = elapsed;
    m.peak_in_flight = shared.peak.load(Ordering::Relaxed);
    m
}

//! The mock's HTTP/1.1 plumbing: reading requests, writing whole answers, and event streams
//! framed as SSE or NDJSON with the faults a test asked for.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) close: bool,
}

pub(crate) async fn read_request(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let find = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                let len: usize = find("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let _ = buf.split_to(head_len);
                while buf.len() < len {
                    if sock.read_buf(buf).await? == 0 {
                        return Ok(None);
                    }
                }
                let body = buf.split_to(len).freeze();
                return Ok(Some(Request {
                    method,
                    path,
                    headers,
                    body,
                    close,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > 1 << 20 {
                    return Ok(None);
                }
                if sock.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
    }
}

pub(crate) async fn serve_conn(mut sock: TcpStream, st: &State) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(8192);
    while let Some(req) = read_request(&mut sock, &mut buf).await? {
        st.request_count.fetch_add(1, Ordering::SeqCst);
        if st.behaviour.lock().unwrap().record {
            st.requests.lock().unwrap().push(Recorded {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
            });
        }
        let keep = respond(&mut sock, &req, st).await?;
        if !keep || req.close {
            break;
        }
    }
    Ok(())
}

pub(crate) fn head(status: u16, content_type: &str, extra: &str, len: Option<usize>) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let framing = match len {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_string(),
    };
    format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n{framing}{extra}\r\n")
}

pub(crate) async fn send_whole(
    sock: &mut TcpStream,
    status: u16,
    extra: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = head(status, "application/json", extra, Some(body.len())).into_bytes();
    out.extend_from_slice(body);
    sock.write_all(&out).await
}

pub(crate) fn error_body(message: &str, kind: &str, code: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

/// Sleeps for `d`; returns false early if the peer closes the connection meanwhile.
pub(crate) async fn wait_unless_closed(sock: &mut TcpStream, d: Duration) -> bool {
    let mut probe = [0u8; 1];
    let sleep = tokio::time::sleep(d);
    tokio::pin!(sleep);
    tokio::select! {
        _ = &mut sleep => true,
        r = sock.peek(&mut probe) => match r {
            Ok(0) | Err(_) => false,
            // A pipelined request: keep waiting the full time.
            Ok(_) => {
                sleep.await;
                true
            }
        },
    }
}

/// One SSE event with an `event:` line.
pub(crate) fn sse_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub(crate) async fn write_chunked(sock: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    sock.write_all(&out).await
}

/// How a streamed answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson` (Ollama).
    Ndjson,
}

/// Sends SSE `events` as a chunked 200 response, applying a stream fault.
pub(crate) async fn send_events(
    sock: &mut TcpStream,
    events: Vec<String>,
    error_event: &str,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    send_framed(
        sock,
        Framing::Sse,
        events,
        error_event,
        behaviour,
        fault,
        st,
    )
    .await
}

/// Sends stream `events` (each already framed) as a chunked 200 response, applying a fault.
pub(crate) async fn send_framed(
    sock: &mut TcpStream,
    framing: Framing,
    mut events: Vec<String>,
    error_event: &str,
    behaviour: &Behaviour,
    fault: Option<&Fault>,
    st: &State,
) -> std::io::Result<bool> {
    let cut = match fault {
        Some(
            Fault::StallAfterChunks(n, _)
            | Fault::DisconnectAfterChunks(n)
            | Fault::TruncateAfterChunks(n)
            | Fault::ErrorEventAfterChunks(n)
            | Fault::ErrorEventSaying(n, _),
        ) => Some((*n).min(events.len())),
        Some(Fault::Garbage) => Some(1),
        _ => None,
    };
    if let Some(n) = cut {
        events.truncate(n);
        match fault {
            Some(Fault::Garbage) => events.push(match framing {
                Framing::Sse => "data: {not json at all\n\n".into(),
                Framing::Ndjson => "{not json at all\n".into(),
            }),
            Some(Fault::ErrorEventAfterChunks(_)) => events.push(error_event.to_string()),
            Some(Fault::ErrorEventSaying(_, message)) => events.push(format!(
                "data: {}\n\n",
                error_body(message, "server_error", "server_error")
            )),
            _ => {}
        }
    }
    let pieces: Vec<Vec<u8>> = match fault {
        Some(Fault::SplitEvery(n)) => events
            .concat()
            .into_bytes()
            .chunks((*n).max(1))
            .map(<[u8]>::to_vec)
            .collect(),
        _ => events.into_iter().map(String::into_bytes).collect(),
    };

    sock.write_all(
        head(
            200,
            match framing {
                Framing::Sse => "text/event-stream; charset=utf-8",
                Framing::Ndjson => "application/x-ndjson",
            },
            "cache-control: no-cache\r\n",
            None,
        )
        .as_bytes(),
    )
    .await?;
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 && !behaviour.gap.is_zero() {
            tokio::time::sleep(behaviour.gap).await;
        }
        if let Err(e) = write_chunked(sock, p).await {
            st.streams_aborted.fetch_add(1, Ordering::SeqCst);
            return Err(e);
        }
        if matches!(fault, Some(Fault::SplitEvery(_))) {
            // Give each piece its own TCP segment so the gateway reads them separately.
            sock.flush().await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match fault {
        Some(Fault::StallAfterChunks(_, d) | Fault::HoldAfterDone(d)) => {
            // Keep the connection silent; notice if the reader goes away meanwhile.
            let mut probe = [0u8; 1];
            tokio::select! {
                _ = tokio::time::sleep(*d) => {}
                _ = sock.read(&mut probe) => {}
            }
            return Ok(false);
        }
        Some(Fault::DisconnectAfterChunks(_)) => {
            sock.shutdown().await.ok();
            return Ok(false);
        }
        _ => {}
    }
    if let Err(e) = sock.write_all(b"0\r\n\r\n").await {
        st.streams_aborted.fetch_add(1, Ordering::SeqCst);
        return Err(e);
    }
    st.streams_completed.fetch_add(1, Ordering::SeqCst);
    Ok(true)
}

//! The dialer against an HTTP/2 server (the `h2` crate's, over plain TCP): how many
//! connections requests open, and when a connection stops being shared.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;

use super::*;
use crate::upstream::Dialer;

/// An HTTP/2 server answering every request with `ok`; it sends GOAWAY on a connection once
/// that connection has answered `goaway_after` requests.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Server {
    async fn start(goaway_after: Option<usize>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, goaway_after));
            }
        });
        Server { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// A peer that speaks HTTP/2 over plain TCP, up to `max_streams` streams a connection.
    fn peer(&self, max_streams: usize, idle: Option<Duration>) -> HttpPeer {
        let mut peer = HttpPeer::new(self.addr, false, String::new());
        peer.options.alpn = ALPN::H2;
        peer.options.max_h2_streams = max_streams;
        peer.options.idle_timeout = idle;
        peer
    }
}

async fn serve(sock: tokio::net::TcpStream, goaway_after: Option<usize>) {
    let Ok(mut conn) = h2::server::handshake(sock).await else {
        return;
    };
    let mut answered = 0;
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        tokio::spawn(async move {
            // The request to its end first, as a server that reads bodies does: an answer
            // ended before it, with the body dropped, resets the stream (RST_STREAM
            // NO_ERROR) while the client may still be ending its request.
            let mut body = req.into_body();
            while let Some(Ok(data)) = body.data().await {
                let _ = body.flow_control().release_capacity(data.len());
            }
            let head = http::Response::builder().status(200).body(()).unwrap();
            if let Ok(mut out) = respond.send_response(head, false) {
                let _ = out.send_data(Bytes::from_static(b"ok"), true);
            }
        });
        answered += 1;
        if goaway_after == Some(answered) {
            conn.graceful_shutdown();
        }
    }
}

/// Sends a GET on `up` and reads the answer to its end; returns the body.
async fn exchange(up: &mut Upstream) -> Vec<u8> {
    let Upstream::H2(s) = up else {
        panic!("expected HTTP/2");
    };
    let mut header = RequestHeader::build("GET", b"/", None).unwrap();
    header.insert_header("host", "provider.test").unwrap();
    s.session
        .write_request_header(Box::new(header))
        .await
        .unwrap();
    s.session.finish_request_body().await.unwrap();
    up.read_final_header().await.unwrap();
    assert_eq!(up.status(), Some(200));
    let mut body = Vec::new();
    while let Some(b) = up.read_body().await.unwrap() {
        body.extend_from_slice(&b);
    }
    assert!(up.is_done());
    body
}

fn dialer() -> Dialer {
    Dialer::new(ConnectorOptions::new(16))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_shares_one_connection() {
    let server = Server::start(None).await;
    let dialer = Arc::new(dialer());
    let peer = Arc::new(server.peer(100, None));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (dialer, peer, barrier) = (dialer.clone(), peer.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let (mut up, reused) = dialer.get(&peer).await.unwrap();
            assert_eq!(exchange(&mut up).await, b"ok");
            dialer.release(up, &peer, None);
            reused
        });
    }
    let reused = tasks.join_all().await;
    assert_eq!(server.connections(), 1, "16 simultaneous requests");
    assert_eq!(reused.iter().filter(|r| !**r).count(), 1, "one dialed");
}

#[tokio::test]
async fn a_full_connection_makes_another_and_freed_streams_are_used_again() {
    let server = Server::start(None).await;
    let dialer = dialer();
    let peer = server.peer(2, None);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(dialer.get(&peer).await.unwrap());
    }
    assert_eq!(
        held.iter().map(|(_, reused)| *reused).collect::<Vec<_>>(),
        [false, true, false],
        "two streams a connection"
    );
    for (mut up, _) in held {
        exchange(&mut up).await;
        dialer.release(up, &peer, None);
    }
    // Counted once answered: the handshake does not wait for the server.
    assert_eq!(server.connections(), 2);
    for _ in 0..4 {
        let (mut up, reused) = dialer.get(&peer).await.unwrap();
        assert!(reused);
        exchange(&mut up).await;
        dialer.release(up, &peer, None);
    }
    assert_eq!(server.connections(), 2);
    assert_eq!(dialer.shared.len(), 2);
}

#[tokio::test]
async fn a_connection_the_provider_sends_away_is_not_used_again() {
    let server = Server::start(Some(1)).await;
    let dialer = dialer();
    let peer = server.peer(100, None);
    for round in 1..=3 {
        let (mut up, _) = dialer.get(&peer).await.unwrap();
        assert_eq!(exchange(&mut up).await, b"ok", "round {round}");
        dialer.release(up, &peer, None);
        // GOAWAY arrives after the answer: wait until the connection has taken it in.
        for _ in 0..100 {
            if dialer.shared.len() == 0 {
                break;
            }
            dialer.shared.sweep();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            dialer.shared.len(),
            0,
            "round {round}: the connection went away"
        );
    }
    assert_eq!(server.connections(), 3, "one connection a request");
}

#[tokio::test]
async fn connections_without_streams_for_their_idle_time_are_closed() {
    let server = Server::start(None).await;
    let dialer = dialer();
    let idle = Some(Duration::from_secs(3600));
    let (mut held, _) = dialer.get(&server.peer(100, idle)).await.unwrap();
    let short = server.peer(100, Some(Duration::ZERO));
    let (mut up, reused) = dialer.get(&short).await.unwrap();
    assert!(reused, "the same peer: a stream on the first connection");
    exchange(&mut up).await;
    dialer.release(up, &short, Some(Duration::ZERO));
    dialer.shared.sweep();
    assert_eq!(dialer.shared.len(), 1, "a stream is still open on it");
    exchange(&mut held).await;
    dialer.release(held, &short, Some(Duration::ZERO));
    dialer.shared.sweep();
    assert_eq!(dialer.shared.len(), 0, "no stream, past its idle time");
    let (mut up, reused) = dialer.get(&short).await.unwrap();
    assert!(!reused, "a new connection");
    exchange(&mut up).await;
    assert_eq!(server.connections(), 2);
}

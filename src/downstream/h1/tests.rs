use super::*;
use tokio::io::AsyncWriteExt;

use crate::upstream::loopback_pair as pair;

/// A deadline no test reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// The client writes `wire` in pieces cut at `cut`; sluice reads one request from it.
async fn request(wire: &[u8], cut: usize) -> (Result<Read>, tokio::net::TcpStream, Stream) {
    let (mut ours, mut theirs) = pair().await;
    let (a, b) = wire.split_at(cut.min(wire.len()));
    let (a, b) = (a.to_vec(), b.to_vec());
    let writer = tokio::spawn(async move {
        theirs.write_all(&a).await.unwrap();
        theirs.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        theirs.write_all(&b).await.unwrap();
        theirs
    });
    let read = read_request(&mut ours, far(), far()).await;
    (read, writer.await.unwrap(), ours)
}

async fn session(wire: &[u8], cut: usize) -> (Box<Session>, tokio::net::TcpStream) {
    let (read, theirs, ours) = request(wire, cut).await;
    match read {
        Ok(Read::Request(s)) => (s.attach(ours), theirs),
        Ok(Read::Closed | Read::Silent | Read::Late) => panic!("no request"),
        Err(e) => panic!("{e}"),
    }
}

async fn body(s: &mut Session) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = s.read_request_body().await? {
        assert!(!b.is_empty(), "no empty pieces");
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// What the client received until sluice closed the connection or `expect` bytes came.
async fn received(theirs: &mut tokio::net::TcpStream, expect: usize) -> String {
    let mut got = vec![0u8; 0];
    let mut chunk = [0u8; 4096];
    while got.len() < expect {
        let n = tokio::time::timeout(Duration::from_secs(10), theirs.read(&mut chunk))
            .await
            .expect("the answer arrives")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(got).unwrap()
}

const POST: &[u8] = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer k\r\nX-Custom: a b\r\nX-Empty:\r\ncontent-length: 11\r\n\r\nhello world";

#[tokio::test]
async fn a_request_cut_anywhere_reads_the_same() {
    for cut in 1..POST.len() {
        let (mut s, _theirs) = session(POST, cut).await;
        assert_eq!(s.method(), http::Method::POST);
        assert_eq!(s.uri().path(), "/v1/chat/completions");
        assert_eq!(s.uri().query(), Some("x=1"));
        let f = s.fields();
        assert_eq!(f.get("authorization"), Some(&b"Bearer k"[..]));
        assert_eq!(f.get("x-custom"), Some(&b"a b"[..]));
        assert_eq!(f.get("x-empty"), Some(&b""[..]));
        assert_eq!(f.get("host"), Some(&b"gw"[..]), "names in lowercase");
        assert_eq!(f.count(), 5);
        assert_eq!(body(&mut s).await.unwrap(), b"hello world", "cut at {cut}");
        assert!(s.keep);
    }
}

#[tokio::test]
async fn chunked_bodies_and_both_framings() {
    let wire = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
    for cut in [1, 30, 50, wire.len() - 1] {
        let (mut s, _theirs) = session(wire, cut).await;
        assert_eq!(body(&mut s).await.unwrap(), b"hello!");
        assert!(s.keep);
    }
    let both = b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
    let (mut s, _theirs) = session(both, both.len()).await;
    assert!(s.fields().get("content-length").is_none());
    assert_eq!(body(&mut s).await.unwrap(), b"ab");
    assert!(
        !s.keep,
        "a request with both framings closes its connection"
    );
}

#[tokio::test]
async fn malformed_headers_are_refused() {
    let bad: [&[u8]; 7] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: -3\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
    ];
    for wire in bad {
        let (read, _theirs, _ours) = request(wire, wire.len()).await;
        let e = read
            .err()
            .unwrap_or_else(|| panic!("{}", wire.escape_ascii()));
        assert_eq!(*e.etype(), ErrorType::InvalidHTTPHeader, "{e}");
    }
    // Equal lengths, listed or repeated, are one.
    let (mut s, _t) = session(b"POST / HTTP/1.1\r\ncontent-length: 2, 2\r\n\r\nab", 60).await;
    assert_eq!(body(&mut s).await.unwrap(), b"ab");
    // Too large a header.
    let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
    big.resize(MAX_HEADER + 10, b'a');
    let (read, _theirs, _ours) = request(&big, 1000).await;
    assert_eq!(
        *read.err().expect("refused").etype(),
        ErrorType::InvalidHTTPHeader
    );
}

#[tokio::test]
async fn a_connection_that_ends_is_closed_or_cut() {
    let (ours, theirs) = pair().await;
    drop(theirs);
    let mut ours = ours;
    assert!(matches!(
        read_request(&mut ours, far(), far()).await,
        Ok(Read::Closed)
    ));
    // Silent past the first wait.
    let (mut ours, _theirs) = pair().await;
    let soon = Instant::now() + Duration::from_millis(20);
    let r = read_request(&mut ours, soon, far()).await;
    assert!(matches!(r, Ok(Read::Silent)));
    // Started, not complete by the deadline: late.
    let (mut ours, mut theirs) = pair().await;
    theirs.write_all(b"GET / HT").await.unwrap();
    let soon = Instant::now() + Duration::from_millis(50);
    let r = read_request(&mut ours, far(), soon).await;
    assert!(matches!(r, Ok(Read::Late)));
    // Ended within a header: an error.
    let (mut ours, mut theirs) = pair().await;
    theirs.write_all(b"GET / HTT").await.unwrap();
    drop(theirs);
    let e = read_request(&mut ours, far(), far())
        .await
        .err()
        .expect("cut");
    assert_eq!(*e.etype(), ErrorType::ConnectionClosed);
}

fn json_header(len: usize) -> Head {
    let mut h = Head::new(200, 2);
    h.insert("content-type", "application/json");
    h.insert("content-length", len);
    h
}

#[tokio::test]
async fn a_whole_answer_has_its_length_date_and_connection() {
    let (mut s, mut theirs) = session(POST, POST.len()).await;
    body(&mut s).await.unwrap();
    s.write_response_header(&json_header(2)).await.unwrap();
    s.write_response_body(Some(Bytes::from_static(b"{}")), true)
        .await
        .unwrap();
    let stream = s.finish().await;
    assert!(stream.is_some(), "kept alive");
    drop(stream);
    let got = received(&mut theirs, usize::MAX).await;
    assert!(
        got.starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDate: "
        ),
        "{got}"
    );
    assert!(
        got.ends_with(" GMT\r\nConnection: keep-alive\r\n\r\n{}"),
        "{got}"
    );
}

#[tokio::test]
async fn a_stream_is_chunked_and_sent_piece_by_piece() {
    let (mut s, mut theirs) = session(POST, POST.len()).await;
    body(&mut s).await.unwrap();
    let mut h = Head::new(200, 1);
    h.insert("transfer-encoding", "chunked");
    s.write_response_header(&h).await.unwrap();
    let head = received(&mut theirs, 1).await;
    assert!(
        head.ends_with("Connection: keep-alive\r\n\r\n"),
        "sent at once: {head}"
    );
    let piece = vec![b'x'; 300];
    s.write_response_body(Some(Bytes::from(piece)), false)
        .await
        .unwrap();
    let first = received(&mut theirs, 307).await;
    assert_eq!(
        first,
        format!("12c\r\n{}\r\n", "x".repeat(300)),
        "sent at once"
    );
    s.write_response_body(Some(Bytes::from_static(b"end")), true)
        .await
        .unwrap();
    assert!(s.finish().await.is_some());
    assert_eq!(received(&mut theirs, 13).await, "3\r\nend\r\n0\r\n\r\n");
}

#[tokio::test]
async fn what_closes_the_connection_after_the_answer() {
    // HTTP/1.0 without keep-alive; an answer before the body was read.
    for (wire, cut) in [(&b"GET / HTTP/1.0\r\n\r\n"[..], 100), (POST, 20)] {
        let (mut s, mut theirs) = session(wire, cut).await;
        s.write_response_header(&json_header(0)).await.unwrap();
        s.write_response_body(None, true).await.unwrap();
        assert!(s.finish().await.is_none());
        let got = received(&mut theirs, usize::MAX).await;
        assert!(got.contains("Connection: close\r\n"), "{got}");
    }
    // An answer without a length or chunks runs to the close.
    let (mut s, _theirs) = session(b"GET / HTTP/1.1\r\n\r\n", 100).await;
    let h = Head::new(200, 0);
    s.write_response_header(&h).await.unwrap();
    s.write_response_body(Some(Bytes::from_static(b"x")), true)
        .await
        .unwrap();
    assert!(s.finish().await.is_none());
    // An answer cut short of its length.
    let (mut s, _theirs) = session(b"GET / HTTP/1.1\r\n\r\n", 100).await;
    s.write_response_header(&json_header(10)).await.unwrap();
    s.write_response_body(Some(Bytes::from_static(b"x")), true)
        .await
        .unwrap();
    assert!(s.finish().await.is_none());
}

#[tokio::test]
async fn head_answers_have_no_body() {
    let (mut s, mut theirs) = session(b"HEAD / HTTP/1.1\r\n\r\n", 100).await;
    s.write_response_header(&json_header(5)).await.unwrap();
    s.write_response_body(Some(Bytes::from_static(b"hello")), true)
        .await
        .unwrap();
    let stream = s.finish().await;
    assert!(stream.is_some());
    drop(stream);
    let got = received(&mut theirs, usize::MAX).await;
    assert!(got.ends_with("\r\n\r\n"), "no body: {got}");
}

#[tokio::test]
async fn the_watch_tells_a_close_from_bytes_after_the_request() {
    let (mut s, theirs) = session(b"GET / HTTP/1.1\r\n\r\n", 100).await;
    drop(theirs);
    let e = s.read_body_or_idle(true).await.expect_err("gone");
    assert_eq!(*e.etype(), ErrorType::ConnectionClosed);
    let (mut s, mut theirs) = session(b"GET / HTTP/1.1\r\n\r\n", 100).await;
    theirs.write_all(b"GET /next").await.unwrap();
    let e = s.read_body_or_idle(true).await.expect_err("bytes");
    assert_eq!(*e.etype(), ErrorType::ConnectError);
    s.write_response_header(&json_header(0)).await.unwrap();
    s.write_response_body(None, true).await.unwrap();
    assert!(
        s.finish().await.is_none(),
        "never reused after bytes it will not read"
    );
}

#[tokio::test]
async fn continue_and_bare_errors() {
    let (mut s, mut theirs) = session(
        b"POST / HTTP/1.1\r\ncontent-length: 1\r\nexpect: 100-continue\r\n\r\n",
        100,
    )
    .await;
    s.write_continue_response().await.unwrap();
    assert_eq!(
        received(&mut theirs, 25).await,
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    theirs.write_all(b"z").await.unwrap();
    assert_eq!(body(&mut s).await.unwrap(), b"z");
    s.respond_error(405).await.unwrap();
    assert!(s.finish().await.is_none());
    let got = received(&mut theirs, usize::MAX).await;
    assert!(
        got.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{got}"
    );
    assert!(got.contains("Connection: close\r\n"), "{got}");
}

#[test]
fn chunk_sizes_are_lowercase_hex() {
    for (len, want) in [
        (1usize, "1"),
        (15, "f"),
        (16, "10"),
        (300, "12c"),
        (65536, "10000"),
    ] {
        let mut out = [0u8; 18];
        let n = chunk_head(&mut out, len);
        assert_eq!(&out[..n], format!("{want}\r\n").as_bytes());
    }
}

use super::*;
use tokio::io::AsyncWriteExt;

use crate::upstream::loopback_pair as pair;

/// The provider writes `pieces` one by one (each its own write); sluice reads the whole
/// answer. Returns the answer (for `reusable`) and its body.
async fn answer(pieces: &[&[u8]], close_after: bool) -> (Answer, Result<Vec<u8>>) {
    let (ours, mut theirs) = pair().await;
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for p in pieces {
            theirs.write_all(&p).await.unwrap();
            theirs.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        if close_after {
            drop(theirs);
            None
        } else {
            Some(theirs)
        }
    });
    let mut a = Answer::new(ours);
    let body = async {
        a.read_header().await?;
        let mut body = Vec::new();
        while let Some(b) = a.read_body().await? {
            assert!(!b.is_empty(), "no empty pieces");
            body.extend_from_slice(&b);
        }
        Ok(body)
    }
    .await;
    // Keeps the provider's side open until the answer was read.
    let _theirs = writer.await.unwrap();
    (a, body)
}

/// `wire` cut at every position: the reader must not care where reads split it.
async fn every_split(wire: &[u8]) -> Vec<Result<Vec<u8>>> {
    let mut out = Vec::new();
    for at in 1..wire.len() {
        let (_, body) = answer(&[&wire[..at], &wire[at..]], false).await;
        out.push(body);
    }
    out
}

#[tokio::test]
async fn a_content_length_answer_is_read_whole_and_the_connection_reused() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
    let (a, body) = answer(&[wire], false).await;
    assert_eq!(body.unwrap(), b"{\"ok\":true}");
    assert_eq!(a.status(), Some(200));
    assert_eq!(
        a.fields().get("content-type"),
        Some(&b"application/json"[..])
    );
    assert!(a.reusable().is_some());
    for body in every_split(wire).await {
        assert_eq!(body.unwrap(), b"{\"ok\":true}");
    }
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_wherever_it_is_split() {
    let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        6;ext=1\r\ndata: \r\nC\r\n{\"a\":\"\xc3\xa9\"}\n\n\r\n0\r\nx-trailer: 1\r\n\r\n";
    let (a, body) = answer(&[wire], false).await;
    assert_eq!(body.unwrap(), "data: {\"a\":\"é\"}\n\n".as_bytes());
    assert!(a.reusable().is_some(), "trailers read, nothing left");
    for body in every_split(wire).await {
        assert_eq!(body.unwrap(), "data: {\"a\":\"é\"}\n\n".as_bytes());
    }
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
        HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-length: 2\r\n\r\n{}";
    let (a, body) = answer(&[wire], false).await;
    assert_eq!(body.unwrap(), b"{}");
    assert_eq!(a.status(), Some(429));
    assert_eq!(a.fields().get("retry-after"), Some(&b"2"[..]));
    assert!(
        a.fields().get("link").is_none(),
        "an informational answer's fields are not kept"
    );
}

#[tokio::test]
async fn an_answer_without_length_runs_to_the_close_and_is_not_reused() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n";
    let (a, body) = answer(&[wire, b"data: 2\n\n"], true).await;
    assert_eq!(body.unwrap(), b"data: 1\n\ndata: 2\n\n");
    assert!(a.is_done());
    assert!(a.reusable().is_none());
}

#[tokio::test]
async fn a_close_before_the_end_is_an_error() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345"[..],
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n12",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n12345\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-le",
    ] {
        let (a, body) = answer(&[wire], true).await;
        let e = body.expect_err("cut short");
        assert_eq!(e.etype(), &ErrorType::ConnectionClosed, "{e}");
        assert!(a.reusable().is_none());
    }
}

#[tokio::test]
async fn malformed_framing_is_refused() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n12345"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1e3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ] {
        let (_, body) = answer(&[wire], false).await;
        let e = body.expect_err("refused");
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader, "{e}");
    }
}

#[tokio::test]
async fn chunked_wins_over_content_length_and_other_codings_run_to_the_close() {
    let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let (a, body) = answer(&[wire], false).await;
    assert_eq!(body.unwrap(), b"ok");
    assert!(a.reusable().is_some());
    let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nraw";
    let (a, body) = answer(&[wire], true).await;
    assert_eq!(body.unwrap(), b"raw");
    assert!(a.reusable().is_none());
}

#[tokio::test]
async fn connections_asked_to_close_or_with_bytes_left_are_not_reused() {
    let cases: [(&[u8], bool); 5] = [
        (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close\r\ncontent-length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
            false,
        ),
    ];
    for (wire, reused) in cases {
        let (a, body) = answer(&[wire], false).await;
        body.unwrap();
        assert_eq!(
            a.reusable().is_some(),
            reused,
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
    // The request asked to close.
    let (ours, mut theirs) = pair().await;
    theirs
        .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    let mut a = Answer::new(ours);
    a.requested(true);
    a.read_header().await.unwrap();
    assert_eq!(a.read_body().await.unwrap(), None, "204 has no body");
    assert!(a.reusable().is_none());
}

#[tokio::test]
async fn a_header_without_end_is_refused_at_the_bound() {
    let (ours, mut theirs) = pair().await;
    let writer = tokio::spawn(async move {
        let _ = theirs.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = format!("x-pad: {}\r\n", "a".repeat(1000));
        for _ in 0..100 {
            if theirs.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
        theirs
    });
    let mut a = Answer::new(ours);
    let e = a.read_header().await.expect_err("too large");
    assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
    drop(writer.await);
}

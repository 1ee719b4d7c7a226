//! TLS to the provider: certificate verification against `upstream.ca_file`, SNI from the
//! `base_url` host, and a clear 502 (not a panic) when the certificate is not trusted.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

struct TlsFront {
    port: u16,
    ca_pem: String,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

/// A TLS server for `localhost` (signed by a fresh CA) that relays to `backend`.
async fn tls_front(backend: std::net::SocketAddr) -> TlsFront {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let sni = Arc::new(Mutex::new(Vec::new()));
    // Listen on IPv4 and, where available, IPv6 loopback on the same port, since `localhost`
    // may resolve to either.
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    let mut listeners = vec![v4];
    if let Ok(v6) = TcpListener::bind(("::1", port)).await {
        listeners.push(v6);
    }
    for l in listeners {
        let acceptor = acceptor.clone();
        let sni = sni.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                let sni = sni.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(sock).await else {
                        return;
                    };
                    sni.lock()
                        .unwrap()
                        .push(tls.get_ref().1.server_name().map(str::to_string));
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    }
    TlsFront {
        port,
        ca_pem: ca_cert.pem(),
        sni,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_provider_with_sni_and_private_ca() {
    let m = mock().await;
    let front = tls_front(m.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let gw = Gateway::start(&format!(
        "{}upstream:\n  ca_file: {}\n",
        standard_config(&format!("https://localhost:{}", front.port)),
        ca.display()
    ));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.log());
    let mut s = post_stream(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", true)).await;
    assert_eq!(sse_data(&s.rest().await).last().unwrap(), "[DONE]");
    let sni = front.sni.lock().unwrap().clone();
    assert!(!sni.is_empty());
    assert!(
        sni.iter().all(|s| s.as_deref() == Some("localhost")),
        "{sni:?}"
    );
    assert_eq!(
        m.requests()[0].header("host"),
        Some(format!("localhost:{}", front.port).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_a_502() {
    let m = mock().await;
    let front = tls_front(m.addr).await;
    // No ca_file: the platform roots do not trust the test CA.
    let gw = Gateway::start(&standard_config(&format!(
        "https://localhost:{}",
        front.port
    )));
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    let v = r.assert_error(502, "upstream_unreachable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("'mock'"),
        "{v}"
    );
    assert_eq!(
        m.request_count(),
        0,
        "nothing is sent over an unverified connection"
    );
    assert!(!gw.log().contains("panicked"));
}

/// A CA and a leaf certificate for `localhost` and 127.0.0.1, as PEM files in `dir`:
/// returns (ca, cert, key) paths.
fn pem_files(dir: &std::path::Path) -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
    let write = |name: &str, content: String| {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    };
    (
        write("ca.pem", ca_cert.pem()),
        write("cert.pem", leaf.pem()),
        write("key.pem", leaf_key.serialize_pem()),
    )
}

/// A gateway whose one provider (`edge`, kind openai) is another sluice serving TLS with
/// HTTP/2 in front of the mock `m`: (the certificates' directory, the provider, the gateway).
/// The mock streams with 20 ms between chunks, so that concurrent streams overlap.
fn behind_an_http2_provider(m: &MockProvider) -> (tempfile::TempDir, Gateway, Gateway) {
    m.set_behaviour(Behaviour {
        gap: std::time::Duration::from_millis(20),
        ..Behaviour::default()
    });
    http2_edge(m, KEY)
}

/// As [`behind_an_http2_provider`], the gateway sending `edge_key` to the provider (which
/// accepts only [`KEY`]), with the mock as it is.
fn http2_edge(m: &MockProvider, edge_key: &str) -> (tempfile::TempDir, Gateway, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pem_files(dir.path());
    let provider = Gateway::start(&format!(
        "tls: {{ cert: {cert}, key: {key} }}\n{}",
        standard_config(&m.url())
    ));
    let gw = Gateway::start(&format!(
        r#"
keys:
  - {{ name: team-a, key: {KEY} }}
providers:
  edge: {{ kind: openai, base_url: "https://127.0.0.1:{}/v1", api_key: {edge_key} }}
models:
  gpt-4o-mini:
    - {{ provider: edge, model: gpt-4o-mini }}
upstream:
  ca_file: {ca}
"#,
        provider.port
    ));
    (dir, provider, gw)
}

/// Waits for the provider's access log to hold `n` requests; returns its lines and the
/// distinct client connections (address and port) they came on.
async fn provider_connections(
    provider: &Gateway,
    n: usize,
) -> (Vec<serde_json::Value>, std::collections::HashSet<String>) {
    assert!(
        eventually(std::time::Duration::from_secs(3), || provider
            .access_log()
            .len()
            == n)
        .await
    );
    let lines = provider.access_log();
    let connections = lines
        .iter()
        .map(|l| l["client"].as_str().unwrap().to_string())
        .collect();
    (lines, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_an_https_provider_multiplexes_streams() {
    let m = mock().await;
    let (_dir, provider, gw) = behind_an_http2_provider(&m);
    // Warm up: Pingora opens one connection per request while no HTTP/2 connection to the
    // provider exists yet; once one does, concurrent requests share it.
    let r = post(gw.port, "/v1/chat/completions", &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut tasks = Vec::new();
    for i in 0..8 {
        // Staggered slightly (each stream then stays open ~250 ms, so all overlap): a burst
        // that arrives within the same instant can still open parallel connections.
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        let port = gw.port;
        tasks.push(tokio::spawn(async move {
            let mut s = post_stream(
                port,
                "/v1/chat/completions",
                &chat("gpt-4o-mini", i % 2 == 0),
            )
            .await;
            (s.status, s.rest().await)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let text = if i % 2 == 0 {
            let events = sse_data(&body);
            assert_eq!(events.last().unwrap(), "[DONE]");
            stream_text(&events)
        } else {
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["choices"][0]["message"]
                ["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(text.contains("Say hello"), "{text}");
    }
    assert_eq!(m.request_count(), 9);
    let (lines, connections) = provider_connections(&provider, 9).await;
    assert!(
        lines.iter().all(|l| l["http"] == "2"),
        "the gateway spoke HTTP/2 to the provider: {lines:?}"
    );
    assert!(
        connections.len() <= 2,
        "9 requests, 8 of them concurrent, used {} connection(s)",
        connections.len()
    );
}

/// A cold burst: eight requests at the same instant to an HTTP/2 provider no connection has
/// been made to share the first connection instead of each opening one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_to_an_http2_provider_opens_one_connection() {
    let m = mock().await;
    let (_dir, provider, gw) = behind_an_http2_provider(&m);
    // Every client connection is made first, then the eight requests go at once.
    let body = closing(&raw_chat_request(&chat("gpt-4o-mini", true)));
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(
            tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
                .await
                .unwrap(),
        );
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let body = body.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                barrier.wait().await;
                c.write_all(body.as_bytes()).await.unwrap();
                let mut out = Vec::new();
                let _ = c.read_to_end(&mut out).await;
                String::from_utf8_lossy(&out).into_owned()
            })
        })
        .collect();
    for t in tasks {
        let answer = t.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("[DONE]"), "{answer}");
    }
    let (lines, connections) = provider_connections(&provider, 8).await;
    assert!(lines.iter().all(|l| l["http"] == "2"), "{lines:?}");
    assert_eq!(
        connections.len(),
        1,
        "8 simultaneous requests used {} connections",
        connections.len()
    );
}

/// A provider that answers before it has read the whole request — here it refuses the key
/// from the header alone — and resets the rest of the stream with NO_ERROR, as HTTP/2
/// allows (RFC 9113 §8.1): the client gets the provider's answer, not a connection error,
/// and the gateway does not try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_provider_that_answers_before_reading_the_body() {
    let m = mock().await;
    let (_dir, provider, gw) = http2_edge(&m, "sk-test-not-the-edge-key");
    // Larger than HTTP/2's initial window (64 KiB): the gateway is still sending the body
    // when the provider's answer and reset arrive.
    let mut body = chat("gpt-4o-mini", false);
    body["messages"][0]["content"] = "word ".repeat(60_000).into();
    for _ in 0..3 {
        let r = post(gw.port, "/v1/chat/completions", &body).await;
        // The provider's refusal of the gateway's own key, as such (not a failed connection).
        assert_eq!(r.status, 502, "{}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "upstream_auth_failed",
            "{}",
            r.text()
        );
    }
    assert_eq!(m.request_count(), 0, "the provider refused every request");
    let (lines, _) = provider_connections(&provider, 3).await;
    assert!(
        lines.iter().all(|l| l["status"] == 401 && l["http"] == "2"),
        "one HTTP/2 attempt per request, each refused: {lines:?}"
    );
}

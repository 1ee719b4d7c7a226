use super::*;
use crate::config::BaseUrl;
use crate::core::secret::Secret;
use crate::providers::ProviderKind;
use pingora::protocols::http::v1::client::http_req_header_to_wire;

fn provider(kind: ProviderKind, key: Option<&str>, headers: &[(&str, &str)]) -> Provider {
    Provider {
        name: "p".into(),
        kind,
        base: BaseUrl {
            tls: false,
            host: "127.0.0.1".into(),
            port: 9999,
            authority: "127.0.0.1:9999".into(),
            path: String::new(),
        },
        api_root: "/v1".into(),
        api_key: key.map(Secret::new),
        headers: headers
            .iter()
            .map(|(n, v)| (n.parse().unwrap(), v.parse().unwrap()))
            .collect(),
        http2: false,
    }
}

/// The request as Pingora would write it from [`Outgoing::header`].
fn pingora_wire(req: &Outgoing<'_>, body: &[u8]) -> Vec<u8> {
    let mut wire = http_req_header_to_wire(&req.header().unwrap())
        .unwrap()
        .to_vec();
    wire.extend_from_slice(body);
    wire
}

#[test]
fn an_http1_request_is_written_field_by_field() {
    let p = provider(
        ProviderKind::OpenAi,
        Some("sk-fake-key"),
        &[("x-extra", "1"), ("user-agent", "custom/2")],
    );
    let body = br#"{"model":"m"}"#;
    let mut req = Outgoing::new(
        &p,
        "POST",
        "/v1/chat/completions".into(),
        Some(13),
        false,
        "rid-1",
    )
    .unwrap();
    assert!(req.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string()
    ));
    let wire = req.to_h1(body);
    let expected = "POST /v1/chat/completions HTTP/1.1\r\n\
        host: 127.0.0.1:9999\r\n\
        content-type: application/json\r\n\
        content-length: 13\r\n\
        accept: application/json\r\n\
        user-agent: custom/2\r\n\
        x-request-id: rid-1\r\n\
        authorization: Bearer sk-fake-key\r\n\
        x-extra: 1\r\n\
        traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
        \r\n{\"model\":\"m\"}";
    assert_eq!(String::from_utf8(wire.clone()).unwrap(), expected);
    assert_eq!(
        wire,
        pingora_wire(&req, body),
        "the same as Pingora's header"
    );
    assert!(!req.closes());
    let h = req.header().unwrap();
    assert!(h.headers["authorization"].is_sensitive());
    assert!(!h.headers["host"].is_sensitive());
}

#[test]
fn configured_headers_replace_the_descriptors_in_place() {
    let p = provider(
        ProviderKind::Anthropic,
        Some("fake"),
        &[
            ("anthropic-version", "2099-01-01"),
            ("connection", "keep-alive, Close"),
        ],
    );
    let req = Outgoing::new(&p, "POST", "/v1/messages".into(), Some(2), true, "r").unwrap();
    let wire = String::from_utf8(req.to_h1(b"{}")).unwrap();
    assert!(
        wire.contains("\r\nx-api-key: fake\r\nanthropic-version: 2099-01-01\r\n"),
        "{wire}"
    );
    assert_eq!(wire.matches("anthropic-version").count(), 1, "{wire}");
    assert!(wire.contains("\r\naccept: text/event-stream\r\n"), "{wire}");
    assert!(req.closes());
    assert_eq!(req.to_h1(b"{}"), pingora_wire(&req, b"{}"));
}

#[test]
fn what_cannot_be_a_header_or_a_path_is_refused() {
    for key in ["fake\r\nx-injected: 1", "fake\n", "fa\u{7f}ke"] {
        let p = provider(ProviderKind::OpenAi, Some(key), &[]);
        let e = Outgoing::new(&p, "POST", "/v1/x".into(), None, false, "r")
            .err()
            .expect("refused");
        assert_eq!(e.status, 500);
        assert!(!e.message.contains("fake"), "{}", e.message);
    }
    let p = provider(ProviderKind::OpenAi, None, &[]);
    for path in ["/v1/a b", "/v1/a\r\nx: y", "v1/x", ""] {
        assert!(
            Outgoing::new(&p, "POST", path.into(), None, false, "r").is_err(),
            "{path:?}"
        );
    }
    let mut req = Outgoing::new(&p, "GET", "/v1/models?x=1".into(), None, false, "r").unwrap();
    assert!(!req.insert("tracestate", "a=1\r\nb: 2"));
    let wire = String::from_utf8(req.to_h1(b"")).unwrap();
    assert!(
        wire.starts_with(
            "GET /v1/models?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9999\r\naccept: application/json\r\n"
        ),
        "{wire}"
    );
    assert!(
        !wire.contains("tracestate") && !wire.contains("content-length"),
        "{wire}"
    );
}

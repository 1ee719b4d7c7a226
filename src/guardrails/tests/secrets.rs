//! The newer `secrets` kinds, the AWS secret key by shape, documentation placeholders, and
//! lower-case IBANs.

use super::stream::feed;
use super::*;

/// A secret access key in AWS's shape (40 characters of base64), not a real one.
pub(super) const AWS_SECRET: &str = "Zq8/rT3vN1xW+pL5kM2jH7gF4dS9aB6cE0yU3iO1";

fn redacted(p: &Policy, text: &str) -> String {
    let v = p.check_output_text(text);
    assert!(v.blocked().is_none(), "{text}");
    v.text
}

fn new_kinds() -> Vec<(String, &'static str)> {
    vec![
        (
            format!(
                "xapp-1-A0{}-{}-{}",
                "12345678", "1234567890123", "0a1b2c3d4e5f6a7b8c9d"
            ),
            "slack_app_token",
        ),
        (
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                "0A1B2C3D4", "5E6F7G8H9", "q1W2e3R4t5Y6u7I8o9P0a1S2"
            ),
            "slack_webhook",
        ),
        (
            format!("whsec_{}", "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7"),
            "stripe_webhook_secret",
        ),
        (
            format!("GOCSPX-{}", "1a2B3c4D5e6F7g8H9i0J_k-L2m3N"),
            "google_oauth_secret",
        ),
    ]
}

#[test]
fn new_secret_kinds_are_redacted() {
    let p = one("secrets", "redact");
    for (secret, kind) in new_kinds() {
        let text = format!("token: {secret} ok");
        assert_eq!(
            redacted(&p, &text),
            format!("token: [REDACTED:{kind}] ok"),
            "{kind}"
        );
    }
}

#[test]
fn new_secret_kinds_are_caught_split_across_chunks() {
    let p = one("secrets", "redact");
    for (secret, kind) in new_kinds() {
        let text = format!("a {secret} b");
        let whole = format!("a [REDACTED:{kind}] b");
        for cut in 1..text.len() {
            let mut sc = p.output_scanner().expect("output rules");
            let got = feed(&mut sc, &[&text[..cut], &text[cut..]]).expect("no block");
            assert_eq!(got, whole, "{kind} split at {cut}");
        }
        // Blocked in a stream, no part of it is released.
        let b = one("secrets", "block");
        let mut sc = b.output_scanner().expect("output rules");
        let (got, released) = feed(&mut sc, &[&text[..6], &text[6..]]).expect_err("block");
        assert_eq!(got, kind);
        assert!(released.concat().len() <= 2, "{kind}: {released:?}");
    }
}

#[test]
fn secret_near_misses_are_not_findings() {
    let p = one("secrets", "redact");
    for text in [
        "xapp-1-short",
        "use xapp-config for the app",
        "whsec_short0123456789",
        "GOCSPX-tooShort",
        "https://hooks.slack.com/services/ is the webhook base",
        "https://hooks.slack.com/services/T0A1B/B5E6F/abc",
        "secretAccessKey: tooShort0123456789",
    ] {
        assert_eq!(redacted(&p, text), text);
    }
}

#[test]
fn aws_secret_key_by_name_and_next_to_an_access_key() {
    let p = one("secrets", "redact");
    let id = aws_key();
    let s = AWS_SECRET;
    let cases = [
        (
            format!(r#"{{"accessKeyId": "{id}", "secretAccessKey": "{s}"}}"#),
            r#"{"accessKeyId": "[REDACTED:aws_access_key]", "secretAccessKey": "[REDACTED:aws_secret_key]"}"#.to_string(),
        ),
        (
            format!(r#"{{"SecretAccessKey": "{s}"}}"#),
            r#"{"SecretAccessKey": "[REDACTED:aws_secret_key]"}"#.to_string(),
        ),
        (
            format!("export AWS_SECRET_ACCESS_KEY={s}\n"),
            "export AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key]\n".to_string(),
        ),
        (
            format!("[default]\naws_secret_access_key = {s}\n"),
            "[default]\naws_secret_access_key = [REDACTED:aws_secret_key]\n".to_string(),
        ),
        (
            format!("{id},{s}\n"),
            "[REDACTED:aws_access_key],[REDACTED:aws_secret_key]\n".to_string(),
        ),
        (
            format!("key id {id} and its secret {s}."),
            "key id [REDACTED:aws_access_key] and its secret [REDACTED:aws_secret_key].".to_string(),
        ),
        // Not on the access key's line: only the key id is a finding.
        (
            format!("{id}\n{s}"),
            format!("[REDACTED:aws_access_key]\n{s}"),
        ),
        // Neither a name nor a key id: 40 characters of base64 are not a finding.
        (format!("hash {s} ok"), format!("hash {s} ok")),
    ];
    for (text, want) in cases {
        assert_eq!(redacted(&p, &text), want, "{text}");
        for cut in 1..text.len() {
            let mut sc = p.output_scanner().expect("output rules");
            let got = feed(&mut sc, &[&text[..cut], &text[cut..]]).expect("no block");
            assert_eq!(got, want, "{text} split at {cut}");
        }
    }
    // Blocked by name or next to a key id.
    let b = one("secrets", "block");
    let v = b.check_output_text(&format!("AWS_SECRET_ACCESS_KEY={s}"));
    assert_eq!(v.blocked(), Some(("g", "aws_secret_key")));
    assert!(b
        .check_output_text(&format!("{id} {s}"))
        .blocked()
        .is_some());
}

#[test]
fn documentation_placeholders_are_not_findings() {
    let p = one("secrets", "block");
    // Built at run time so that no key-shaped literal sits in the source.
    let x_run = format!("OPENAI_API_KEY=sk-{}", "x".repeat(32));
    let x_github = format!("ghp_{}", "x".repeat(36));
    for text in [
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        r#"{"secretAccessKey": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"}"#,
        "SLACK_BOT_TOKEN=xoxb-your-bot-token-here",
        "xapp-1-your-app-level-token-here",
        "OPENAI_API_KEY=sk-proj-your-api-key-here-0123456789",
        x_run.as_str(),
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "whsec_EXAMPLEexampleEXAMPLEexample0123456",
        "GOCSPX-example_client_secret_000000",
        x_github.as_str(),
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ] {
        let v = p.check_output_text(text);
        assert!(v.findings.is_empty(), "{text}: {:?}", v.findings);
        assert_eq!(v.text, text);
    }
    // Real-looking values of the same kinds still are.
    for text in [
        aws_key(),
        format!("xoxb-{}", "1234567890-abcdefghij"),
        format!("sk_test_{}", "51HqLyjWDarjtT1zdp7dcZz"),
        format!("ghp_{}", "a1b2c3d4e5f6".repeat(3)),
    ] {
        assert!(p.check_output_text(&text).blocked().is_some(), "{text}");
    }
}

#[test]
fn lower_case_ibans_are_checked_and_redacted() {
    let p = one("pii", "redact");
    for (text, want) in [
        (
            "iban de89 3704 0044 0532 0130 00 is mine",
            "iban [REDACTED:iban] is mine",
        ),
        ("iban de89370400440532013000.", "iban [REDACTED:iban]."),
        (
            "to gb82 west 1234 5698 7654 32 then",
            "to [REDACTED:iban] then",
        ),
        (
            "to be68 5390 0754 7034 that week",
            "to [REDACTED:iban] that week",
        ),
        // Check digits wrong: not an IBAN.
        (
            "to gb82 west 1234 5698 7654 33 then",
            "to gb82 west 1234 5698 7654 33 then",
        ),
        ("to gb82west12345698765433.", "to gb82west12345698765433."),
        ("ref de12345678901234567", "ref de12345678901234567"),
    ] {
        assert_eq!(redacted(&p, text), want, "{text}");
        for cut in 1..text.len() {
            let mut sc = p.output_scanner().expect("output rules");
            let got = feed(&mut sc, &[&text[..cut], &text[cut..]]).expect("no block");
            assert_eq!(got, want, "{text} split at {cut}");
        }
    }
}

//! Admin tokens, as a bearer header or as the dashboard's session cookie: parsing, and a
//! comparison that takes the same time whatever the presented value. Which token a request
//! names, and what it may do, is `server::access`'s.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie the dashboard's login form sets.
pub const COOKIE: &str = "sluice_admin";

/// The header the dashboard's script sends with every change it asks for. A page on another
/// origin cannot send a custom header without a CORS preflight, which the admin listener never
/// approves; so a request bearing it comes from the dashboard itself.
pub const DASHBOARD_HEADER: &str = "x-sluice-dashboard";

/// Whether `presented` is `token`. Both sides are hashed first, so that neither the
/// comparison nor its length check depends on how much of the token was guessed right.
pub fn token_matches(presented: &str, token: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// The bearer token of an `Authorization` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The value of cookie `name`, percent-decoded, from every `Cookie` header of a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v.trim_matches('"'), false))
}

/// Whether the request carries `X-Sluice-Dashboard: 1`: the session cookie then counts for
/// a change (POST, DELETE, …) too, not only for GET requests.
pub fn from_dashboard(headers: &HeaderMap) -> bool {
    headers
        .get(DASHBOARD_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// The `Set-Cookie` value that logs a browser in: the token percent-encoded, readable by no
/// script, sent on same-site requests only.
pub fn login_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        percent_encode(token)
    )
}

/// The `Set-Cookie` value that logs a browser out.
pub fn logout_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Field `name` of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v, true))
}

/// Every byte but unreserved ASCII as `%XX`: a cookie value that any token fits in.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `%XX` escapes (and `+` as a space in form bodies) decoded; `None` if malformed or not
/// UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches(
            "s3cret-token-abcdefgh",
            "s3cret-token-abcdefgh"
        ));
        assert!(!token_matches(
            "s3cret-token-abcdefg",
            "s3cret-token-abcdefgh"
        ));
        assert!(!token_matches(
            "s3cret-token-abcdefghi",
            "s3cret-token-abcdefgh"
        ));
        assert!(!token_matches("", "s3cret-token-abcdefgh"));
    }

    #[test]
    fn cookies_are_found_among_others_and_decoded() {
        let h = headers(&[
            ("cookie", "a=1; sluice_admin=t%3Bk%20n; b=2"),
            ("cookie", "c=3"),
        ]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("t;k n"));
        assert_eq!(cookie(&h, "c").as_deref(), Some("3"));
        assert_eq!(cookie(&h, "sluice"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "sluice_admin=%zz")]), COOKIE),
            None
        );
        assert_eq!(
            cookie(&headers(&[("cookie", "sluice_admin=%4")]), COOKIE),
            None
        );
        assert_eq!(cookie(&HeaderMap::new(), COOKIE), None);
    }

    #[test]
    fn the_login_cookie_round_trips_any_token() {
        let token = "tök;en =\"x\"+/%";
        let set = login_cookie(token);
        assert!(
            set.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
            "{set}"
        );
        let value = set.split(';').next().unwrap();
        assert!(value.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
        let h = headers(&[("cookie", value)]);
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some(token));
        assert!(logout_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"username=admin&token=a%2Bb+c%26d";
        assert_eq!(form_field(body, "token").as_deref(), Some("a+b c&d"));
        assert_eq!(form_field(body, "username").as_deref(), Some("admin"));
        assert_eq!(form_field(body, "nope"), None);
        assert_eq!(form_field(b"\xff=1", "token"), None);
    }

    #[test]
    fn only_the_dashboard_header_with_value_1_marks_a_request() {
        assert!(from_dashboard(&headers(&[("x-sluice-dashboard", "1")])));
        assert!(!from_dashboard(&headers(&[("x-sluice-dashboard", "0")])));
        assert!(!from_dashboard(&headers(&[("x-sluice-dashboard", "")])));
        assert!(!from_dashboard(&HeaderMap::new()));
    }
}

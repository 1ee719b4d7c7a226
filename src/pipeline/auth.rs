//! Who is asking: the request id, and the gateway key that authenticates the request.

use crate::core::ApiError;
use crate::downstream::{self, Session};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::keyring::{Found, Key};

/// Sets the request id: the client's `x-request-id` when it is sane, otherwise a new one.
pub fn request_id(session: &Session<'_>) -> String {
    let given = session
        .header("x-request-id")
        .and_then(downstream::text)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(s) => s.to_string(),
        None => {
            // 32 lowercase hex digits, written by table (`hex::encode` pushes char by char).
            let mut id = [0u8; 32];
            let random = rand::random::<u128>().to_be_bytes();
            hex::encode_to_slice(random, &mut id).expect("32 digits for 16 bytes");
            std::str::from_utf8(&id)
                .expect("hex digits are ASCII")
                .to_owned()
        }
    }
}

/// `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub(super) fn authenticate<'a>(
    gw: &'a Gateway,
    session: &Session<'_>,
) -> Result<&'a Key, ApiError> {
    let presented = match session.header("authorization") {
        Some(v) => {
            let v = downstream::text(v).ok_or_else(|| {
                ApiError::unauthorized("The Authorization header is not valid text.")
            })?;
            let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::unauthorized(
                    "The Authorization header must be 'Bearer <key>'.",
                ));
            }
            token.trim()
        }
        None => match session.header("x-api-key") {
            Some(v) => downstream::text(v)
                .ok_or_else(|| ApiError::unauthorized("The x-api-key header is not valid text."))?
                .trim(),
            None => {
                return Err(ApiError::unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' \
                     (or in the x-api-key header).",
                ))
            }
        },
    };
    match gw.keys.find(presented) {
        Found::Valid(key) => Ok(key),
        Found::Expired => Err(ApiError::unauthorized("This API key has expired.")),
        Found::Unknown => Err(ApiError::unauthorized("Incorrect API key provided.")),
    }
}

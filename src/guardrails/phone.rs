//! Phone numbers in national formats, validated with the `phonenumber` crate (Google's
//! libphonenumber metadata).
//!
//! A cheap pattern finds candidates — an international prefix (`+33 …`, `0044 …`), a
//! national trunk prefix (`01 23 45 67 89`, `(0)20 7946 0958`, `030-1234567`,
//! `090-1234-5678`), an area code in parentheses (`(11) 91234-5678`), or groups of digits
//! with separators (`612 34 56 78`) — and each is kept
//! only when it is a valid number: with its own country code, or in one of the configured
//! regions (`phone_regions`). Plain runs of digits without separators or prefix (order
//! numbers, timestamps) are not candidates.

use std::str::FromStr;
use std::sync::Arc;

use phonenumber::country::Id;

/// Regions tried for numbers written without a country code, when `phone_regions` is not
/// set: North America, the larger European numbering plans, Japan, India, Brazil and
/// Australia.
pub(crate) const DEFAULT_REGIONS: &[&str] = &[
    "US", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "CH", "JP", "IN", "BR", "AU",
];

/// Candidates: international, trunk-prefixed national, or separated groups. Never inside a
/// longer number.
pub(crate) const CANDIDATE: &str = r"(?:(?:\+|(?-u:\b)00)[1-9][0-9]?[0-9]?(?:[ .-]?\(?[0-9]{1,5}\)?){2,6}|(?-u:\b)(?:\(0\)|0)[1-9][0-9]{0,4}\)?(?:[ ./-]?[0-9]{2,5}){1,5}|\(0[1-9][0-9]{0,4}\)[ ]?[0-9]{2,5}(?:[ .-]?[0-9]{2,5}){0,4}|\([1-9][0-9]{1,3}\) ?[0-9]{3,5}[ .-]?[0-9]{4}|(?-u:\b)[1-9][0-9]{1,3}(?:[ .-][0-9]{2,4}){2,4})(?-u:\b)";

/// Parses `regions` (ISO 3166 alpha-2 codes); `Err` names the first unknown one.
pub(crate) fn parse_regions(regions: &[String]) -> Result<Vec<Id>, (usize, String)> {
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Id::from_str(&r.to_ascii_uppercase()).map_err(|_| {
                (
                    i,
                    format!("unknown region {r:?} (an ISO 3166 alpha-2 code)"),
                )
            })
        })
        .collect()
}

/// The default regions, parsed.
pub(crate) fn default_regions() -> Vec<Id> {
    DEFAULT_REGIONS
        .iter()
        .filter_map(|r| Id::from_str(r).ok())
        .collect()
}

/// A check that accepts a candidate when it is a valid number: by its own country code when
/// it has one, else in one of `regions`.
pub(crate) fn validator(regions: Vec<Id>) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
    // Loading the metadata takes a moment: do it now, not on the first request.
    let _ = phonenumber::parse(Some(Id::FR), "01 23 45 67 89");
    Arc::new(move |s: &str| valid(s, &regions))
}

/// Whether `s` is a valid phone number (see [`validator`]).
pub(crate) fn valid(s: &str, regions: &[Id]) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if !(8..=15).contains(&digits) {
        return false;
    }
    let t = s.trim();
    let international = if let Some(rest) = t.strip_prefix("00") {
        Some(format!("+{rest}"))
    } else if t.starts_with('+') {
        Some(t.to_string())
    } else {
        None
    };
    if let Some(n) = international {
        return phonenumber::parse(None, n).is_ok_and(|p| phonenumber::is_valid(&p));
    }
    // `(0)` is written after a country code; without one it is the trunk prefix.
    let t = t.replace("(0)", "0");
    // An area code in parentheses marks a phone number even without the trunk prefix
    // (`(11) 91234-5678` in Brazil).
    let trunk = t.starts_with('0') || t.starts_with('(');
    regions.iter().any(|r| {
        // In a region whose national numbers start with the trunk prefix 0, digits without
        // it (a date, a reference) are not one of its numbers.
        if !trunk && national_prefix(*r) == Some("0") {
            return false;
        }
        phonenumber::parse(Some(*r), &t).is_ok_and(|p| phonenumber::is_valid(&p))
    })
}

/// The national (trunk) prefix of a region, e.g. `0` in France, `1` in the US.
fn national_prefix(r: Id) -> Option<&'static str> {
    phonenumber::metadata::DATABASE
        .by_id(r.as_ref())
        .and_then(|m| m.national_prefix())
}

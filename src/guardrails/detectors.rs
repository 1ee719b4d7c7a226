//! Detectors: one pattern each, with the view it runs on, its maximum match length and an
//! optional check of the matched text (Luhn for cards, mod-97 for IBANs).
//!
//! Patterns are run by a lazy DFA (`regex_automata::hybrid`), which is linear in the text and
//! can be stepped byte by byte: that is what lets the streaming scanner ask "could a match
//! still be in progress here?" (see [`super::engine`]). Built-in patterns avoid bounded
//! repetitions with large bounds (they would bloat the automaton); the length of a match is
//! bounded by `max_len` instead.

use std::sync::Arc;

use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson;
use regex_automata::{meta, util::syntax};

use super::normalize::Profile;

/// Largest compiled NFA for one pattern (bytes).
const NFA_SIZE_LIMIT: usize = 2 << 20;
/// Largest lazy-DFA cache for one pattern (bytes); the cache is cleared and rebuilt past it.
const DFA_CACHE_CAPACITY: usize = 2 << 20;

/// One compiled pattern.
#[derive(Debug)]
pub(crate) struct Detector {
    /// What `[REDACTED:<kind>]` and the verdicts call it.
    pub(crate) kind: Arc<str>,
    /// The text view it runs on.
    pub(crate) profile: Profile,
    /// The pattern source (combined into per-view prefilters).
    pub(crate) pattern: String,
    /// Lazy DFA used to step anchored searches.
    pub(crate) dfa: DFA,
    /// Fallback when the DFA gives up (a Unicode word boundary next to non-ASCII text).
    pub(crate) meta: meta::Regex,
    /// Longest match considered, in bytes of the view.
    pub(crate) max_len: usize,
    /// Longest original span a match may cover, in bytes (bounds streaming hold-back even when
    /// the view drops characters, e.g. runs of zero-width characters).
    pub(crate) max_orig: usize,
    /// Rejects a syntactic match (checksum failed, not a valid phone number).
    pub(crate) validate: Option<Check>,
    /// Only the last N bytes of a match are redacted (the value after a `name =` context).
    pub(crate) redact_tail: Option<usize>,
    /// With `redact_tail`: the first N bytes of the match are redacted too, as this kind
    /// (an access key id before its secret), and the text between them is kept.
    pub(crate) redact_head: Option<(usize, Arc<str>)>,
    /// On input, obfuscated readings of the text are scanned too (see
    /// [`super::injection::decode`]).
    pub(crate) deobfuscate: bool,
}

/// A check of the matched text, run after the pattern matched, and what it depends on
/// besides the text (e.g. the phone regions), for the policy fingerprint.
#[derive(Clone)]
pub(crate) struct Check(Arc<dyn Fn(&str) -> bool + Send + Sync>, pub(crate) String);

impl Check {
    /// Whether the match `s` stands.
    pub(crate) fn ok(&self, s: &str) -> bool {
        (self.0)(s)
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Check")
    }
}

/// Builds the lazy DFA for one or more patterns with the sizes sluice allows.
pub(crate) fn build_dfa(patterns: &[&str]) -> Result<DFA, String> {
    DFA::builder()
        .configure(
            DFA::config()
                .cache_capacity(DFA_CACHE_CAPACITY)
                .unicode_word_boundary(true),
        )
        .thompson(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
        .build_many(patterns)
        .map_err(|e| e.to_string())
}

impl Detector {
    /// Compiles one pattern.
    pub(crate) fn new(
        kind: &str,
        profile: Profile,
        pattern: &str,
        max_len: usize,
    ) -> Result<Detector, String> {
        let dfa = build_dfa(&[pattern])?;
        let meta = meta::Regex::builder()
            .syntax(syntax::Config::new())
            .configure(meta::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build(pattern)
            .map_err(|e| e.to_string())?;
        let max_orig = match profile {
            Profile::Original => max_len,
            _ => max_len.saturating_mul(4),
        };
        Ok(Detector {
            kind: kind.into(),
            profile,
            pattern: pattern.to_string(),
            dfa,
            meta,
            max_len,
            max_orig,
            validate: None,
            redact_tail: None,
            redact_head: None,
            deobfuscate: false,
        })
    }

    fn check(mut self, f: fn(&str) -> bool) -> Self {
        self.validate = Some(Check(Arc::new(f), String::new()));
        self
    }

    fn tail(mut self, n: usize) -> Self {
        self.redact_tail = Some(n);
        self
    }

    fn head(mut self, n: usize, kind: &str) -> Self {
        self.redact_head = Some((n, kind.into()));
        self
    }
}

// Word boundaries are ASCII (`(?-u:\b)`): the lazy DFA handles them without giving up on
// non-ASCII text, and every built-in pattern is ASCII.
const SECRETS: &[(&str, &str, usize)] = &[
    ("anthropic_key", r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}", 256),
    (
        "openai_key",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        256,
    ),
    ("google_api_key", r"(?-u:\b)AIza[0-9A-Za-z_-]{35}", 40),
    ("groq_key", r"(?-u:\b)gsk_[A-Za-z0-9]{20,}", 128),
    ("xai_key", r"(?-u:\b)xai-[A-Za-z0-9]{20,}", 128),
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
        20,
    ),
    (
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        255,
    ),
    ("slack_token", r"(?-u:\b)xox[bpars]-[A-Za-z0-9-]{10,}", 255),
    (
        "slack_app_token",
        r"(?-u:\b)xapp-[0-9]-[A-Za-z0-9-]{20,}",
        255,
    ),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9]{6,}/B[A-Za-z0-9]{6,}/[A-Za-z0-9]{20,}",
        255,
    ),
    (
        "stripe_webhook_secret",
        r"(?-u:\b)whsec_[A-Za-z0-9]{32,}",
        255,
    ),
    (
        "google_oauth_secret",
        r"(?-u:\b)GOCSPX-[A-Za-z0-9_-]{28}",
        35,
    ),
    (
        "stripe_key",
        r"(?-u:\b)[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
        255,
    ),
    (
        "private_key",
        // The body is base64 and line breaks: stopping at the first other character (the
        // `-` of the END line, say) keeps every attempt short, whatever follows.
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[A-Za-z0-9+/=\s\\:,]*(?:-----END [A-Z0-9 ]*PRIVATE KEY-----)?",
        16384,
    ),
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        8192,
    ),
];

/// The AWS secret key: 40 characters of base64 right after a name such as
/// `aws_secret_access_key`, `AWS_SECRET_ACCESS_KEY` or `"secretAccessKey"` (env, INI, JSON).
const AWS_SECRET: &str = r#"(?i:(?:aws_?)?secret_?access_?key|aws_?secret_?key)(?:_id)?["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}(?-u:\b)"#;

/// The AWS secret key by shape: 40 characters of base64 on the same line as, and after, an
/// access key id (`AKIA…,wJalr…` in a CSV export, `id AKIA… secret wJalr…`). The match runs
/// from the key id to the secret; both are redacted, the text between them kept.
const AWS_PAIR: &str = r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}[^A-Za-z0-9/+=\n](?:[^\n]*[^A-Za-z0-9/+=\n])?[A-Za-z0-9/+]{40}(?-u:\b)";

/// Documentation placeholders that look like credentials but are published as examples:
/// the AWS docs' key pair, Stripe's docs test key, jwt.io's sample signature.
const PLACEHOLDERS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Whether a syntactic credential match is a real-looking value rather than a placeholder:
/// not a known documentation example, no `example`, no `your…here` (`xoxb-your-bot-token-here`)
/// and no run of eight `x` (`sk-xxxxxxxx…`), in any case.
pub(crate) fn not_placeholder(s: &str) -> bool {
    if PLACEHOLDERS.iter().any(|p| s.contains(p)) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("example") || lower.contains("xxxxxxxx") {
        return false;
    }
    !matches!(lower.find("your"), Some(i) if lower[i..].contains("here"))
}

/// The built-in `secrets` detectors.
pub(crate) fn secrets() -> Vec<Detector> {
    let d = |kind, p, max| Detector::new(kind, Profile::Original, p, max).expect("built-in");
    let mut out: Vec<Detector> = SECRETS
        .iter()
        .map(|(kind, p, max)| d(kind, p, *max).check(not_placeholder))
        .collect();
    out.push(
        d("aws_secret_key", AWS_SECRET, 128)
            .tail(40)
            .check(not_placeholder),
    );
    out.push(
        d("aws_secret_key", AWS_PAIR, 160)
            .tail(40)
            .head(20, "aws_access_key")
            .check(not_placeholder),
    );
    out
}

const EMAIL: &str = r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?-u:\b)";
/// E.164 (`+` then 8–15 digits, single separators allowed) or a North American national
/// format (`(415) 555-0100`, `415-555-0100`, `415.555.0100`); never inside a longer number.
const PHONE: &str = r"(?:\+[1-9](?:[ .-]?[0-9]){7,14}|\([0-9]{3}\) ?[0-9]{3}[.-][0-9]{4}|(?-u:\b)[0-9]{3}[.-][0-9]{3}[.-][0-9]{4})(?-u:\b)";
/// 13–19 digits, single spaces or dashes between them, starting like a card network (2–6).
const CARD: &str = r"(?-u:\b)[2-6](?:[ -]?[0-9]){12,18}(?-u:\b)";
/// Country code, check digits, then 11–30 alphanumerics, optionally grouped by four.
const IBAN: &str = r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)";
/// A lower-case IBAN, written in one run or grouped by four. Lower-case prose after it must
/// not be taken for more groups (the check digits would then fail): groups after the first
/// contain a digit, and a short last group is digits only.
const IBAN_LOWER: &str = r"(?-u:\b)[a-z]{2}[0-9]{2}(?:[a-z0-9]{11,30}|(?: [a-z0-9]{4})(?: (?:[0-9][a-z0-9]{3}|[a-z][0-9][a-z0-9]{2}|[a-z]{2}[0-9][a-z0-9]|[a-z]{3}[0-9])){1,6}(?: [0-9]{1,3})?)(?-u:\b)";

/// The built-in `pii` detectors; numbers without a country code are tried in `regions`
/// (see [`super::phone`]).
pub(crate) fn pii(regions: Vec<phonenumber::country::Id>) -> Vec<Detector> {
    let d = |kind, p, max| Detector::new(kind, Profile::Original, p, max).expect("built-in");
    let mut phone = d("phone", super::phone::CANDIDATE, 32);
    let settings = format!("regions {regions:?}");
    phone.validate = Some(Check(super::phone::validator(regions), settings));
    vec![
        d("email", EMAIL, 128),
        d("card", CARD, 40).check(luhn),
        d("iban", IBAN, 48).check(iban_ok),
        d("iban", IBAN_LOWER, 48).check(iban_ok),
        d("phone", PHONE, 32),
        phone,
    ]
}

/// The built-in `prompt_injection` detectors (see [`super::injection`]).
pub(crate) fn injection() -> Vec<Detector> {
    super::injection::detectors()
}

/// Luhn checksum over the digits of `s` (13–19 of them).
pub(crate) fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// IBAN check: length 15–34 without spaces and the ISO 13616 mod-97 remainder of 1 (letters
/// of either case).
pub(crate) fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

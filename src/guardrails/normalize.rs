//! Text normalisation for detection, with a map back to the original text.
//!
//! Normalisation is done one character at a time, so that the normalised form of a prefix is
//! a prefix of the normalised form of the whole text (what the streaming scanner relies on)
//! and every normalised byte knows which original character produced it (what redaction
//! relies on: a match found in normalised text is redacted over the exact original span).
//!
//! Per character, in order: Unicode tag characters that spell ASCII (U+E0020–U+E007E) are
//! read as that ASCII character; zero-width characters, bidi controls, the soft hyphen and the
//! other tag characters are dropped; the character is decomposed (NFKC, or NFKD for the
//! [`Profile::Fold`] profile, which then also drops combining marks so that `ïgnore` reads
//! `ignore`); it is lower-cased and leetspeak digits read as letters ([`Profile::Fold`]
//! only); Cyrillic and Greek look-alikes of
//! Latin letters are folded to the Latin letter; and any run of whitespace becomes one space.
//! Composition across characters is not performed (a base letter followed by a separate
//! combining mark stays two characters), which is the price of the per-character map.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// How a view of the text is derived from the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Profile {
    /// The original text, unchanged.
    Original,
    /// NFKC, invisible characters dropped, homoglyphs folded, whitespace collapsed; case kept.
    Norm,
    /// As `Norm` but NFKD with combining marks dropped, lower-cased, and leetspeak digits
    /// read as letters.
    Fold,
}

impl Profile {
    pub(crate) const ALL: [Profile; 3] = [Profile::Original, Profile::Norm, Profile::Fold];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Characters that render as nothing and are used to split words invisibly.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The Latin letter a Cyrillic or Greek character is commonly used to imitate.
pub(crate) fn homoglyph(c: char) -> char {
    match c {
        // Cyrillic lower case.
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ү' => 'y',
        'ӏ' => 'l',
        // Cyrillic upper case.
        'А' => 'A',
        'В' => 'B',
        'Е' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'У' => 'Y',
        'Х' => 'X',
        'І' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Һ' => 'H',
        'Ү' => 'Y',
        // Greek lower case.
        'α' => 'a',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        // Greek upper case.
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Latin look-alikes outside ASCII that NFKC keeps.
        'ı' => 'i',
        'ȷ' => 'j',
        'ɡ' => 'g',
        'ɑ' => 'a',
        c => c,
    }
}

/// The letter a leetspeak digit stands for (`1gn0r3` reads `ignore`), on the folded view.
pub(crate) fn leet(c: char) -> char {
    match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        c => c,
    }
}

/// A view of a text: the derived text plus the maps between it and the original.
///
/// Buffers are reused between [`View::build`] calls, so a long-lived view allocates only
/// when the text outgrows what it has seen before.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// The derived text.
    pub(crate) text: String,
    /// For each byte of `text`, the start offset of the original character that produced it.
    src: Vec<u32>,
    /// For each original byte offset `b` (and `b == len`): where the output of the character
    /// starting at `b` begins in `text` (inside a character: where the next one's begins).
    at: Vec<u32>,
}

impl View {
    /// Rebuilds the view of `orig` for `profile` (not `Original`, which needs no view).
    pub(crate) fn build(&mut self, orig: &str, profile: Profile) {
        self.text.clear();
        self.src.clear();
        self.at.clear();
        for (i, c) in orig.char_indices() {
            let before = self.text.len() as u32;
            push_normalised(&mut self.text, c, profile);
            self.at.push(before);
            let after = self.text.len() as u32;
            for _ in 1..c.len_utf8() {
                self.at.push(after);
            }
            for _ in before..after {
                self.src.push(i as u32);
            }
        }
        self.at.push(self.text.len() as u32);
    }

    /// Where the output of the original character starting at `b` begins in the view.
    pub(crate) fn at(&self, b: usize) -> usize {
        self.at.get(b).copied().unwrap_or(self.text.len() as u32) as usize
    }

    /// The original byte offset of the character that produced view byte `v`.
    pub(crate) fn src(&self, v: usize) -> usize {
        self.src.get(v).copied().unwrap_or(0) as usize
    }
}

fn push_space(out: &mut String) {
    if !out.ends_with(' ') {
        out.push(' ');
    }
}

/// Whether `c` is a Unicode tag character (U+E0000–U+E007F), invisible when rendered.
pub(crate) fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0000}'..='\u{E007F}')
}

/// The ASCII character a tag character spells (U+E0020–U+E007E → 0x20–0x7E): text hidden
/// this way ("ASCII smuggling") is read by models, so it is scanned as text.
pub(crate) fn tag_ascii(c: char) -> Option<char> {
    match c {
        '\u{E0020}'..='\u{E007E}' => char::from_u32(c as u32 - 0xE0000),
        _ => None,
    }
}

/// Appends the normalised form of `c` to `out`.
pub(crate) fn push_normalised(out: &mut String, c: char, profile: Profile) {
    let c = tag_ascii(c).unwrap_or(c);
    if c.is_ascii() {
        if c.is_ascii_whitespace() {
            push_space(out);
        } else if profile == Profile::Fold {
            out.push(leet(c.to_ascii_lowercase()));
        } else {
            out.push(c);
        }
        return;
    }
    if is_invisible(c) {
        return;
    }
    let emit = |d: char, out: &mut String| {
        if d.is_whitespace() {
            push_space(out);
        } else if profile == Profile::Fold {
            for l in d.to_lowercase() {
                out.push(homoglyph(l));
            }
        } else {
            out.push(homoglyph(d));
        }
    };
    match profile {
        Profile::Fold => {
            for d in std::iter::once(c).nfkd() {
                if !is_combining_mark(d) && !is_invisible(d) {
                    emit(d, out);
                }
            }
        }
        _ => {
            for d in std::iter::once(c).nfkc() {
                if !is_invisible(d) {
                    emit(d, out);
                }
            }
        }
    }
}

/// The normalised form of a whole string (tests and one-off checks).
#[cfg(test)]
pub(crate) fn normalise(s: &str, profile: Profile) -> String {
    let mut out = String::new();
    for c in s.chars() {
        push_normalised(&mut out, c, profile);
    }
    out
}

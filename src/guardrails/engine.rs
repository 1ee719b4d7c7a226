//! The scanning engine shared by input checks, whole-text output checks and the streaming
//! scanner.
//!
//! A scan walks the original text one character position `p` at a time. At each position,
//! every detector runs an *anchored* lazy-DFA search starting there (on its view, see
//! [`super::normalize`]), stepping byte by byte until the automaton is dead, the detector's
//! maximum match length is reached, or the text runs out. A per-view prefilter (all the
//! view's patterns in one automaton) disposes of the common case — no pattern can start
//! here — in a step or two.
//!
//! When the text runs out while an automaton is still alive, a match starting at `p` might
//! still be completed by text not yet seen: the scan stops and reports `p` as the *hold*
//! position. Everything before it is decided and does not depend on what follows, which is
//! why the streaming scanner can release it, and why a text fed in any chunking gives the
//! same result as the whole text at once. At the end of the text (`eof`) nothing is alive.
//!
//! Matches are resolved per position: a `block` match wins, then the longest `redact` match
//! (the scan resumes after it, so matches never overlap), while `log` matches are recorded and
//! the scan resumes after the longest of them.
//!
//! Anchored searches cost up to a detector's maximum length per position, so hostile text
//! (many candidate starts, each kept alive for long) could make a scan quadratic. A whole-text
//! scan therefore has a work budget ([`STEPS_PER_BYTE`] automaton steps per byte): past it, the
//! rest of the text is scanned with each detector's ordinary leftmost-first search, which is
//! linear, and the hits are resolved by the same rules (there, a match is not cut to the
//! detector's maximum length).

use std::sync::{Arc, Mutex};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input};

use super::detectors::{build_dfa, Detector};
use super::normalize::{Profile, View};
use super::Action;
use crate::core::sync::lock;

/// A detector as used by one engine: with the guardrail it belongs to.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) det: Arc<Detector>,
    pub(crate) guardrail: Arc<str>,
    pub(crate) action: Action,
}

/// The detectors that run on one view, and their combined prefilter.
#[derive(Debug)]
struct ViewSet {
    profile: Profile,
    entries: Vec<usize>,
    prefilter: DFA,
    max_len: usize,
}

/// A compiled set of detectors.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) entries: Vec<Entry>,
    views: Vec<ViewSet>,
    /// The longest original span any detector may still be matching: the hold-back bound.
    pub(crate) max_hold: usize,
    /// Scratch spaces not in use. A scan borrows one for its duration, so memory follows the
    /// number of scans running at once, not the number of open streams.
    pool: Mutex<Vec<Scratch>>,
}

/// Scratch spaces kept for reuse per engine.
const POOL_MAX: usize = 64;

/// Automaton steps a whole-text scan may spend per byte before switching to the linear
/// fallback. Ordinary text needs a few; only text built to keep automata alive gets near it.
pub(crate) const STEPS_PER_BYTE: usize = 64;

/// Mutable scratch for scanning with one engine: DFA caches and normalised views.
#[derive(Debug)]
pub(crate) struct Scratch {
    det: Vec<Cache>,
    pre: Vec<Cache>,
    views: [View; 3],
    /// Automaton steps spent by the current scan.
    pub(crate) steps: usize,
}

/// A decided match, in original byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) entry: usize,
    /// The head part of a two-part redaction (see [`Detector::redact_head`]).
    pub(crate) head: bool,
}

/// The result of one scan.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Decided matches before `hold`, in order; at most one block, and it is last.
    pub(crate) hits: Vec<Hit>,
    /// Original offset from which a match may still be in progress (text length if none).
    pub(crate) hold: usize,
    /// The work budget ran out and the rest was scanned by the linear fallback.
    pub(crate) linear: bool,
}

enum Run {
    /// The automaton died or hit its length bound: the longest match end, if any.
    Done(Option<usize>),
    /// The text ran out with the automaton alive.
    Alive,
    /// The lazy DFA gave up (Unicode word boundary next to non-ASCII).
    Quit,
}

/// One anchored search from `s`, fed at most up to `limit` (plus one byte of look-ahead).
fn run(
    dfa: &DFA,
    cache: &mut Cache,
    hay: &[u8],
    s: usize,
    limit: usize,
    eof: bool,
    steps: &mut usize,
) -> Run {
    let before = *steps;
    let r = run_inner(dfa, cache, hay, s, limit, eof, steps);
    if *steps == before {
        *steps += 1;
    }
    r
}

fn run_inner(
    dfa: &DFA,
    cache: &mut Cache,
    hay: &[u8],
    s: usize,
    limit: usize,
    eof: bool,
    steps: &mut usize,
) -> Run {
    let input = Input::new(hay).range(s..).anchored(Anchored::Yes);
    let mut sid = match dfa.start_state_forward(cache, &input) {
        Ok(sid) => sid,
        Err(_) => return Run::Quit,
    };
    let mut last = None;
    for (i, &b) in hay.iter().enumerate().skip(s) {
        *steps += 1;
        sid = match dfa.next_state(cache, sid, b) {
            Ok(sid) => sid,
            Err(_) => return Run::Quit,
        };
        if sid.is_tagged() {
            if sid.is_match() {
                last = Some(i);
            } else if sid.is_dead() {
                return Run::Done(last);
            } else if sid.is_quit() {
                return Run::Quit;
            }
        }
        if i >= limit {
            return Run::Done(last);
        }
    }
    if !eof {
        return Run::Alive;
    }
    match dfa.next_eoi_state(cache, sid) {
        Ok(sid) if sid.is_match() => Run::Done(Some(hay.len())),
        Ok(sid) if sid.is_quit() => Run::Quit,
        Ok(_) => Run::Done(last),
        Err(_) => Run::Quit,
    }
}

impl Engine {
    /// Builds an engine over the given detectors.
    pub(crate) fn new(entries: Vec<Entry>) -> Result<Engine, String> {
        let mut views = Vec::new();
        for profile in Profile::ALL {
            let idx: Vec<usize> = (0..entries.len())
                .filter(|&i| entries[i].det.profile == profile)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let pats: Vec<&str> = idx
                .iter()
                .map(|&i| entries[i].det.pattern.as_str())
                .collect();
            let prefilter = build_dfa(&pats)?;
            let max_len = idx.iter().map(|&i| entries[i].det.max_len).max();
            views.push(ViewSet {
                profile,
                entries: idx,
                prefilter,
                max_len: max_len.unwrap_or(0),
            });
        }
        let max_hold = entries.iter().map(|e| e.det.max_orig).max().unwrap_or(0) + 8;
        Ok(Engine {
            entries,
            views,
            max_hold,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` with a scratch space from the pool (a new one when none is free).
    pub(crate) fn with_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let pooled = lock(&self.pool).pop();
        let mut sc = pooled.unwrap_or_else(|| self.scratch());
        let r = f(&mut sc);
        let mut pool = lock(&self.pool);
        if pool.len() < POOL_MAX {
            pool.push(sc);
        }
        r
    }

    /// Fresh scratch space for this engine.
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch {
            det: self
                .entries
                .iter()
                .map(|e| e.det.dfa.create_cache())
                .collect(),
            pre: self
                .views
                .iter()
                .map(|v| v.prefilter.create_cache())
                .collect(),
            views: Default::default(),
            steps: 0,
        }
    }

    /// Scans `text[from..]`; `text[..from]` is context only (look-behind). With `eof`, the
    /// text is complete and the hold position is `text.len()`.
    pub(crate) fn scan(&self, sc: &mut Scratch, text: &str, from: usize, eof: bool) -> Scan {
        self.build_views(sc, text);
        let mut out = Scan {
            hits: Vec::new(),
            hold: text.len(),
            linear: false,
        };
        sc.steps = 0;
        let budget = STEPS_PER_BYTE
            .saturating_mul(text.len() - from)
            .saturating_add(1 << 16);
        let mut p = from;
        let mut found: Vec<(usize, usize)> = Vec::new();
        while p < text.len() {
            if eof && sc.steps > budget {
                out.linear = true;
                self.scan_linear(sc, text, p, &mut out);
                return out;
            }
            found.clear();
            if self.matches_at(sc, text, p, eof, &mut found).is_err() {
                out.hold = p;
                return out;
            }
            if found.is_empty() {
                p += char_len(text, p);
                continue;
            }
            match self.resolve_at(text, p, &found, &mut out) {
                Some(next) => p = next,
                None => return out,
            }
        }
        out
    }

    /// Derives from `text` every view but the original one that some detector runs on.
    fn build_views(&self, sc: &mut Scratch, text: &str) {
        for v in &self.views {
            if v.profile != Profile::Original {
                sc.views[v.profile.index()].build(text, v.profile);
            }
        }
    }

    /// Pushes onto `found` every validated match starting at original position `p`, as
    /// (entry, original end). `Err(Alive)` when an automaton is still alive at the end of the
    /// text: a match from `p` may need text not yet seen.
    fn matches_at(
        &self,
        sc: &mut Scratch,
        text: &str,
        p: usize,
        eof: bool,
        found: &mut Vec<(usize, usize)>,
    ) -> Result<(), Alive> {
        for (vi, v) in self.views.iter().enumerate() {
            let view = &sc.views[v.profile.index()];
            let Some(at) = Start::new(text, p, v.profile, view, eof) else {
                continue; // this character produces nothing in the view
            };
            let pre_limit = at.s.saturating_add(v.max_len);
            if let Run::Done(None) = run(
                &v.prefilter,
                &mut sc.pre[vi],
                at.hay,
                at.s,
                pre_limit,
                eof,
                &mut sc.steps,
            ) {
                continue;
            }
            for &ei in &v.entries {
                let end = self.detector_end(ei, &at, &mut sc.det[ei], &mut sc.steps)?;
                let Some(end) = end.filter(|&e| e > at.s) else {
                    continue;
                };
                let oend = original_end(at.profile, at.view, text, end);
                if let Some(check) = &self.entries[ei].det.validate {
                    if !check.ok(&text[p..oend]) {
                        continue;
                    }
                }
                found.push((ei, oend));
            }
        }
        Ok(())
    }

    /// Where entry `ei`'s anchored match from `at` ends, in view offsets (`None`: no match),
    /// searched within the detector's length bounds. When the lazy DFA gives up, the
    /// detector's regex decides over the same bounded text.
    fn detector_end(
        &self,
        ei: usize,
        at: &Start,
        cache: &mut Cache,
        steps: &mut usize,
    ) -> Result<Option<usize>, Alive> {
        let det = &self.entries[ei].det;
        let (hay, s) = (at.hay, at.s);
        let mut limit = s.saturating_add(det.max_len);
        if at.profile != Profile::Original && at.p + det.max_orig < at.text.len() {
            limit = limit.min(at.view.at(at.p + det.max_orig));
        }
        match run(&det.dfa, cache, hay, s, limit, at.eof, steps) {
            Run::Done(end) => Ok(end),
            Run::Alive => Err(Alive),
            Run::Quit => {
                let cut = if limit < hay.len() {
                    limit
                } else if at.eof {
                    hay.len()
                } else {
                    return Err(Alive);
                };
                let input = Input::new(&hay[..cut])
                    .range(s..cut)
                    .anchored(Anchored::Yes);
                Ok(det.meta.search(&input).map(|m| m.end()))
            }
        }
    }

    /// Resolves the matches found at `p` (not empty) into `out`. A block is recorded and ends
    /// the scan (`None`). Otherwise the longest redaction wins and the scan resumes after it;
    /// without one, the log matches are recorded and the scan resumes after the longest (at
    /// least one character on).
    fn resolve_at(
        &self,
        text: &str,
        p: usize,
        found: &[(usize, usize)],
        out: &mut Scan,
    ) -> Option<usize> {
        if let Some(&(ei, end)) = found
            .iter()
            .find(|(ei, _)| self.entries[*ei].action == Action::Block)
        {
            out.hits.push(Hit {
                start: p,
                end,
                entry: ei,
                head: false,
            });
            out.hold = p;
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        let mut logged = p;
        for &(ei, end) in found {
            match self.entries[ei].action {
                Action::Redact => {
                    if best.is_none_or(|(_, e)| end > e) {
                        best = Some((ei, end));
                    }
                }
                _ => {
                    logged = logged.max(end);
                    out.hits.push(Hit {
                        start: p,
                        end,
                        entry: ei,
                        head: false,
                    })
                }
            }
        }
        match best {
            Some((ei, end)) => {
                self.push_redaction(ei, text, p, end, out);
                Some(end)
            }
            None => Some(logged.max(p + char_len(text, p))),
        }
    }

    /// The rest of a whole text from `from`, with every detector's leftmost-first search
    /// (linear in the text), resolved like [`Engine::scan`]: at one start a block wins, then
    /// the longest redaction; matches do not overlap.
    fn scan_linear(&self, sc: &mut Scratch, text: &str, from: usize, out: &mut Scan) {
        let all = self.linear_matches(sc, text, from);
        let mut cursor = from;
        let mut i = 0;
        while i < all.len() {
            let start = all[i].0;
            let group_end = all[i..].iter().take_while(|h| h.0 == start).count() + i;
            let group = &all[i..group_end];
            i = group_end;
            if start < cursor {
                continue;
            }
            match self.resolve_group(text, start, group, cursor, out) {
                Some(next) => cursor = next,
                None => return,
            }
        }
    }

    /// Every validated, non-empty match of every detector in `text[from..]` by leftmost-first
    /// search, as (original start, original end, entry), sorted.
    fn linear_matches(&self, sc: &Scratch, text: &str, from: usize) -> Vec<(usize, usize, usize)> {
        let mut all: Vec<(usize, usize, usize)> = Vec::new();
        for v in &self.views {
            let view = &sc.views[v.profile.index()];
            let (hay, s) = match v.profile {
                Profile::Original => (text.as_bytes(), from),
                _ => (view.text.as_bytes(), view.at(from)),
            };
            for &ei in &v.entries {
                let det = &self.entries[ei].det;
                for m in det.meta.find_iter(Input::new(hay).range(s..)) {
                    if m.is_empty() {
                        continue;
                    }
                    let ostart = match v.profile {
                        Profile::Original => m.start(),
                        _ => view.src(m.start()),
                    };
                    let oend = original_end(v.profile, view, text, m.end());
                    if det
                        .validate
                        .as_ref()
                        .is_some_and(|check| !check.ok(&text[ostart..oend]))
                    {
                        continue;
                    }
                    all.push((ostart, oend, ei));
                }
            }
        }
        all.sort_unstable();
        all
    }

    /// Resolves the linear matches starting at `start` (at or after `cursor`) into `out`. A
    /// block is recorded and ends the scan (`None`). Otherwise the longest redaction is
    /// recorded, or else every log match; returns where the next match may start.
    fn resolve_group(
        &self,
        text: &str,
        start: usize,
        group: &[(usize, usize, usize)],
        cursor: usize,
        out: &mut Scan,
    ) -> Option<usize> {
        if let Some(&(_, end, ei)) = group
            .iter()
            .find(|h| self.entries[h.2].action == Action::Block)
        {
            out.hits.push(Hit {
                start,
                end,
                entry: ei,
                head: false,
            });
            out.hold = start;
            return None;
        }
        let mut next = cursor;
        if let Some(&(_, end, ei)) = group
            .iter()
            .filter(|h| self.entries[h.2].action == Action::Redact)
            .max_by_key(|h| h.1)
        {
            self.push_redaction(ei, text, start, end, out);
            next = next.max(end);
        } else {
            for &(_, end, ei) in group {
                out.hits.push(Hit {
                    start,
                    end,
                    entry: ei,
                    head: false,
                });
                next = next.max(end);
            }
        }
        Some(next)
    }
}

/// An automaton was still alive when the text ran out: a match may need text not yet seen.
struct Alive;

/// One start position of a scan: original position `p` and where it falls in one view.
struct Start<'a> {
    /// The original text.
    text: &'a str,
    p: usize,
    profile: Profile,
    view: &'a View,
    /// The bytes the view's automata run on (the original's for [`Profile::Original`]).
    hay: &'a [u8],
    /// `p` in `hay`.
    s: usize,
    eof: bool,
}

impl<'a> Start<'a> {
    /// Position `p` in the view of `profile`; `None` when the character there produces
    /// nothing in the view.
    fn new(text: &'a str, p: usize, profile: Profile, view: &'a View, eof: bool) -> Option<Self> {
        let (hay, s) = match profile {
            Profile::Original => (text.as_bytes(), p),
            _ => {
                let s = view.at(p);
                if view.at(p + char_len(text, p)) == s {
                    return None;
                }
                (view.text.as_bytes(), s)
            }
        };
        Some(Start {
            text,
            p,
            profile,
            view,
            hay,
            s,
            eof,
        })
    }
}

/// The original offset just past a match of the view of `profile` that ends at `end`: past
/// the original character that produced the match's last byte.
fn original_end(profile: Profile, view: &View, text: &str, end: usize) -> usize {
    match profile {
        Profile::Original => end,
        _ => {
            let last = view.src(end - 1);
            last + char_len(text, last)
        }
    }
}

/// The length in bytes of the character at `at` (1 at the end of the text).
fn char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

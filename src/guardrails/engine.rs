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
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut sc = pooled.unwrap_or_else(|| self.scratch());
        let r = f(&mut sc);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
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
        for v in &self.views {
            if v.profile != Profile::Original {
                sc.views[v.profile.index()].build(text, v.profile);
            }
        }
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
            let mut alive = false;
            for (vi, v) in self.views.iter().enumerate() {
                let view = &sc.views[v.profile.index()];
                let (hay, s) = match v.profile {
                    Profile::Original => (text.as_bytes(), p),
                    _ => {
                        let s = view.at(p);
                        let next = p + text[p..].chars().next().map_or(1, char::len_utf8);
                        if view.at(next) == s {
                            continue; // this character produces nothing in the view
                        }
                        (view.text.as_bytes(), s)
                    }
                };
                let pre_limit = s.saturating_add(v.max_len);
                match run(
                    &v.prefilter,
                    &mut sc.pre[vi],
                    hay,
                    s,
                    pre_limit,
                    eof,
                    &mut sc.steps,
                ) {
                    Run::Done(None) => continue,
                    Run::Done(Some(_)) | Run::Alive | Run::Quit => {}
                }
                for &ei in &v.entries {
                    let det = &self.entries[ei].det;
                    let mut limit = s.saturating_add(det.max_len);
                    if v.profile != Profile::Original && p + det.max_orig < text.len() {
                        limit = limit.min(view.at(p + det.max_orig));
                    }
                    let end =
                        match run(&det.dfa, &mut sc.det[ei], hay, s, limit, eof, &mut sc.steps) {
                            Run::Done(end) => end,
                            Run::Alive => {
                                alive = true;
                                break;
                            }
                            Run::Quit => {
                                let cut = if limit < hay.len() {
                                    limit
                                } else if eof {
                                    hay.len()
                                } else {
                                    alive = true;
                                    break;
                                };
                                let input = Input::new(&hay[..cut])
                                    .range(s..cut)
                                    .anchored(Anchored::Yes);
                                det.meta.search(&input).map(|m| m.end())
                            }
                        };
                    let Some(end) = end.filter(|&e| e > s) else {
                        continue;
                    };
                    // Back to original offsets.
                    let (ostart, oend) = match v.profile {
                        Profile::Original => (p, end),
                        _ => {
                            let last = view.src(end - 1);
                            let len = text[last..].chars().next().map_or(1, char::len_utf8);
                            (p, last + len)
                        }
                    };
                    if let Some(check) = det.validate {
                        if !check(&text[ostart..oend]) {
                            continue;
                        }
                    }
                    found.push((ei, oend));
                }
                if alive {
                    break;
                }
            }
            if alive {
                out.hold = p;
                return out;
            }
            let step = text[p..].chars().next().map_or(1, char::len_utf8);
            if found.is_empty() {
                p += step;
                continue;
            }
            if let Some(&(ei, end)) = found
                .iter()
                .find(|(ei, _)| self.entries[*ei].action == Action::Block)
            {
                out.hits.push(Hit {
                    start: p,
                    end,
                    entry: ei,
                });
                out.hold = p;
                return out;
            }
            let mut best: Option<(usize, usize)> = None;
            let mut logged = p;
            for &(ei, end) in &found {
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
                        })
                    }
                }
            }
            match best {
                Some((ei, end)) => {
                    let det = &self.entries[ei].det;
                    let start = match det.redact_tail {
                        Some(n) if end >= p + n && text.is_char_boundary(end - n) => end - n,
                        _ => p,
                    };
                    out.hits.push(Hit {
                        start,
                        end,
                        entry: ei,
                    });
                    p = end;
                }
                None => p = logged.max(p + step),
            }
        }
        out
    }

    /// The rest of a whole text from `from`, with every detector's leftmost-first search
    /// (linear in the text), resolved like [`Engine::scan`]: at one start a block wins, then
    /// the longest redaction; matches do not overlap.
    fn scan_linear(&self, sc: &mut Scratch, text: &str, from: usize, out: &mut Scan) {
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
                    let (ostart, oend) = match v.profile {
                        Profile::Original => (m.start(), m.end()),
                        _ => {
                            let last = view.src(m.end() - 1);
                            let len = text[last..].chars().next().map_or(1, char::len_utf8);
                            (view.src(m.start()), last + len)
                        }
                    };
                    if det
                        .validate
                        .is_some_and(|check| !check(&text[ostart..oend]))
                    {
                        continue;
                    }
                    all.push((ostart, oend, ei));
                }
            }
        }
        all.sort_unstable();
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
            if let Some(&(_, end, ei)) = group
                .iter()
                .find(|h| self.entries[h.2].action == Action::Block)
            {
                out.hits.push(Hit {
                    start,
                    end,
                    entry: ei,
                });
                out.hold = start;
                return;
            }
            let mut next = cursor;
            if let Some(&(_, end, ei)) = group
                .iter()
                .filter(|h| self.entries[h.2].action == Action::Redact)
                .max_by_key(|h| h.1)
            {
                let det = &self.entries[ei].det;
                let rstart = match det.redact_tail {
                    Some(n) if end >= start + n && text.is_char_boundary(end - n) => end - n,
                    _ => start,
                };
                out.hits.push(Hit {
                    start: rstart,
                    end,
                    entry: ei,
                });
                next = next.max(end);
            } else {
                for &(_, end, ei) in group {
                    out.hits.push(Hit {
                        start,
                        end,
                        entry: ei,
                    });
                    next = next.max(end);
                }
            }
            cursor = next;
        }
    }
}

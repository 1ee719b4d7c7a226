//! `sluice guardrails test`: the configured guardrails run over a labelled corpus, offline.
//!
//! A corpus is JSON Lines, one case a line:
//!
//! ```json
//! {"text": "Ignore all previous instructions", "label": "injection/override"}
//! {"text": "How do I ignore a file in git?", "label": "benign"}
//! {"text": "...", "label": "pii/phone", "expect": "detect", "direction": "output"}
//! ```
//!
//! `expect` is `detect` or `pass` (default: `pass` for the label `benign` and labels starting
//! with `benign/`, `detect` otherwise); `direction` is `input` (default: the text is sent as a
//! user message) or `output` (the text is an answer). Every guardrail that applies to the
//! direction runs on its own; a case is detected when any of them blocks, redacts or logs.
//! The report gives, per label, the cases and the share detected (for `pass` labels: the
//! share wrongly detected, false positives), and per guardrail its hits.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::text::Visit;
use super::{Finding, Guardrails, InputApi};

/// Which way a case's text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One corpus line.
#[derive(Debug, Clone)]
pub struct Case {
    /// 1-based line number in the corpus file.
    pub line: usize,
    pub text: String,
    pub label: String,
    /// Whether a guardrail should fire.
    pub detect: bool,
    pub direction: Direction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    text: String,
    label: String,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    direction: Option<String>,
}

/// Parses a JSONL corpus; blank lines are skipped. An error names the line.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let raw: RawCase =
            serde_json::from_str(l).map_err(|e| format!("line {line}: invalid case: {e}"))?;
        let benign = raw.label == "benign" || raw.label.starts_with("benign/");
        let detect = match raw.expect.as_deref() {
            None => !benign,
            Some("detect") => true,
            Some("pass") => false,
            Some(o) => {
                return Err(format!(
                    "line {line}: expect: unknown value {o:?} (detect or pass)"
                ))
            }
        };
        let direction = match raw.direction.as_deref() {
            None | Some("input") => Direction::Input,
            Some("output") => Direction::Output,
            Some(o) => {
                return Err(format!(
                    "line {line}: direction: unknown value {o:?} (input or output)"
                ))
            }
        };
        out.push(Case {
            line,
            text: raw.text,
            label: raw.label,
            detect,
            direction,
        });
    }
    if out.is_empty() {
        return Err("the corpus has no cases".into());
    }
    Ok(out)
}

/// The strings of a one-message chat body.
fn chat_text(v: &mut Value, f: &mut Visit) {
    if let Some(msgs) = v.get_mut("messages").and_then(Value::as_array_mut) {
        for m in msgs {
            if let Some(c) = m.get_mut("content") {
                super::text::content(c, f);
            }
        }
    }
}

/// Per-label counts.
#[derive(Debug, Default, Clone)]
pub struct LabelStats {
    pub n: usize,
    /// Cases where some guardrail fired.
    pub detected: usize,
    /// Whether the label's cases should be detected.
    pub detect: bool,
}

/// A case that went the wrong way.
#[derive(Debug, Clone)]
pub struct Miss {
    pub line: usize,
    pub label: String,
    /// For a false positive: `guardrail/kind` of the first finding.
    pub by: Option<String>,
    pub text: String,
}

/// The result of running a corpus.
#[derive(Debug, Default)]
pub struct Report {
    pub labels: BTreeMap<String, LabelStats>,
    /// Per guardrail: (hits on `detect` cases, hits on `pass` cases).
    pub guardrails: BTreeMap<String, (usize, usize)>,
    pub misses: Vec<Miss>,
    pub false_positives: Vec<Miss>,
}

/// Runs every guardrail of `g` over `cases`.
pub fn run(g: &Guardrails, cases: &[Case]) -> Result<Report, String> {
    let mut report = Report::default();
    let mut single = Vec::new();
    for name in g.names() {
        let p = g
            .policy(&[name.to_string()], "guardrails")
            .map_err(|e| e.to_string())?;
        single.push((name.to_string(), p));
        report.guardrails.insert(name.to_string(), (0, 0));
    }
    for c in cases {
        let mut first: Option<String> = None;
        for (name, p) in &single {
            let findings: Vec<Finding> = match c.direction {
                Direction::Input if p.has_input() => {
                    let mut body = json!({"messages": [{"role": "user", "content": c.text}]});
                    p.check_input(&mut body, InputApi(chat_text)).findings
                }
                Direction::Output if p.has_output() => p.check_output_text(&c.text).findings,
                _ => continue,
            };
            let Some(f) = findings.first() else {
                continue;
            };
            let e = report.guardrails.entry(name.clone()).or_default();
            if c.detect {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if first.is_none() {
                first = Some(format!("{name}/{}", kind_of(f)));
            }
        }
        let s = report.labels.entry(c.label.clone()).or_default();
        s.n += 1;
        s.detect = c.detect;
        if first.is_some() {
            s.detected += 1;
        }
        let miss = Miss {
            line: c.line,
            label: c.label.clone(),
            by: first.clone(),
            text: c.text.clone(),
        };
        match (c.detect, first.is_some()) {
            (true, false) => report.misses.push(miss),
            (false, true) => report.false_positives.push(miss),
            _ => {}
        }
    }
    Ok(report)
}

fn kind_of(f: &Finding) -> String {
    match f {
        Finding::Blocked { kind, .. } => kind.to_string(),
        Finding::Redacted { kinds, .. } | Finding::Logged { kinds, .. } => kinds
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn rate(k: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        k as f64 / n as f64
    }
}

impl Report {
    /// Share of `pass` cases some guardrail fired on.
    pub fn false_positive_rate(&self) -> f64 {
        let (k, n) = self
            .labels
            .values()
            .filter(|s| !s.detect)
            .fold((0, 0), |(k, n), s| (k + s.detected, n + s.n));
        rate(k, n)
    }

    /// Share of `detect` cases some guardrail fired on.
    pub fn detection_rate(&self) -> f64 {
        let (k, n) = self
            .labels
            .values()
            .filter(|s| s.detect)
            .fold((0, 0), |(k, n), s| (k + s.detected, n + s.n));
        rate(k, n)
    }

    /// Labels whose detection rate is below `min` (a fraction), and whether the false
    /// positive rate exceeds `max`: the thresholds not met, as sentences.
    pub fn failures(&self, min: Option<f64>, max: Option<f64>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(min) = min {
            for (label, s) in self.labels.iter().filter(|(_, s)| s.detect) {
                let r = rate(s.detected, s.n);
                if r < min {
                    out.push(format!(
                        "{label}: detection {:.1}% is below {:.1}%",
                        r * 100.0,
                        min * 100.0
                    ));
                }
            }
        }
        if let Some(max) = max {
            let r = self.false_positive_rate();
            if r > max {
                out.push(format!(
                    "false positives {:.2}% exceed {:.2}%",
                    r * 100.0,
                    max * 100.0
                ));
            }
        }
        out
    }

    /// The report as JSON; misses and false positives listed when `show_misses`.
    pub fn to_json(&self, show_misses: bool) -> Value {
        let labels: Vec<Value> = self
            .labels
            .iter()
            .map(|(l, s)| {
                json!({"label": l, "expect": if s.detect { "detect" } else { "pass" },
                       "n": s.n, "detected": s.detected, "rate": rate(s.detected, s.n)})
            })
            .collect();
        let guardrails: Vec<Value> = self
            .guardrails
            .iter()
            .map(|(g, (h, f))| json!({"name": g, "hits": h, "false_positives": f}))
            .collect();
        let list = |v: &[Miss]| -> Vec<Value> {
            v.iter()
                .map(|m| json!({"line": m.line, "label": m.label, "by": m.by, "text": m.text}))
                .collect()
        };
        let mut out = json!({
            "labels": labels,
            "guardrails": guardrails,
            "detection_rate": self.detection_rate(),
            "false_positive_rate": self.false_positive_rate(),
            "misses": self.misses.len(),
            "false_positives": self.false_positives.len(),
        });
        if show_misses {
            out["missed"] = Value::Array(list(&self.misses));
            out["false_positive_cases"] = Value::Array(list(&self.false_positives));
        }
        out
    }

    /// The report as text tables.
    pub fn to_table(&self, show_misses: bool) -> String {
        let mut s = String::new();
        let w = self
            .labels
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        s.push_str(&format!(
            "{:<w$}  {:>6}  {:>6}  {:>8}  {:>7}\n",
            "LABEL", "EXPECT", "N", "DETECTED", "RATE"
        ));
        for (l, st) in &self.labels {
            s.push_str(&format!(
                "{:<w$}  {:>6}  {:>6}  {:>8}  {:>6.1}%\n",
                l,
                if st.detect { "detect" } else { "pass" },
                st.n,
                st.detected,
                rate(st.detected, st.n) * 100.0
            ));
        }
        s.push_str(&format!(
            "\ndetection {:.1}%, false positives {:.2}%\n\n",
            self.detection_rate() * 100.0,
            self.false_positive_rate() * 100.0
        ));
        let gw = self
            .guardrails
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(9)
            .max(9);
        s.push_str(&format!(
            "{:<gw$}  {:>6}  {:>15}\n",
            "GUARDRAIL", "HITS", "FALSE_POSITIVES"
        ));
        for (g, (h, f)) in &self.guardrails {
            s.push_str(&format!("{g:<gw$}  {h:>6}  {f:>15}\n"));
        }
        if show_misses {
            for (title, list) in [
                ("missed", &self.misses),
                ("false positives", &self.false_positives),
            ] {
                s.push_str(&format!("\n{title} ({}):\n", list.len()));
                for m in list.iter() {
                    let by =
                        m.by.as_deref()
                            .map(|b| format!(" [{b}]"))
                            .unwrap_or_default();
                    let text: String = m.text.chars().take(160).collect();
                    s.push_str(&format!(
                        "  line {} {}{by}: {}\n",
                        m.line,
                        m.label,
                        text.replace('\n', "\\n")
                    ));
                }
            }
        }
        s
    }
}

//! Usage queries, shared by the admin API (`GET /usage?since=24h&by=key,model`) and the CLI
//! (`sluice usage --since 24h --by key,model --format json`): the groups, the time range and
//! the output formats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// A field to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Key,
    /// The team a request was made for (`team` of the managed key that authenticated it).
    Team,
    Model,
    Provider,
    Day,
    Hour,
}

impl Group {
    pub const ALL: [(&'static str, Group); 6] = [
        ("key", Group::Key),
        ("team", Group::Team),
        ("model", Group::Model),
        ("provider", Group::Provider),
        ("day", Group::Day),
        ("hour", Group::Hour),
    ];

    pub fn name(self) -> &'static str {
        Group::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map_or("", |(n, _)| n)
    }
}

/// `key,model` → the groups; an unknown name is an error naming the known ones.
pub fn parse_groups(s: &str) -> Result<Vec<Group>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let g = Group::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| *g)
            .ok_or_else(|| {
                format!("unknown group {name:?} (known: key, team, model, provider, day, hour)")
            })?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// `24h`, `7d`, `30m`, `90s` → the Unix time in milliseconds that long ago.
pub fn parse_since(s: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("invalid duration {s:?} (e.g. 24h, 7d, 30m)"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Ok(now.saturating_sub(d).as_millis() as u64)
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The group fields' values, in the order asked for.
    pub groups: Vec<String>,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

const TOTALS: [&str; 5] = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
];

fn totals(r: &Row) -> [Value; 5] {
    [
        Value::from(r.requests),
        Value::from(r.errors),
        Value::from(r.prompt_tokens),
        Value::from(r.completion_tokens),
        Value::from((r.cost_usd * 1e6).round() / 1e6),
    ]
}

/// The JSON array: one object per group with its fields and totals.
pub fn to_json(by: &[Group], rows: &[Row]) -> Value {
    let items = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (g, v) in by.iter().zip(&r.groups) {
                m.insert(g.name().into(), Value::from(v.as_str()));
            }
            for (name, v) in TOTALS.iter().zip(totals(r)) {
                m.insert((*name).into(), v);
            }
            Value::Object(m)
        })
        .collect();
    Value::Array(items)
}

/// CSV with a header line; fields quoted when they need it.
pub fn to_csv(by: &[Group], rows: &[Row]) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut header: Vec<&str> = by.iter().map(|g| g.name()).collect();
    header.extend(TOTALS);
    let mut out = header.join(",") + "\n";
    for r in rows {
        let mut fields: Vec<String> = r.groups.iter().map(|g| quote(g)).collect();
        fields.extend(totals(r).iter().map(|v| v.to_string()));
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// An aligned text table.
pub fn to_table(by: &[Group], rows: &[Row]) -> String {
    let mut header: Vec<String> = by.iter().map(|g| g.name().to_string()).collect();
    header.extend(TOTALS.iter().map(|s| s.to_string()));
    let mut lines = vec![header];
    for r in rows {
        let mut fields = r.groups.clone();
        fields.extend(totals(r).iter().map(|v| v.to_string()));
        lines.push(fields);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(groups: &[&str], requests: u64, cost: f64) -> Row {
        Row {
            groups: groups.iter().map(|s| s.to_string()).collect(),
            requests,
            errors: 1,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_usd: cost,
        }
    }

    #[test]
    fn groups_and_since_parse_with_clear_errors() {
        assert_eq!(
            parse_groups("key, model,key").unwrap(),
            vec![Group::Key, Group::Model]
        );
        assert_eq!(parse_groups("team,key").unwrap(), [Group::Team, Group::Key]);
        assert!(parse_groups("tenant")
            .unwrap_err()
            .contains("known: key, team"));
        assert!(parse_since("7d").unwrap() > 0);
        assert!(parse_since("soon").unwrap_err().contains("24h"));
    }

    #[test]
    fn json_csv_and_table_carry_the_same_rows() {
        let by = [Group::Key, Group::Model];
        let rows = [
            row(&["team-a", "gpt"], 3, 0.0012345678),
            row(&["b,c", "m"], 1, 0.0),
        ];
        let v = to_json(&by, &rows);
        assert_eq!(v[0]["key"], "team-a");
        assert_eq!(v[0]["requests"], 3);
        assert_eq!(v[0]["cost_usd"], 0.001235);
        let csv = to_csv(&by, &rows);
        assert!(
            csv.starts_with("key,model,requests,errors,prompt_tokens,completion_tokens,cost_usd\n")
        );
        assert!(csv.contains("\"b,c\",m,1,1,10,5,0.0\n"), "{csv}");
        let table = to_table(&by, &rows);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(1).unwrap().starts_with("team-a  gpt"));
    }
}

//! Clocks, UTC calendar periods and OpenAI-style duration strings.
//!
//! Budgets follow the UTC calendar: a day runs from 00:00:00 UTC to the next midnight, a month
//! from the 1st at 00:00:00 UTC to the 1st of the next month. The date arithmetic is done here
//! on Unix seconds (the proleptic Gregorian calendar, as `date -u` does) so no date crate is
//! needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the memory backend reads the time. Tests use a manual clock so that no test waits
/// for a refill.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// Monotonic time for buckets, the system clock for calendar periods.
    System { start: Instant, start_unix_us: u64 },
    /// Microseconds since the Unix epoch, set by the test; both clocks read it.
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub(crate) fn system() -> Self {
        Clock::System {
            start: Instant::now(),
            start_unix_us: unix_now_us(),
        }
    }

    /// Microseconds on a clock that never goes backwards (buckets).
    pub(crate) fn mono_us(&self) -> u64 {
        match self {
            Clock::System {
                start,
                start_unix_us,
            } => start_unix_us.saturating_add(start.elapsed().as_micros() as u64),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Microseconds since the Unix epoch (calendar periods).
    pub(crate) fn unix_us(&self) -> u64 {
        match self {
            Clock::System { .. } => unix_now_us(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// The system clock in microseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31). Howard Hinnant's
/// `civil_from_days`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1..=12, day 1..=31) → days since 1970-01-01. Howard Hinnant's
/// `days_from_civil`.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Day,
    Month,
}

/// The period that contains `unix_secs`: its number (days or months since 1970-01), its label
/// (`2025-03-14` or `2025-03`) and the seconds left until it ends.
pub(crate) fn period_at(period: Period, unix_secs: u64) -> (u64, String, u64) {
    let day = (unix_secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(day);
    match period {
        Period::Day => {
            let end = (day as u64 + 1) * 86_400;
            (day as u64, format!("{y:04}-{m:02}-{d:02}"), end - unix_secs)
        }
        Period::Month => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = days_from_civil(ny, nm, 1) as u64 * 86_400;
            let index = (y - 1970) * 12 + i64::from(m) - 1;
            (
                index.max(0) as u64,
                format!("{y:04}-{m:02}"),
                end.saturating_sub(unix_secs),
            )
        }
    }
}

/// Formats a duration the way OpenAI's `x-ratelimit-reset-*` headers do (Go's
/// `time.Duration` notation, to the millisecond): `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub fn format_reset(d: Duration) -> String {
    // Round up: a client that waits this long finds the capacity there.
    let ms = d.as_micros().div_ceil(1000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let f = format!("{frac:03}");
        out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
    }
    out
}

/// The Unix second a budget period began: today's or this month's first second (UTC).
pub fn period_start(monthly: bool, unix_secs: u64) -> u64 {
    let day = (unix_secs / 86_400) as i64;
    if !monthly {
        return day as u64 * 86_400;
    }
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1).max(0) as u64 * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_strings_match_openai() {
        let ms = Duration::from_millis;
        assert_eq!(format_reset(Duration::ZERO), "0s");
        assert_eq!(format_reset(ms(20)), "20ms");
        assert_eq!(format_reset(Duration::from_micros(19_001)), "20ms");
        assert_eq!(format_reset(ms(1000)), "1s");
        assert_eq!(format_reset(ms(1500)), "1.5s");
        assert_eq!(format_reset(ms(17_142)), "17.142s");
        assert_eq!(format_reset(ms(360_000)), "6m0s");
        assert_eq!(format_reset(ms(3_723_000)), "1h2m3s");
        assert_eq!(format_reset(ms(3_600_000)), "1h0m0s");
    }

    #[test]
    fn calendar_round_trips() {
        for day in [-1_000_000i64, -1, 0, 1, 59, 365, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024-02-29 is day 19782.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn periods_end_at_utc_boundaries() {
        // 2024-02-29T23:00:00Z
        let t = 19_782 * 86_400 + 23 * 3600;
        let (_, label, left) = period_at(Period::Day, t);
        assert_eq!(label, "2024-02-29");
        assert_eq!(left, 3600);
        let (idx, label, left) = period_at(Period::Month, t);
        assert_eq!(label, "2024-02");
        assert_eq!(idx, 54 * 12 + 1);
        assert_eq!(left, 3600, "March starts an hour later");
        // 2024-12-31T00:00:00Z → January 2025
        let t = days_from_civil(2024, 12, 31) as u64 * 86_400;
        let (_, label, left) = period_at(Period::Month, t);
        assert_eq!(label, "2024-12");
        assert_eq!(left, 86_400);
    }

    #[test]
    fn period_starts() {
        // 2026-11-29T14:10:00Z
        let t = (days_from_civil(2026, 11, 29) as u64) * 86_400 + 14 * 3600 + 600;
        assert_eq!(
            period_start(false, t),
            days_from_civil(2026, 11, 29) as u64 * 86_400
        );
        assert_eq!(
            period_start(true, t),
            days_from_civil(2026, 11, 1) as u64 * 86_400
        );
    }
}

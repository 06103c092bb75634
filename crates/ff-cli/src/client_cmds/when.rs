//! Times and durations on the command line. A duration is a sequence of
//! `<number><unit>` with units `ms`, `s`, `m`, `h`, `d` (`250ms`, `90s`,
//! `1h30m`); a time is RFC 3339 (`2026-12-03T12:00:00Z`, an offset, or none
//! for UTC, as `ff` prints times) or epoch milliseconds. A duration where a
//! time is expected means that long from now, by this machine's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use ff_core::Millis;

use super::table::{civil_from_days, days_from_civil};

/// A `--run-at` or `--deadline` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This many milliseconds from now.
    In(u64),
    /// Epoch milliseconds.
    At(Millis),
}

impl When {
    /// The epoch milliseconds this names, `now` being the present.
    pub fn resolve(self, now: Millis) -> Millis {
        match self {
            Self::In(ms) => now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
            Self::At(at) => at,
        }
    }
}

/// This machine's clock, in epoch milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Epoch milliseconds of 2000-01-01: a smaller number is more likely
/// seconds, or a duration without its unit, than a time.
const EPOCH_MS_FLOOR: i64 = 946_684_800_000;

/// Parses a time or a duration from now.
pub fn parse_when(text: &str) -> Result<When, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text.parse().map_err(|_| format!("`{text}` is too large"))?;
        if ms < EPOCH_MS_FLOOR {
            return Err(format!(
                "`{text}` is before 2000 as epoch milliseconds; give a unit for a duration (`{text}s`) or milliseconds since 1970"
            ));
        }
        return Ok(When::At(ms));
    }
    if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
        return parse_rfc3339(text).map(When::At);
    }
    parse_duration_ms(text).map(When::In).map_err(|_| {
        format!("`{text}` is neither a time (2026-12-03T12:00:00Z, epoch ms) nor a duration (90s, 5m, 1h30m)")
    })
}

/// Parses a duration into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration (e.g. 250ms, 90s, 5m, 1h30m, 2d)");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|±HH:MM]` into epoch milliseconds; no
/// offset means UTC.
fn parse_rfc3339(text: &str) -> Result<Millis, String> {
    let bad = |why: &str| format!("`{text}` is not a time ({why}); e.g. 2026-12-03T12:00:00Z");
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits"));
        }
        s.parse().map_err(|_| bad("expected digits"))
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, "00:00"),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(mo), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the date is YYYY-MM-DD"));
    };
    let (year, month, day) = (num(y)?, num(mo)?, num(d)?);
    // Four-digit years keep the arithmetic below far from overflowing.
    if !(1970..=9999).contains(&year) {
        return Err(bad("the year is 1970..=9999"));
    }
    let (month, day) = (
        u32::try_from(month).map_err(|_| bad("month"))?,
        u32::try_from(day).map_err(|_| bad("day"))?,
    );
    let days = days_from_civil(year, month, day);
    if !(1..=12).contains(&month) || civil_from_days(days) != (year, month, day) {
        return Err(bad("no such date"));
    }
    let (clock, offset_ms) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, offset) = (&time[..at], &time[at..]);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..]
            .split_once(':')
            .ok_or_else(|| bad("the offset is ±HH:MM"))?;
        (clock, sign * (num(h)? * 3_600_000 + num(m)? * 60_000))
    } else {
        (time, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut fields = hms.split(':');
    let hour = num(fields.next().unwrap_or(""))?;
    let minute = num(fields.next().ok_or_else(|| bad("the time is HH:MM[:SS]"))?)?;
    let second = fields.next().map(num).transpose()?.unwrap_or(0);
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(bad("the time is HH:MM[:SS]"));
    }
    let millis = if frac.is_empty() {
        0
    } else {
        // Milliseconds are what is stored: further digits are dropped.
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        num(&digits)?
    };
    Ok(
        days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1_000 + millis
            - offset_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("5x").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("99999999999999999999s").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_when("2024-02-29T12:34:56.789Z"),
            Ok(When::At(1_709_210_096_789))
        );
        assert_eq!(
            parse_when("2024-02-29 12:34:56.789"),
            Ok(When::At(1_709_210_096_789))
        );
        assert_eq!(
            parse_when("2024-02-29T14:34:56.789+02:00"),
            Ok(When::At(1_709_210_096_789))
        );
        assert_eq!(parse_when("1709210096789"), Ok(When::At(1_709_210_096_789)));
        assert_eq!(parse_when("10m"), Ok(When::In(600_000)));
        assert_eq!(When::In(5).resolve(10), 15);
        assert!(parse_when("2023-02-29T00:00:00Z").is_err());
        assert!(parse_when("2024-02-29T25:00:00Z").is_err());
        assert!(
            parse_when("1700").is_err(),
            "seconds, or a unitless duration"
        );
        assert!(parse_when("soon").is_err());
        assert!(parse_when("99999999999-01-01T00:00:00Z").is_err());
        assert!(parse_when("2024-02-29T12:00:00+").is_err());
        assert!(parse_when("2024-0é-29T12:00:00Z").is_err());
    }
}

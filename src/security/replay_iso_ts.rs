//! The freshness check's timestamp parser: the subset of CPython 3.11
//! `datetime.fromisoformat` any z4j component can emit, with its rules.
//!
//! Accepted: a calendar date `YYYY-MM-DD` or `YYYYMMDD`; any single separator
//! character; `HH[:MM[:SS[.f…]]]` or `HH[MM[SS[.f…]]]` (`.` or `,` before
//! the fraction; digits past the sixth are truncated); then `Z` or an offset
//! `±HH[:MM[:SS[.ffffff]]]` / `±HHMM[SS]` strictly inside ±24 h.
//! Not accepted although 3.11 would: ISO week dates and fractions of hours or
//! minutes; no z4j component produces them. A time without offset is naive.

use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsError {
    /// Not an ISO-8601 timestamp this parser accepts.
    Invalid,
    /// Valid, but without a UTC offset (Python's "naive" datetime).
    Naive,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Parses `text` into microseconds since the Unix epoch, in UTC.
pub fn parse_aware_micros(text: &str) -> Result<i64, TsError> {
    let bytes = text.as_bytes();
    let extended = bytes.get(4) == Some(&b'-');
    let (year, month, day, date_len) = if extended {
        if bytes.get(7) != Some(&b'-') {
            return Err(TsError::Invalid);
        }
        (digits(bytes, 0, 4)?, digits(bytes, 5, 2)?, digits(bytes, 8, 2)?, 10)
    } else {
        (digits(bytes, 0, 4)?, digits(bytes, 4, 2)?, digits(bytes, 6, 2)?, 8)
    };
    if year == 0 {
        return Err(TsError::Invalid);
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(TsError::Invalid)?;

    let mut rest = text.get(date_len..).ok_or(TsError::Invalid)?.chars();
    if rest.next().is_none() {
        // A bare date is midnight without an offset.
        return Err(TsError::Naive);
    }
    let time = rest.as_str();
    let (clock, zone) = time.split_at(time.find(['Z', '+', '-']).unwrap_or(time.len()));
    let (hour, minute, second, micros) = parse_clock(clock.as_bytes())?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(TsError::Invalid);
    }
    let offset = match zone.as_bytes().split_first() {
        None => return Err(TsError::Naive),
        Some((b'Z', [])) => 0,
        Some((sign @ (b'+' | b'-'), rest)) => {
            let (h, m, s, us) = parse_clock(rest)?;
            let total = ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1_000_000 + i64::from(us);
            if total >= MICROS_PER_DAY || m > 59 || s > 59 {
                return Err(TsError::Invalid);
            }
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        Some(_) => return Err(TsError::Invalid),
    };
    let local =
        date.and_hms_micro_opt(hour, minute, second, micros).ok_or(TsError::Invalid)?.and_utc().timestamp_micros();
    Ok(local - offset)
}

/// Exactly `n` ASCII digits at `at`.
fn digits(bytes: &[u8], at: usize, n: usize) -> Result<u32, TsError> {
    let chunk = bytes.get(at..at + n).ok_or(TsError::Invalid)?;
    chunk.iter().try_fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u32::from(b - b'0'))
        } else {
            Err(TsError::Invalid)
        }
    })
}

/// `HH[:MM[:SS[.f…]]]` or `HH[MM[SS[.f…]]]`, consuming all of `b`. The
/// first separator decides between the extended and the basic form.
fn parse_clock(b: &[u8]) -> Result<(u32, u32, u32, u32), TsError> {
    let hour = digits(b, 0, 2)?;
    if b.len() == 2 {
        return Ok((hour, 0, 0, 0));
    }
    let sep = usize::from(b.get(2) == Some(&b':'));
    let minute = digits(b, 2 + sep, 2)?;
    let mut pos = 4 + sep;
    if pos == b.len() {
        return Ok((hour, minute, 0, 0));
    }
    if sep == 1 {
        if b.get(pos) != Some(&b':') {
            return Err(TsError::Invalid);
        }
        pos += 1;
    }
    let second = digits(b, pos, 2)?;
    let micros = match b.get(pos + 2..) {
        None | Some([]) => 0,
        Some([b'.' | b',', frac @ ..]) if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
            // Python keeps six digits and drops the rest (no rounding).
            let kept = frac.len().min(6);
            let value = frac.iter().take(6).fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            value * 10u32.pow((6 - kept) as u32)
        }
        Some(_) => return Err(TsError::Invalid),
    };
    Ok((hour, minute, second, micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn micros(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: i64) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().timestamp_micros() + us
    }

    #[test]
    fn accepted_forms() {
        let base = micros(2026, 5, 11, 10, 0, 0, 0);
        let cases: &[(&str, i64)] = &[
            ("2026-05-11T10:00:00.123456Z", base + 123_456),
            ("2026-05-11T10:00:00Z", base),
            ("2026-05-11T10:00:00+00:00", base),
            ("2026-05-11T10:00:00.5+00:00", base + 500_000),
            ("2026-05-11T10:00:00,25Z", base + 250_000),
            ("2026-05-11T10:00:00.123456789Z", base + 123_456),
            ("2026-05-11T10:00:00.1234569Z", base + 123_456),
            ("2026-05-11 10:00:00Z", base),
            ("2026-05-11é10:00:00Z", base),
            ("2026-05-11T12:30:00+02:30", base),
            ("2026-05-11T07:00:00-03:00", base),
            ("2026-05-11T10:00:00+0000", base),
            ("2026-05-11T11:00:00+01", base),
            ("2026-05-11T10:00:01+00:00:01", base),
            ("2026-05-11T10:00:00.5+00:00:00.5", base),
            ("2026-05-11T10Z", base),
            ("2026-05-11T10:00Z", base),
            ("20260511T100000Z", base),
            ("20260511T1000Z", base),
            ("2026-05-11T23:59:59.999999+23:59", micros(2026, 5, 11, 0, 0, 59, 999_999)),
            ("2026-05-11T00:00:00-23:59:59.999999", micros(2026, 5, 11, 23, 59, 59, 999_999)),
            ("0001-01-01T00:00:00Z", micros(1, 1, 1, 0, 0, 0, 0)),
            ("9999-12-31T23:59:59.999999Z", micros(9999, 12, 31, 23, 59, 59, 999_999)),
            ("2024-02-29T00:00:00Z", micros(2024, 2, 29, 0, 0, 0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_aware_micros(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn naive_timestamps() {
        for text in ["2026-05-11T10:00:00", "2026-05-11T10:00:00.123456", "2026-05-11", "20260511", "2026-05-11 10:00"]
        {
            assert_eq!(parse_aware_micros(text), Err(TsError::Naive), "{text}");
        }
    }

    #[test]
    fn invalid_timestamps() {
        for text in [
            "",
            "2026",
            "garbage",
            "2026-5-11T10:00:00Z",
            "2026-05-11T",
            "2026-05-11T1Z",
            "2026-05-11T24:00:00Z",
            "2026-05-11T10:60:00Z",
            "2026-05-11T10:00:60Z",
            "2026-02-30T10:00:00Z",
            "2026-13-01T10:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-05-11T10:00:00z",
            "2026-05-11T10:00:00ZZ",
            "2026-05-11T10:00:00Z+00:00",
            "2026-05-11T10:00:00+24:00",
            "2026-05-11T10:00:00+00:60",
            "2026-05-11T10:00:00.Z",
            "2026-05-11T10:00:00.12a3Z",
            "2026-05-11T10:0000Z",
            "2026-05-11T1000:00Z",
            "2026-05-11T10:00:00 Z",
            "2026-W19-1T10:00:00Z",
            "2026-05-11T10.5Z",
            "2026-05-11T10:00:00+",
            "2026-05-11T10:00:00+1",
            "٢٠٢٦-05-11T10:00:00Z",
            "2026-05-11T10:00:00+00:00:00:00",
        ] {
            assert_eq!(parse_aware_micros(text), Err(TsError::Invalid), "{text}");
        }
    }
}

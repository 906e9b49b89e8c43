//! Canonical writer: the bytes of CPython 3.11 `json.dumps(obj,
//! sort_keys=True, separators=(",", ":"), ensure_ascii=False,
//! allow_nan=False).encode("utf-8")`.
//!
//! Everything is appended to one caller-owned `Vec<u8>`; the only per-value
//! work besides copying is float formatting, done on the stack.

use super::{Value, MAX_DEPTH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// `allow_nan=False`: Python raises `ValueError` for NaN and infinities.
    #[error("NaN or infinite float has no canonical form")]
    NonFinite,
    #[error("value nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Canonical bytes of `value` as a new vector.
pub fn to_canonical_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical bytes of `value` to `out`. On error `out` holds a
/// partial write and must be discarded.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    write_value(value, out, MAX_DEPTH)
}

/// `depth_left` containers may still be opened; callers that write an outer
/// object by hand pass `MAX_DEPTH - 1` for its members.
pub(crate) fn write_value(value: &Value, out: &mut Vec<u8>, depth_left: usize) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_i64(out, *i),
        Value::BigInt(b) => out.extend_from_slice(b.as_str().as_bytes()),
        Value::Float(f) => write_float(out, *f)?,
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            let inner = depth_left.checked_sub(1).ok_or(CanonicalError::TooDeep)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, inner)?;
            }
            out.push(b']');
        }
        Value::Object(obj) => {
            let inner = depth_left.checked_sub(1).ok_or(CanonicalError::TooDeep)?;
            out.push(b'{');
            for (i, (key, item)) in obj.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(item, out, inner)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// The letter after the backslash for Python's short escapes, `u` for the
/// other control characters that become `\u00xx`.
fn escape_letter(b: u8) -> u8 {
    match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0a => b'n',
        0x0c => b'f',
        0x0d => b'r',
        _ => b'u',
    }
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string with exactly Python's escapes:
/// `\" \\ \b \f \n \r \t`, `\u00xx` (lowercase hex) for other control
/// characters, and raw UTF-8 for everything else including `/`, DEL and
/// U+2028/U+2029.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    out.reserve(rest.len() + 2);
    out.push(b'"');
    loop {
        let plain = plain_len(rest);
        let (run, tail) = rest.split_at_checked(plain).unwrap_or((rest, &[]));
        out.extend_from_slice(run);
        let Some((&b, after)) = tail.split_first() else {
            break;
        };
        let class = escape_letter(b);
        if class == b'u' {
            let hi = HEX_LOWER.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            let lo = HEX_LOWER.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(&[b'\\', class]);
        }
        rest = after;
    }
    out.push(b'"');
}

/// Length of the prefix of `bytes` that a JSON string can hold verbatim:
/// no control character, quote or backslash. Bytes >= 0x80 belong to UTF-8
/// sequences and are plain (`ensure_ascii=False`).
///
/// Strings dominate frame bytes, so this scans eight bytes per step with the
/// classic SWAR tests ("has a byte < n", "has a zero byte"), which are exact
/// as yes/no answers; the byte loop then finds the position.
pub(super) fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            break;
        }
        skipped += 8;
    }
    let tail = bytes.get(skipped..).unwrap_or_default();
    skipped + tail.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').unwrap_or(tail.len())
}

/// Appends a decimal integer.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    let mut buf = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut start = buf.len();
    // u64::MAX has 20 digits, so the buffer never runs out.
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(start..).unwrap_or_default());
}

/// Appends `value` formatted like Python's `repr(float)`.
///
/// Ryu gives the shortest round-tripping digits (the same digits Python's
/// dtoa mode 0 picks); we only re-lay them out with Python's rule: with the
/// value written as `d.ddd × 10^e`, use positional notation when
/// `-4 <= e < 16` (appending `.0` to integral values), otherwise
/// `d[.ddd]e±XX` with at least two exponent digits.
pub fn write_float(out: &mut Vec<u8>, value: f64) -> Result<(), CanonicalError> {
    if !value.is_finite() {
        return Err(CanonicalError::NonFinite);
    }
    if value == 0.0 {
        out.extend_from_slice(if value.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return Ok(());
    }
    let mut ryu_buf = ryu::Buffer::new();
    let text = ryu_buf.format_finite(value).as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exp) = match text.iter().position(|&b| b == b'e') {
        Some(i) => {
            let (m, e) = text.split_at(i);
            (m, parse_exponent(e.get(1..).unwrap_or_default()))
        }
        None => (text, 0),
    };

    // Collect the significant digits and where the decimal point falls:
    // value = 0.DIGITS × 10^point.
    let mut digits = [0u8; 32];
    let mut count = 0usize;
    let mut int_len = 0i32;
    let mut seen_dot = false;
    let mut leading_zeros = 0i32;
    for &b in mantissa {
        if b == b'.' {
            seen_dot = true;
            continue;
        }
        if !seen_dot {
            int_len += 1;
        }
        if count == 0 && b == b'0' {
            leading_zeros += 1;
            continue;
        }
        if let Some(slot) = digits.get_mut(count) {
            *slot = b;
            count += 1;
        }
    }
    let mut sig = digits.get(..count).unwrap_or_default();
    while let Some((b'0', rest)) = sig.split_last() {
        sig = rest;
    }
    let point = int_len + exp - leading_zeros;

    if negative {
        out.push(b'-');
    }
    if (-3..=16).contains(&point) {
        if point <= 0 {
            out.extend_from_slice(b"0.");
            push_zeros(out, point.unsigned_abs());
            out.extend_from_slice(sig);
        } else {
            let point = point.unsigned_abs() as usize;
            match sig.split_at_checked(point) {
                Some((int_part, frac)) if !frac.is_empty() => {
                    out.extend_from_slice(int_part);
                    out.push(b'.');
                    out.extend_from_slice(frac);
                }
                _ => {
                    out.extend_from_slice(sig);
                    push_zeros(out, (point.saturating_sub(sig.len())) as u32);
                    out.extend_from_slice(b".0");
                }
            }
        }
    } else {
        let (first, rest) = sig.split_first().unwrap_or((&b'0', &[]));
        out.push(*first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        let e = point - 1;
        out.extend_from_slice(if e < 0 { b"e-" } else { b"e+" });
        let magnitude = e.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        write_i64(out, i64::from(magnitude));
    }
    Ok(())
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    // Ryu exponents have at most three digits.
    let magnitude = digits.iter().fold(0i32, |acc, &d| acc * 10 + i32::from(d.wrapping_sub(b'0')));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

fn push_zeros(out: &mut Vec<u8>, n: u32) {
    out.extend(std::iter::repeat_n(b'0', n as usize));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::canonical_json::{parse, Object};

    fn float(f: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn string(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn python_float_repr_table_from_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/z4j-wire-vectors.json")).unwrap();
        let table = vectors["python_float_repr_table"].as_array().unwrap();
        assert_eq!(table.len(), 16);
        for row in table {
            let repr = row["value_repr"].as_str().unwrap();
            let want = row["canonical"].as_str().unwrap();
            let parsed: f64 = repr.parse().unwrap();
            assert_eq!(float(parsed), want, "{repr}");
            // Through our own parser as well, as a float token on the wire.
            let wire = if repr.contains(['.', 'e']) { repr.to_owned() } else { format!("{repr}.0") };
            let v = parse(wire.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(to_canonical_vec(&v).unwrap()).unwrap(), want);
        }
    }

    #[test]
    fn more_python_float_reprs() {
        let cases: &[(f64, &str)] = &[
            (0.001747, "0.001747"),
            (0.223456, "0.223456"),
            (1e-4, "0.0001"),
            (1.5e-4, "0.00015"),
            (9.999e-5, "9.999e-05"),
            (123.0, "123.0"),
            (-2.5, "-2.5"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.5e16, "1.5e+16"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123456.789e3, "123456789.0"),
            (-1e-7, "-1e-07"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (4.35, "4.35"),
            (12345678901234567.0, "1.2345678901234568e+16"),
        ];
        for (f, want) in cases {
            assert_eq!(float(*f), *want, "{f:e}");
        }
        assert_eq!(float(-0.0), "-0.0");
        let mut out = Vec::new();
        assert_eq!(write_float(&mut out, f64::NAN), Err(CanonicalError::NonFinite));
        assert_eq!(write_float(&mut out, f64::INFINITY), Err(CanonicalError::NonFinite));
        assert_eq!(write_float(&mut out, f64::NEG_INFINITY), Err(CanonicalError::NonFinite));
    }

    #[test]
    fn float_output_round_trips() {
        // A spread of magnitudes, including subnormals and both layouts.
        let mut x = 5e-324f64;
        while x.is_finite() {
            for f in [x, -x, x * 1.7, x / 3.1] {
                if f.is_finite() && f != 0.0 {
                    let s = float(f);
                    assert_eq!(s.parse::<f64>().unwrap(), f, "{s}");
                }
            }
            x *= 9.7;
        }
    }

    #[test]
    fn string_escapes_match_python() {
        assert_eq!(string("plain"), "\"plain\"");
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(string("\u{0}\u{1}\u{1f}\u{b}"), r#""\u0000\u0001\u001f\u000b""#);
        assert_eq!(string("/\u{7f}\u{2028}\u{2029}é😀"), "\"/\u{7f}\u{2028}\u{2029}é😀\"");
        assert_eq!(string(""), "\"\"");
        assert_eq!(string("\u{1a}end"), r#""\u001aend""#);
    }

    #[test]
    fn plain_len_matches_a_byte_scan() {
        let naive = |b: &[u8]| b.iter().position(|&c| c < 0x20 || c == b'"' || c == b'\\').unwrap_or(b.len());
        let fillers = [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']', 0x21, 0x5b, 0x5d];
        let specials = [0u8, 0x01, 0x1f, b'"', b'\\', b'\n'];
        for len in 0..24 {
            for &fill in &fillers {
                let mut buf = vec![fill; len];
                assert_eq!(plain_len(&buf), naive(&buf));
                for pos in 0..len {
                    for &sp in &specials {
                        buf[pos] = sp;
                        assert_eq!(plain_len(&buf), naive(&buf), "len {len} fill {fill:#x} {sp:#x}@{pos}");
                        buf[pos] = fill;
                    }
                }
            }
        }
    }

    #[test]
    fn integers() {
        for (i, want) in
            [(0i64, "0"), (-1, "-1"), (42, "42"), (i64::MAX, "9223372036854775807"), (i64::MIN, "-9223372036854775808")]
        {
            let mut out = Vec::new();
            write_i64(&mut out, i);
            assert_eq!(out, want.as_bytes());
        }
    }

    #[test]
    fn writer_depth_is_bounded_for_hand_built_values() {
        let mut v = Value::Object(Object::new());
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert_eq!(to_canonical_vec(&v), Err(CanonicalError::TooDeep));
        assert_eq!(to_canonical_vec(&Value::Array(vec![Value::Float(f64::NAN)])), Err(CanonicalError::NonFinite));
    }
}

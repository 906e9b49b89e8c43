//! Strict JSON parser matching what CPython 3.11 `json.loads` accepts and
//! keeps, except that inputs Python would accept but could never canonicalise
//! (NaN/Infinity literals, numbers overflowing to infinity, unpaired surrogate
//! escapes) are rejected here, at parse time, instead of later when the MAC is
//! computed. Either way the frame is invalid; failing early keeps [`Value`]
//! free of values that have no canonical form.
//!
//! A leading UTF-8 BOM is refused (Python skips one only when given bytes,
//! and no z4j component sends one).
//!
//! Hostile input must produce an error, never a panic or unbounded recursion:
//! nesting is capped, every index is checked and the recursion depth equals
//! the nesting depth.

use super::{BigInt, Object, Value};

/// Maximum nesting of arrays and objects (the top-level container counts).
/// Real frames nest about 6 deep; Python's own limit is ~1000 frames of C stack.
pub const MAX_DEPTH: usize = 128;

/// CPython 3.11 refuses to convert integers with more than 4300 digits
/// (`sys.int_info.default_max_str_digits`), so `json.loads` fails on them too.
pub const MAX_INT_DIGITS: usize = 4300;

/// Where and why parsing failed. The offset is a byte index into the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("input is not valid UTF-8")]
    InvalidUtf8,
    #[error("unexpected end of input")]
    UnexpectedEnd,
    #[error("unexpected character")]
    UnexpectedChar,
    #[error("extra data after the JSON value")]
    TrailingData,
    #[error("nesting deeper than the limit")]
    TooDeep,
    #[error("malformed number")]
    InvalidNumber,
    #[error("NaN, Infinity or a number outside the double range")]
    NonFinite,
    #[error("integer with more than 4300 digits")]
    IntegerTooLong,
    #[error("unescaped control character in string")]
    ControlChar,
    #[error("invalid escape sequence")]
    InvalidEscape,
    #[error("unpaired UTF-16 surrogate escape")]
    LoneSurrogate,
}

use ParseErrorKind as K;

/// Parses one JSON value (any type) with the default depth limit.
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    parse_with_max_depth(input, MAX_DEPTH)
}

/// Parses one JSON value, allowing at most `max_depth` nested containers.
pub fn parse_with_max_depth(input: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    // Validating UTF-8 once up front (a fast, vectorised pass) lets string
    // contents be copied as `&str` slices without re-checking each one.
    let text = std::str::from_utf8(input).map_err(|e| ParseError { kind: K::InvalidUtf8, offset: e.valid_up_to() })?;
    let mut p = Parser { text, bytes: input, pos: 0, depth_left: max_depth };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err(K::TrailingData));
    }
    Ok(value)
}

/// Integer text in JSON grammar (`-?(0|[1-9][0-9]*)`) to `Int`/`BigInt`.
pub(super) fn int_from_text(text: &str) -> Option<Value> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let valid = match digits.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !valid || digits.len() > MAX_INT_DIGITS {
        return None;
    }
    Some(int_value(text))
}

/// `text` must already match the JSON integer grammar.
fn int_value(text: &str) -> Value {
    // `i64::from_str` is exact and rejects overflow; "-0" parses as 0, which
    // is also what Python prints for it.
    match text.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(BigInt(text.into())),
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth_left: usize,
}

/// JSON whitespace as Python's scanner defines it (no form feed, no NBSP).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Parser<'a> {
    fn err(&self, kind: ParseErrorKind) -> ParseError {
        ParseError { kind, offset: self.pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos.saturating_add(ahead)).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    /// Slices the validated text; every boundary used here sits next to an
    /// ASCII byte, so this cannot fail on input that passed `from_utf8`.
    fn slice(&self, start: usize, end: usize) -> Result<&'a str, ParseError> {
        self.text.get(start..end).ok_or(ParseError { kind: K::InvalidUtf8, offset: start })
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.err(K::UnexpectedEnd)),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'N') => self.non_finite(b"NaN"),
            Some(b'I') => self.non_finite(b"Infinity"),
            Some(b'-') if self.peek_at(1) == Some(b'I') => self.non_finite(b"-Infinity"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(K::UnexpectedChar)),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, ParseError> {
        if self.bytes.get(self.pos..self.pos.saturating_add(word.len())) == Some(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err(K::UnexpectedChar))
        }
    }

    /// Python parses these literals to floats that `allow_nan=False` then
    /// refuses to serialise; we refuse them up front with a distinct error.
    fn non_finite(&mut self, word: &[u8]) -> Result<Value, ParseError> {
        if self.bytes.get(self.pos..self.pos.saturating_add(word.len())) == Some(word) {
            Err(self.err(K::NonFinite))
        } else {
            Err(self.err(K::UnexpectedChar))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth_left = self.depth_left.checked_sub(1).ok_or(self.err(K::TooDeep))?;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth_left += 1;
    }

    /// After a member or element: consumes `,` (returns false) or `close`
    /// (returns true).
    fn separator(&mut self, close: u8) -> Result<bool, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                Ok(false)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            None => Err(self.err(K::UnexpectedEnd)),
            Some(_) => Err(self.err(K::UnexpectedChar)),
        }
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                items.push(self.value()?);
                if self.separator(b']')? {
                    break;
                }
            }
        }
        self.leave();
        Ok(Value::Array(items))
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        let mut entries = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            // Frame objects typically have 4-10 members; starting at 8
            // skips two regrowths on the hot path.
            entries.reserve(8);
            loop {
                match self.peek() {
                    Some(b'"') => {}
                    None => return Err(self.err(K::UnexpectedEnd)),
                    Some(_) => return Err(self.err(K::UnexpectedChar)),
                }
                let key = self.string()?;
                self.skip_ws();
                match self.peek() {
                    Some(b':') => self.pos += 1,
                    None => return Err(self.err(K::UnexpectedEnd)),
                    Some(_) => return Err(self.err(K::UnexpectedChar)),
                }
                self.skip_ws();
                let value = self.value()?;
                entries.push((key, value));
                if self.separator(b'}')? {
                    break;
                }
            }
        }
        self.leave();
        Ok(Value::Object(Object::from_entries(entries)))
    }

    /// Length of the run of bytes from `pos` that need no special handling.
    fn plain_run(&self) -> usize {
        super::write::plain_len(self.bytes.get(self.pos..).unwrap_or_default())
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let start = self.pos;
        self.pos += self.plain_run();
        // Fast path: most strings have no escapes and are copied in one go.
        if self.peek() == Some(b'"') {
            let s = self.slice(start, self.pos)?.to_owned();
            self.pos += 1;
            return Ok(s);
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(self.slice(start, self.pos)?);
        loop {
            match self.peek() {
                None => return Err(self.err(K::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                // Python's default `strict=True` rejects raw control characters.
                Some(_) => return Err(self.err(K::ControlChar)),
            }
            let run_start = self.pos;
            self.pos += self.plain_run();
            out.push_str(self.slice(run_start, self.pos)?);
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let ch = match self.peek_at(1) {
            None => return Err(self.err(K::UnexpectedEnd)),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(out),
            Some(_) => return Err(self.err(K::InvalidEscape)),
        };
        self.pos += 2;
        out.push(ch);
        Ok(())
    }

    /// Reads the 4 hex digits of a `\uXXXX` escape starting at `pos`.
    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self.bytes.get(self.pos..self.pos.saturating_add(4)).ok_or(self.err(K::InvalidEscape))?;
        let mut v = 0u32;
        for &d in digits {
            let nibble = char::from(d).to_digit(16).ok_or(self.err(K::InvalidEscape))?;
            v = (v << 4) | nibble;
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let escape_start = self.pos;
        let lone = ParseError { kind: K::LoneSurrogate, offset: escape_start };
        self.pos += 2;
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                // Python joins a high surrogate with an immediately following
                // low-surrogate escape; anything else leaves it unpaired,
                // which UTF-8 cannot encode, so the frame could never be signed.
                if self.peek() != Some(b'\\') || self.peek_at(1) != Some(b'u') {
                    return Err(lone);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(lone);
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(lone),
            other => other,
        };
        out.push(char::from_u32(code).ok_or(lone)?);
        Ok(())
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            None => return Err(self.err(K::UnexpectedEnd)),
            Some(_) => return Err(self.err(K::InvalidNumber)),
        }
        let int_digits = self.pos - int_start;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err(K::InvalidNumber));
            }
            self.skip_digits();
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err(K::InvalidNumber));
            }
            self.skip_digits();
            is_float = true;
        }
        let text = self.slice(start, self.pos)?;
        let at_start = |kind| ParseError { kind, offset: start };
        if is_float {
            // Rust's float parsing is correctly rounded, like CPython's
            // `float()`, so both sides land on the same double.
            let f: f64 = text.parse().map_err(|_| at_start(K::InvalidNumber))?;
            if !f.is_finite() {
                return Err(at_start(K::NonFinite));
            }
            Ok(Value::Float(f))
        } else if int_digits > MAX_INT_DIGITS {
            Err(at_start(K::IntegerTooLong))
        } else {
            Ok(int_value(text))
        }
    }
}

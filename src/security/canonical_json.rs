//! JSON values as Python's `json.loads` sees them, and the canonical byte form
//! the z4j wire protocol signs.
//!
//! The frame MAC is computed over CPython 3.11
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
//! allow_nan=False)` of the *parsed* frame, so a verifier must re-serialise
//! exactly the values Python would have parsed. `serde_json::Value` loses the
//! two distinctions that matter (integers beyond 64 bits become floats, and its
//! float text differs from Python's `repr`), hence this small value type with
//! its own strict parser ([`parse`]) and writer ([`write_canonical`]).
//!
//! Invariants of [`Value`] as produced by [`parse`]: object keys are unique
//! and sorted by code point, floats are finite, integers that fit `i64` are
//! `Int` and only the others are `BigInt`, nesting is at most [`MAX_DEPTH`].

#[path = "canonical_json_parse.rs"]
mod parse;
#[path = "canonical_json_write.rs"]
mod write;

pub use parse::{parse, parse_with_max_depth, ParseError, ParseErrorKind, MAX_DEPTH, MAX_INT_DIGITS};
pub use write::{to_canonical_vec, write_canonical, write_float, write_i64, write_str, CanonicalError};

pub(crate) use write::write_value;

/// A parsed JSON value with Python's int/float distinction.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A JSON number with no `.`, `e` or `E` that fits in an `i64`.
    Int(i64),
    /// An integer outside the `i64` range, kept as its exact decimal digits.
    BigInt(BigInt),
    /// A JSON number with `.`, `e` or `E`: an IEEE-754 double, always finite.
    Float(f64),
    String(String),
    Array(Vec<Value>),
    Object(Object),
}

/// An integer too large for `i64`, stored as normalised decimal text
/// (optional `-`, no leading zeros). Python integers are unbounded and the
/// MAC covers their exact digits, so they must survive untouched.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BigInt(Box<str>);

impl BigInt {
    /// The decimal digits, with a leading `-` when negative.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as `u64` when it fits (integers between `i64::MAX` and
    /// `u64::MAX` are `BigInt` because `Int` is signed).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

/// A JSON object: members unique and sorted by key (code point order, which
/// is UTF-8 byte order and therefore `str` order). Sorted storage makes the
/// canonical writer allocation-free and lookups a binary search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object {
    entries: Vec<(String, Value)>,
}

impl Object {
    pub fn new() -> Object {
        Object::default()
    }

    /// Builds an object from members in wire order. When a key repeats, the
    /// last value wins, as with Python's `dict`.
    pub fn from_entries(mut entries: Vec<(String, Value)>) -> Object {
        // Agent frames are usually not sorted, canonical ones are; checking
        // first keeps the canonical case linear.
        if !entries.is_sorted_by(|a, b| key_cmp(&a.0, &b.0).is_lt()) {
            // Stable, so equal keys stay in wire order and dedup can keep the last.
            entries.sort_by(|a, b| key_cmp(&a.0, &b.0));
            entries.dedup_by(|later, kept| {
                if later.0 == kept.0 {
                    std::mem::swap(later, kept);
                    true
                } else {
                    false
                }
            });
        }
        Object { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| key_cmp(k, key))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self.position(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = self.position(key).ok()?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Inserts or replaces a member, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        match self.position(&key) {
            Ok(i) => self.entries.get_mut(i).map(|slot| std::mem::replace(&mut slot.1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Members in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn into_entries(self) -> Vec<(String, Value)> {
        self.entries
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Object {
        Object::from_entries(iter.into_iter().collect())
    }
}

/// Code-point order of keys (= byte order). Written out because keys are
/// short and usually differ in their first bytes, where an inlined loop beats
/// a call into `memcmp`; sorting and lookups are most of the parse cost.
#[inline]
fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => x.cmp(y),
        None => a.len().cmp(&b.len()),
    }
}

/// Why a value could not be converted to or from `serde_json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("value nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("NaN and infinite floats have no JSON form")]
    NonFinite,
}

impl Value {
    /// Parses a decimal integer in JSON grammar into `Int` or `BigInt`.
    pub fn from_decimal_int(text: &str) -> Option<Value> {
        parse::int_from_text(text)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Booleans are not integers here, unlike in Python.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Converts from `serde_json`: integers become `Int` (or `BigInt` above
    /// `i64::MAX`), floats become `Float`, object keys are sorted.
    ///
    /// Outbound payloads built with `serde_json::json!` go through here before
    /// signing, so the bytes we sign are what the agent will canonicalise.
    pub fn from_serde(value: &serde_json::Value) -> Result<Value, ConvertError> {
        from_serde_at(value, MAX_DEPTH)
    }

    /// Converts to `serde_json` for storage.
    ///
    /// An integer outside both `i64` and `u64` becomes a JSON *string* of its
    /// digits: `serde_json` (without `arbitrary_precision`) can only hold it as
    /// an `f64`, which would silently change the number a signed frame carried.
    /// Keeping the exact digits as text is lossless and visibly different.
    pub fn to_serde(&self) -> Result<serde_json::Value, ConvertError> {
        to_serde_at(self, MAX_DEPTH)
    }
}

fn from_serde_at(value: &serde_json::Value, depth_left: usize) -> Result<Value, ConvertError> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::BigInt(BigInt(u.to_string().into_boxed_str()))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => Value::Float(f),
                    _ => return Err(ConvertError::NonFinite),
                }
            }
        }
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => {
            let inner = depth_left.checked_sub(1).ok_or(ConvertError::TooDeep)?;
            Value::Array(items.iter().map(|v| from_serde_at(v, inner)).collect::<Result<_, _>>()?)
        }
        J::Object(map) => {
            let inner = depth_left.checked_sub(1).ok_or(ConvertError::TooDeep)?;
            let entries = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_serde_at(v, inner)?)))
                .collect::<Result<Vec<_>, ConvertError>>()?;
            Value::Object(Object::from_entries(entries))
        }
    })
}

fn to_serde_at(value: &Value, depth_left: usize) -> Result<serde_json::Value, ConvertError> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::BigInt(b) => match b.as_u64() {
            Some(u) => J::from(u),
            None => J::String(b.as_str().to_owned()),
        },
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).ok_or(ConvertError::NonFinite)?,
        Value::String(s) => J::String(s.clone()),
        Value::Array(items) => {
            let inner = depth_left.checked_sub(1).ok_or(ConvertError::TooDeep)?;
            J::Array(items.iter().map(|v| to_serde_at(v, inner)).collect::<Result<_, _>>()?)
        }
        Value::Object(obj) => {
            let inner = depth_left.checked_sub(1).ok_or(ConvertError::TooDeep)?;
            let mut map = serde_json::Map::with_capacity(obj.len());
            for (k, v) in obj.iter() {
                map.insert(k.to_owned(), to_serde_at(v, inner)?);
            }
            J::Object(map)
        }
    })
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o)
    }
}

#[cfg(test)]
#[path = "canonical_json_tests.rs"]
mod tests;

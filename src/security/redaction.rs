//! Brain-side re-scrub of every inbound agent event before it is stored
//! (z4j reference B.1–B.6, wire protocol §6.2). Agents are not trusted to have
//! redacted anything, so the whole event — envelope and `data` — goes through
//! [`Redactor::redact`], and only its output may be stored or passed on.
//!
//! The pattern table (name → what → why) is at the top of
//! `redaction_patterns.rs`. Where this differs from z4j, on purpose:
//! * value patterns run on the *original* string and again on the truncated
//!   one, so a secret cut in half by truncation is still redacted;
//! * key names are matched after removing `-`, `_` and spaces, so `api-key`,
//!   `clientSecret` and `X-Auth-Token` are caught;
//! * vendor prefixes that are uppercase by specification (`AKIA`, `ASIA`,
//!   `AIza`, `SK`, `SG.`) are case-sensitive and bounded, which ends the
//!   `Asiapacificheadquarters` / MD5-after-`sk` over-redaction;
//! * card numbers, SSNs, `Basic` values and `sk-` keys must pass a semantic
//!   check (Luhn, issuable SSN, decodes to `user:pass`, random-looking);
//! * a string that already ends in a truncation marker within the limit (an
//!   agent cut it) is not cut again, which would overwrite its byte count;
//! * numbers are never value-scanned (as in z4j): an integer id is not a card.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::{Map, Value};

#[path = "redaction_patterns.rs"]
mod patterns;
#[cfg(test)]
#[path = "redaction_tests.rs"]
mod tests;

/// The only marker the engine writes, byte-identical to z4j's.
pub const REDACTED: &str = "[REDACTED]";
pub const DEFAULT_MAX_VALUE_BYTES: usize = 8192;
/// z4j's floor for `Z4J_MAX_PAYLOAD_SIZE_BYTES`; below it the marker would
/// dwarf the text that is kept.
pub const MIN_MAX_VALUE_BYTES: usize = 128;
/// Nodes at this depth or deeper (root = 0) become [`REDACTED`]; recursion
/// never goes further, so hostile nesting cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;
/// Longer keys are sensitive without looking at them: nothing legitimate
/// needs such a key, and a secret could be hiding in it.
pub const MAX_KEY_CHARS: usize = 256;
/// With operator patterns configured, keys past this length are sensitive
/// before those patterns run (z4j's fail-closed cap, kept for parity).
pub const MAX_KEY_CHARS_WITH_EXTRAS: usize = 64;
pub const MAX_EXTRA_KEY_PATTERNS: usize = 256;
pub const MAX_EXTRA_KEY_PATTERN_LEN: usize = 1024;
/// Mask used by [`sanitize_outbound_error`], as in z4j's channel masking.
pub const SECRET_MASK: &str = "••••••••";
pub const OUTBOUND_ERROR_MAX_CHARS: usize = 1024;
/// Shorter "secrets" would mask ordinary words in an error text.
const MIN_SECRET_CHARS: usize = 8;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RedactionConfigError {
    #[error("built-in redaction pattern {name} does not compile: {source}")]
    Builtin {
        name: &'static str,
        #[source]
        source: regex::Error,
    },
    #[error("max_value_bytes must be at least {MIN_MAX_VALUE_BYTES} (got {0})")]
    MaxValueBytesTooSmall(usize),
    #[error("at most {MAX_EXTRA_KEY_PATTERNS} extra key patterns are allowed (got {0})")]
    TooManyExtraKeyPatterns(usize),
    #[error("extra key pattern #{index} is empty")]
    EmptyExtraKeyPattern { index: usize },
    #[error("extra key pattern #{index} is longer than {MAX_EXTRA_KEY_PATTERN_LEN} bytes")]
    ExtraKeyPatternTooLong { index: usize },
    #[error("extra key pattern #{index} is invalid: {source}")]
    InvalidExtraKeyPattern {
        index: usize,
        #[source]
        source: regex::Error,
    },
    #[error("extra key patterns cannot be combined: {0}")]
    ExtraKeyPatternSet(#[source] regex::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactorConfig {
    /// Strings longer than this many UTF-8 bytes are truncated.
    pub max_value_bytes: usize,
    /// Operator key-name regexes (`Z4J_REDACTION_EXTRA_KEY_PATTERNS`), full
    /// match, case-insensitive, tried on the raw and the normalised key.
    pub extra_key_patterns: Vec<String>,
}

impl Default for RedactorConfig {
    fn default() -> Self {
        Self { max_value_bytes: DEFAULT_MAX_VALUE_BYTES, extra_key_patterns: Vec::new() }
    }
}

/// What one call redacted, for metrics and audit. Holds pattern names and
/// counts only, never any redacted text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactionStats {
    /// Dict entries whose key name is sensitive (their subtree was masked).
    pub keys_redacted: u64,
    /// Strings, values or dict keys, replaced because a value pattern hit.
    pub values_redacted: u64,
    /// Leaves replaced because they sit under a sensitive key.
    pub leaves_masked: u64,
    pub strings_truncated: u64,
    pub depth_limited: u64,
    /// Hits per pattern name (`key:…` for key patterns).
    pub by_pattern: BTreeMap<String, u64>,
}

impl RedactionStats {
    /// True when nothing was redacted, masked or truncated.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    pub fn merge(&mut self, other: &Self) {
        self.keys_redacted += other.keys_redacted;
        self.values_redacted += other.values_redacted;
        self.leaves_masked += other.leaves_masked;
        self.strings_truncated += other.strings_truncated;
        self.depth_limited += other.depth_limited;
        for (name, n) in &other.by_pattern {
            *self.by_pattern.entry(name.clone()).or_insert(0) += n;
        }
    }

    fn hit(&mut self, name: &str) {
        *self.by_pattern.entry(name.to_owned()).or_insert(0) += 1;
    }
}

/// Compiled once per process; every [`Redactor`] shares it.
static BUILTINS: LazyLock<Result<patterns::Builtins, RedactionConfigError>> =
    LazyLock::new(patterns::Builtins::compile);

pub struct Redactor {
    builtins: &'static patterns::Builtins,
    extra: Option<RegexSet>,
    extra_names: Vec<String>,
    max_value_bytes: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("max_value_bytes", &self.max_value_bytes)
            .field("extra_key_patterns", &self.extra_names.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// Fails on any bad setting, so a misconfigured brain refuses to start
    /// instead of storing events unscrubbed.
    pub fn new(config: &RedactorConfig) -> Result<Self, RedactionConfigError> {
        if config.max_value_bytes < MIN_MAX_VALUE_BYTES {
            return Err(RedactionConfigError::MaxValueBytesTooSmall(config.max_value_bytes));
        }
        let builtins = BUILTINS.as_ref().map_err(Clone::clone)?;
        let extra = compile_extra_key_patterns(&config.extra_key_patterns)?;
        let extra_names = (0..config.extra_key_patterns.len()).map(|i| format!("key:extra:{i}")).collect();
        Ok(Self { builtins, extra, extra_names, max_value_bytes: config.max_value_bytes })
    }

    pub fn with_defaults() -> Result<Self, RedactionConfigError> {
        Self::new(&RedactorConfig::default())
    }

    /// Names of all built-in patterns, as they appear in [`RedactionStats`].
    pub fn builtin_pattern_names() -> impl Iterator<Item = &'static str> {
        patterns::names()
    }

    /// A scrubbed copy of `value`; the input is never changed.
    pub fn redact(&self, value: &Value) -> (Value, RedactionStats) {
        let mut stats = RedactionStats::default();
        let out = self.scrub(value, 0, false, &mut stats);
        (out, stats)
    }

    /// One string, scrubbed as an event value would be.
    pub fn redact_text(&self, text: &str) -> (String, RedactionStats) {
        let mut stats = RedactionStats::default();
        let out = self.scrub_string(text, &mut stats);
        (out, stats)
    }

    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.key_hit(key).is_some()
    }

    fn scrub(&self, value: &Value, depth: usize, masked: bool, st: &mut RedactionStats) -> Value {
        if depth >= MAX_DEPTH {
            st.depth_limited += 1;
            return Value::String(REDACTED.to_owned());
        }
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, child) in map {
                    let child_masked = masked
                        || self.key_hit(key).is_some_and(|name| {
                            st.keys_redacted += 1;
                            st.hit(name);
                            true
                        });
                    // Two keys that both scrub to "[REDACTED]" collide and
                    // the later wins, as in z4j: data is lost, never leaked.
                    let new_key = self.scrub_string(key, st);
                    out.insert(new_key, self.scrub(child, depth + 1, child_masked, st));
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| self.scrub(item, depth + 1, masked, st)).collect())
            }
            _ if masked => {
                st.leaves_masked += 1;
                Value::String(REDACTED.to_owned())
            }
            Value::String(s) => Value::String(self.scrub_string(s, st)),
            other => other.clone(),
        }
    }

    fn scrub_string(&self, text: &str, st: &mut RedactionStats) -> String {
        let truncated = truncate(text, self.max_value_bytes);
        let hit = self.builtins.value_match(text).or_else(|| {
            // A cut can create a match the original lacks: `AKIA`+16 chars
            // followed by more capitals is bounded away until the cut.
            truncated.as_deref().and_then(|t| self.builtins.value_match(t))
        });
        if let Some(name) = hit {
            st.values_redacted += 1;
            st.hit(name);
            return REDACTED.to_owned();
        }
        match truncated {
            Some(t) => {
                st.strings_truncated += 1;
                t
            }
            None => text.to_owned(),
        }
    }

    fn key_hit(&self, key: &str) -> Option<&str> {
        if exceeds_chars(key, MAX_KEY_CHARS) {
            return Some("key:overlong");
        }
        let normalised = normalise_key(key);
        if let Some(name) = self.builtins.key_match(&normalised) {
            return Some(name);
        }
        let extra = self.extra.as_ref()?;
        if exceeds_chars(key, MAX_KEY_CHARS_WITH_EXTRAS) {
            return Some("key:overlong_for_extra_patterns");
        }
        // Tried on the raw key too, so an operator's `internal_.*` works as
        // written; `is_match` first because `matches` always scans fully.
        let index = [key, &normalised]
            .into_iter()
            .find_map(|k| extra.is_match(k).then(|| extra.matches(k).into_iter().next()).flatten())?;
        self.extra_names.get(index).map(String::as_str)
    }
}

fn exceeds_chars(s: &str, limit: usize) -> bool {
    s.len() > limit && s.chars().count() > limit
}

/// Separators are dropped so one pattern covers every spelling; case is
/// handled by the case-insensitive (Unicode-folding) key regexes.
fn normalise_key(key: &str) -> Cow<'_, str> {
    if key.contains(['-', '_', ' ']) {
        Cow::Owned(key.chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect())
    } else {
        Cow::Borrowed(key)
    }
}

fn compile_extra_key_patterns(patterns: &[String]) -> Result<Option<RegexSet>, RedactionConfigError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    if patterns.len() > MAX_EXTRA_KEY_PATTERNS {
        return Err(RedactionConfigError::TooManyExtraKeyPatterns(patterns.len()));
    }
    for (index, pattern) in patterns.iter().enumerate() {
        if pattern.trim().is_empty() {
            return Err(RedactionConfigError::EmptyExtraKeyPattern { index });
        }
        if pattern.len() > MAX_EXTRA_KEY_PATTERN_LEN {
            return Err(RedactionConfigError::ExtraKeyPatternTooLong { index });
        }
        // Compiled alone first: `a)|(b` is invalid by itself but would
        // silently change meaning inside the `^(?:…)$` wrapper below.
        RegexBuilder::new(pattern)
            .size_limit(patterns::SIZE_LIMIT)
            .build()
            .map_err(|source| RedactionConfigError::InvalidExtraKeyPattern { index, source })?;
    }
    RegexSetBuilder::new(patterns.iter().map(|p| format!("^(?:{p})$")))
        .case_insensitive(true)
        .dot_matches_new_line(true)
        .size_limit(patterns::SIZE_LIMIT)
        .build()
        .map(Some)
        .map_err(RedactionConfigError::ExtraKeyPatternSet)
}

/// `None` when `text` fits. Otherwise the first `max` bytes, a U+FFFD for a
/// split character (z4j's decode-with-replacement) and the z4j marker.
fn truncate(text: &str, max: usize) -> Option<String> {
    if text.len() <= max || carries_marker(text, max) {
        return None;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + 40);
    out.push_str(text.get(..cut).unwrap_or_default());
    if cut < max {
        out.push('\u{FFFD}');
    }
    let _ = write!(out, "[...{} more bytes truncated]", text.len() - max);
    Some(out)
}

/// Whether `text` is already `kept + "[...N more bytes truncated]"` with
/// `kept` within the limit (+3 bytes for a U+FFFD).
fn carries_marker(text: &str, max: usize) -> bool {
    let Some(body) = text.strip_suffix(" more bytes truncated]") else {
        return false;
    };
    let Some(open) = body.rfind("[...") else {
        return false;
    };
    let count = body.get(open + 4..).unwrap_or_default();
    open <= max + 3 && (1..=20).contains(&count.len()) && count.bytes().all(|b| b.is_ascii_digit())
}

/// For DSNs and URLs in logs: the password becomes `***`; anything the URL
/// parser rejects becomes `<unparseable url>`, so a malformed DSN that still
/// holds a password is never echoed.
pub fn redact_url_password(raw: &str) -> String {
    const UNPARSEABLE: &str = "<unparseable url>";
    let Ok(mut url) = url::Url::parse(raw) else {
        return UNPARSEABLE.to_owned();
    };
    if url.password().is_none() {
        return raw.to_owned();
    }
    match url.set_password(Some("***")) {
        Ok(()) => url.to_string(),
        Err(()) => UNPARSEABLE.to_owned(),
    }
}

/// Text from a remote endpoint or a transport error, made safe to store and
/// show: known secrets (webhook URLs, bot tokens) become [`SECRET_MASK`],
/// control and bidi-override characters become spaces, internal IPv4
/// addresses become `<private-ip>`, and the result is cut to
/// [`OUTBOUND_ERROR_MAX_CHARS`] characters.
pub fn sanitize_outbound_error(text: &str, secrets: &[&str]) -> String {
    // Longest first, so a secret containing another is masked whole; before
    // the control-character pass, so a secret with such a character still
    // matches.
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| s.chars().count() >= MIN_SECRET_CHARS).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in secrets {
        if out.contains(secret) {
            out = out.replace(secret, SECRET_MASK);
        }
    }
    let out: String = out.chars().map(|c| if is_unsafe_char(c) { ' ' } else { c }).collect();
    let out = mask_internal_ipv4(&out);
    match out.char_indices().nth(OUTBOUND_ERROR_MAX_CHARS) {
        Some((cut, _)) => out.get(..cut).unwrap_or_default().to_owned(),
        None => out,
    }
}

/// C0 (except TAB, CR, LF), DEL, C1 — terminal and log injection — and the
/// bidi overrides that can make a stored message display as something else.
fn is_unsafe_char(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// z4j's ranges (10/8, 172.16/12, 192.168/16, 169.254/16, 127/8) plus
/// 0/8 and CGNAT 100.64/10, which reveal internal topology just the same.
fn is_internal_ipv4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || ip.is_loopback() || ip.is_link_local() || a == 0 || (a == 100 && (64..128).contains(&b))
}

/// Replaces word-bounded dotted quads that are internal. A hand scanner, not
/// a regex, so this free function has nothing that can fail to compile.
fn mask_internal_ipv4(text: &str) -> String {
    let bytes = text.as_bytes();
    // Non-ASCII bytes count as non-word so `é10.0.0.1` is still masked.
    let word = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let starts_number = bytes.get(i).is_some_and(u8::is_ascii_digit) && (i == 0 || !word(i - 1));
        if !starts_number {
            i += 1;
            continue;
        }
        if let Some((end, ip)) = dotted_quad(bytes, i) {
            if !word(end) {
                if is_internal_ipv4(ip) {
                    out.push_str(text.get(copied..i).unwrap_or_default());
                    out.push_str("<private-ip>");
                    copied = end;
                }
                i = end;
                continue;
            }
        }
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Four `.`-separated decimal octets (1–3 digits, ≤ 255) at `start`.
fn dotted_quad(bytes: &[u8], start: usize) -> Option<(usize, Ipv4Addr)> {
    let mut octets = [0u8; 4];
    let mut i = start;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            (bytes.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        let digits_start = i;
        let mut value = 0u32;
        while let Some(d) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            value = value * 10 + u32::from(d - b'0');
            i += 1;
            if i - digits_start > 3 {
                return None;
            }
        }
        if i == digits_start {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    Some((i, Ipv4Addr::from(octets)))
}

//! Built-in redaction patterns, and the checks that keep the shape-based ones
//! quiet on ordinary text.
//!
//! Key names are full-matched, case-insensitively, against the key with `-`,
//! `_` and spaces removed (`API_KEY`, `api-key` and `apiKey` are one key), so
//! the regexes below are written without separators. A `.*` prefix means the
//! pattern also catches prefixed forms (`db_password`, `X-Auth-Token`) while
//! names that merely *start* with a sensitive word (`token_count`) stay.
//!
//! | name | catches | why |
//! |---|---|---|
//! | `key:password` | `*password`, `*passwd`, `password_confirmation`, `password_hash` | reference passwords, plus prefixed forms (`db_password`) |
//! | `key:pass_or_pwd` | `pass`, `pwd` | short password keys; `pwd` is exact so `OLDPWD`/`cwd` stay |
//! | `key:passphrase` | `*passphrase` | reference gap (key passphrases) |
//! | `key:secret` | `*secret(s)`, `*secret_key`, `aws_secret_access_key` | reference secrets plus the AWS gap |
//! | `key:token` | `*token` | reference tokens, `X-Auth-Token`, `csrf_token`; not `max_tokens` |
//! | `key:api_key` | `*apikey` | `api_key`, `api-key`, `x-api-key`, `openai_api_key` |
//! | `key:private_key` | `private_key`, `signing_key`, `ssh_key`, `session_key`… | reference gap; not `routing_key`/`cache_key` |
//! | `key:authorization` | `*authorization` | `Authorization`, `Proxy-Authorization` (gap) |
//! | `key:auth` | `auth`, `basic_auth`, `http_auth`, `proxy_auth` | exact forms only: `author`, `oauth_provider` stay |
//! | `key:credentials` | `*credential(s)` | credential bags |
//! | `key:cookie` | `cookie(s)`, `set-cookie`, `session_cookie` | session material; `set_cookies` (a flag) stays |
//! | `key:connection_string` | `*dsn`, `*database_url`/`uri`, `db_url`, `connection_string` | DSNs carry passwords (gap) |
//! | `key:jwt` | `*jwt` | gap |
//! | `key:one_time_code` | `otp`, `totp`, `hotp`, `mfa_code`, `recovery_codes`… | gap; one-time codes are live credentials |
//! | `key:pin` | `pin`, `pin_code` | gap |
//! | `key:ssn` | `ssn`, `social_security(_number)` | PII |
//! | `key:payment_card` | `credit_card(_number)`, `card_number`, `cvv`, `cvc` | PCI data |
//! | `jwt` | `eyJ…` + two more base64url segments | signed session/API tokens |
//! | `bearer_token` | `Bearer` + 16 or more token characters | Authorization headers in messages |
//! | `basic_authorization` | `Basic` + base64 that decodes to printable `user:pass` | gap; the decode check stops `Basic validation` |
//! | `stripe_secret_key`, `stripe_publishable_key`, `stripe_restricted_key`, `stripe_webhook_secret` | `sk_`/`pk_`/`rk_` + `live_`/`test_` + 24, `whsec_` + 24 | payment provider keys |
//! | `slack_bot_token`, `slack_user_token`, `slack_app_token_legacy`, `slack_other_token`, `slack_app_level_token` | `xoxb-`, `xoxp-`, `xoxa-`, `xoxc/d/e/r/s-` (and `xoxe.xoxp-`), `xapp-` + 10 | chat tokens; `xapp` is a gap |
//! | `slack_webhook_url` | `hooks.slack.com/{services,workflows,triggers}/…/…/SECRET` | notification channel secret; two-segment URLs stay |
//! | `discord_webhook_url` | `discord.com/api/webhooks/ID/TOKEN` | notification channel secret |
//! | `github_pat_classic`, `github_oauth_token`, `github_user_to_server_token`, `github_server_token`, `github_refresh_token` | `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 | `ghu_`/`ghr_` are gaps |
//! | `github_fine_grained_pat` | `github_pat_` + 82 | source-host token |
//! | `gitlab_token` | `glpat-`, `gldt-`, `glrt-`… | gap |
//! | `npm_token`, `pypi_token`, `docker_hub_token`, `huggingface_token`, `shopify_token` | registry/vendor tokens | `npm_` is a gap; the rest are common in task code |
//! | `aws_access_key_id`, `aws_sts_access_key_id` | `AKIA`/`ASIA` + exactly 16 uppercase alnum | case-sensitive and bounded: `Asiapacificheadquarters` stays |
//! | `aws_secret_access_key` | `aws_secret_access_key=…`, `'SecretAccessKey': '…'` | gap: the secret itself has no prefix, so context is needed |
//! | `google_api_key`, `google_oauth_client_secret`, `google_oauth_access_token` | `AIza`+35, `GOCSPX-`, `ya29.` | case-sensitive prefixes |
//! | `twilio_api_key_sid` | word-bounded uppercase `SK` + 32 lowercase hex | an MD5 digest after `sk` stays |
//! | `sendgrid_api_key` | `SG.` + 22 + `.` + 43 | vendor key |
//! | `telegram_bot_token` | `123456789:AA…` | notification channel secret |
//! | `azure_storage_key` | `AccountKey=…`, `SharedAccessKey=…` | connection strings |
//! | `private_key_block` | `-----BEGIN … PRIVATE KEY-----`, `… PRIVATE KEY BLOCK-----`, z4j's `RSA/EC/DSA/OPENSSH/PGP/ENCRYPTED KEY-----`, PuTTY files | the PGP block form is a gap |
//! | `openai_api_key` | `sk-`, `sk-proj-`, `sk-ant-…` + 20 with upper, lower and digit | gap; the mix check spares `sk-cluster-prod-east-1` |
//! | `url_with_password` | `scheme://[user]:pass@` for any scheme | gap: `redis://:pw@`, `https://u:p@localhost`, `mssql://` |
//! | `credential_assignment` | `password='…'` (quoted), or unquoted `password=…` led by start, space, `?`, `&` or `;` | query strings, env dumps, kwargs reprs; source lines such as `token = make()` or `f(api_key=conf.KEY)` in tracebacks stay |
//! | `credential_in_mapping` | `'password': '…'`, `"token": "…"` | a stringified dict or JSON (a common exception text) |
//! | `payment_card_number` | 13–19 digits, card grouping, issuer prefix, Luhn | PCI; the checks spare ids and timestamps |
//! | `us_ssn`, `us_itin` | `NNN-NN-NNNN` with a valid area/group/serial | PII; see [`ssn_kind`] for what is excluded |
//! | `email_address` | `local@domain.tld` | PII (reference) |

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::RedactionConfigError;

/// Per-regex compiled-program cap. The built-ins need far less; it exists so
/// an edit that explodes a pattern fails the start-up instead of eating RAM.
pub(super) const SIZE_LIMIT: usize = 8 << 20;

#[rustfmt::skip]
const KEY_PATTERNS: &[(&str, &str)] = &[
    ("key:password", r"(?s).*passw(?:or)?d(?:confirmation|hash|digest)?"),
    ("key:pass_or_pwd", r"pass|pwd"),
    ("key:passphrase", r"(?s).*passphrase"),
    ("key:secret", r"(?s).*secrets?(?:key|keybase|accesskey|value)?"),
    ("key:token", r"(?s).*token"),
    ("key:api_key", r"(?s).*apikey"),
    ("key:private_key", r"(?s).*(?:private|signing|encryption|decryption|master|ssh|session|client)key"),
    ("key:authorization", r"(?s).*authorization"),
    ("key:auth", r"(?:basic|http|proxy)?auth"),
    ("key:credentials", r"(?s).*credentials?"),
    ("key:cookie", r"cookies?|setcookie|sessioncookie"),
    ("key:connection_string", r"(?s).*(?:dsn|databaseur[il]|dburl|connectionstring|connstr)"),
    ("key:jwt", r"(?s).*jwt"),
    ("key:one_time_code", r"otp|totp|hotp|otpcode|mfacode|recoverycodes?|backupcodes?"),
    ("key:pin", r"pin|pincode"),
    ("key:ssn", r"ssn|socialsecurity(?:number)?"),
    ("key:payment_card", r"(?:credit|debit)card(?:number)?|cardnumber|cvv2?|cvc2?|cardcvv|cardcvc"),
];

/// A hit on any of these redacts the string; order decides which name the
/// stats get when several match, so specific shapes come before generic ones.
#[rustfmt::skip]
const PLAIN_VALUE_PATTERNS: &[(&str, &str)] = &[
    ("jwt", r"(?:^|[^A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    ("bearer_token", r"(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}"),
    ("stripe_secret_key", r"(?i)sk_(?:live|test)_[A-Za-z0-9]{24,}"),
    ("stripe_publishable_key", r"(?i)pk_(?:live|test)_[A-Za-z0-9]{24,}"),
    ("stripe_restricted_key", r"(?i)rk_(?:live|test)_[A-Za-z0-9]{24,}"),
    ("stripe_webhook_secret", r"(?i)whsec_[A-Za-z0-9]{24,}"),
    ("slack_bot_token", r"(?i)xoxb-[0-9A-Za-z-]{10,}"),
    ("slack_user_token", r"(?i)xoxp-[0-9A-Za-z-]{10,}"),
    ("slack_app_token_legacy", r"(?i)xoxa-[0-9A-Za-z-]{10,}"),
    ("slack_other_token", r"(?i)xox[cders](?:\.xox[a-z])?-[0-9A-Za-z-]{10,}"),
    ("slack_app_level_token", r"(?i)xapp-[0-9A-Za-z-]{10,}"),
    ("slack_webhook_url", r"(?i)hooks\.slack\.com/(?:services|workflows|triggers)/[A-Z0-9]+/[A-Z0-9]+/[A-Z0-9]+"),
    ("discord_webhook_url", r"(?i)discord(?:app)?\.com/api(?:/v[0-9]+)?/webhooks/[0-9]+/[A-Z0-9_-]+"),
    ("github_pat_classic", r"(?i)ghp_[A-Z0-9]{36}"),
    ("github_oauth_token", r"(?i)gho_[A-Z0-9]{36}"),
    ("github_user_to_server_token", r"(?i)ghu_[A-Z0-9]{36}"),
    ("github_server_token", r"(?i)ghs_[A-Z0-9]{36}"),
    ("github_refresh_token", r"(?i)ghr_[A-Z0-9]{36}"),
    ("github_fine_grained_pat", r"(?i)github_pat_[A-Z0-9_]{82,}"),
    ("gitlab_token", r"(?i)gl(?:pat|dt|rt|ptt|cbt|soat|oas|ft|imt)-[A-Z0-9_-]{20,}"),
    ("npm_token", r"(?i)npm_[A-Z0-9]{36}"),
    ("pypi_token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    ("docker_hub_token", r"dckr_pat_[A-Za-z0-9_-]{20,}"),
    ("huggingface_token", r"(?:^|[^A-Za-z0-9])hf_[A-Za-z0-9]{34}"),
    ("shopify_token", r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("aws_access_key_id", r"(?:^|[^A-Za-z0-9])AKIA[0-9A-Z]{16}(?:[^A-Za-z0-9]|$)"),
    ("aws_sts_access_key_id", r"(?:^|[^A-Za-z0-9])ASIA[0-9A-Z]{16}(?:[^A-Za-z0-9]|$)"),
    ("aws_secret_access_key", r#"(?i)(?:aws[-_. ]?secret[-_. ]?(?:access[-_. ]?)?key|secret[-_. ]?access[-_. ]?key)["']?\s*(?:=>|[=:])\s*["']?[A-Z0-9/+]{16,}"#),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}"),
    ("google_oauth_client_secret", r"GOCSPX-[A-Za-z0-9_-]{28}"),
    ("google_oauth_access_token", r"(?:^|[^A-Za-z0-9])ya29\.[0-9A-Za-z_-]{20,}"),
    ("twilio_api_key_sid", r"(?-u:\b)SK[0-9a-f]{32}(?-u:\b)"),
    ("sendgrid_api_key", r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    ("telegram_bot_token", r"(?:^|[^0-9])[0-9]{8,10}:AA[A-Za-z0-9_-]{33}"),
    ("azure_storage_key", r"(?i)(?:AccountKey|SharedAccessKey)\s*=\s*[A-Z0-9+/]{20,}"),
    ("private_key_block", r"(?i)-----BEGIN (?:[A-Z0-9]+ )*(?:PRIVATE KEY(?: BLOCK)?|(?:RSA|EC|DSA|OPENSSH|PGP|ENCRYPTED) KEY)-----|PuTTY-User-Key-File-[0-9]+:"),
    ("url_with_password", r"(?i)[a-z][a-z0-9+.-]*://[^\s/?#@:]*:[^\s/?#@]+@"),
    ("credential_assignment", r#"(?i)(?:passw(?:or)?d|passphrase|secret|token|api[-_]?key|private[-_]?key|signature)\s*=\s*["'][^"'\s]|(?:^|[\s?&;])[A-Z0-9_.-]*(?:passw(?:or)?d|passphrase|secret|token|api[-_]?key|private[-_]?key|signature|sig)=[^\s&;,'"()]"#),
    ("credential_in_mapping", r#"(?i)["'](?:[A-Z0-9_.-]*(?:passw(?:or)?d|passphrase|secret|token|api[-_]?key|private[-_]?key|authorization|credentials?)|pass|pwd)["']\s*:\s*b?["'][^"']"#),
];

/// Validates capture group 1 of a candidate match.
type Check = fn(&str) -> bool;

/// Shapes too common in ordinary text to trust the regex alone: capture
/// group 1 of some match must also pass the check.
#[rustfmt::skip]
const CHECKED_VALUE_PATTERNS: &[(&str, &str, Check)] = &[
    ("basic_authorization", r"(?i:basic)\s+([A-Za-z0-9+/]{4,1024}={0,2})", basic_credentials),
    ("openai_api_key", r"(?-u:\b)sk-(?:(?:proj|svcacct|admin)-|ant-[a-z]+[0-9]*-)?([A-Za-z0-9_-]{20,256})", mixed_alnum),
];

const EMAIL_PATTERN: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}";

/// Found by the hand scanners in [`Builtins::value_match`], not by a regex.
const SCANNED_NAMES: &[&str] = &["payment_card_number", "us_ssn", "us_itin", "email_address"];

/// Every built-in pattern name, key patterns first.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    KEY_PATTERNS
        .iter()
        .map(|(n, _)| *n)
        .chain(PLAIN_VALUE_PATTERNS.iter().map(|(n, _)| *n))
        .chain(CHECKED_VALUE_PATTERNS.iter().map(|(n, _, _)| *n))
        .chain(SCANNED_NAMES.iter().copied())
}

pub(super) struct Builtins {
    keys: RegexSet,
    plain: RegexSet,
    checked: Vec<(&'static str, Regex, Check)>,
    email: Regex,
}

fn build(name: &'static str, pattern: &str) -> Result<Regex, RedactionConfigError> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|source| RedactionConfigError::Builtin { name, source })
}

impl Builtins {
    pub(super) fn compile() -> Result<Self, RedactionConfigError> {
        let keys = RegexSetBuilder::new(KEY_PATTERNS.iter().map(|(_, p)| format!("^(?:{p})$")))
            .case_insensitive(true)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|source| RedactionConfigError::Builtin { name: "key-name set", source })?;
        let plain = RegexSetBuilder::new(PLAIN_VALUE_PATTERNS.iter().map(|(_, p)| *p))
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|source| RedactionConfigError::Builtin { name: "value set", source })?;
        let checked = CHECKED_VALUE_PATTERNS
            .iter()
            .map(|&(name, pattern, check)| Ok((name, build(name, pattern)?, check)))
            .collect::<Result<_, RedactionConfigError>>()?;
        Ok(Self { keys, plain, checked, email: build("email_address", EMAIL_PATTERN)? })
    }

    /// `normalised` must already have `-`, `_` and spaces removed.
    pub(super) fn key_match(&self, normalised: &str) -> Option<&'static str> {
        if !self.keys.is_match(normalised) {
            return None;
        }
        let first = self.keys.matches(normalised).into_iter().next()?;
        KEY_PATTERNS.get(first).map(|(name, _)| *name)
    }

    /// Name of the first value pattern found anywhere in `text`.
    pub(super) fn value_match(&self, text: &str) -> Option<&'static str> {
        if self.plain.is_match(text) {
            let first = self.plain.matches(text).into_iter().next()?;
            return PLAIN_VALUE_PATTERNS.get(first).map(|(name, _)| *name);
        }
        for (name, regex, check) in &self.checked {
            // `is_match` first: it is prefiltered and allocates nothing.
            if regex.is_match(text) && regex.captures_iter(text).filter_map(|c| c.get(1)).any(|m| check(m.as_str())) {
                return Some(name);
            }
        }
        // Cards and SSNs are hand-scanned: a digit-led regex has no literal to
        // search for and costs a match call per number in timestamps and ids.
        let bytes = text.as_bytes();
        let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
        if digits >= 13 && card_number_in(bytes) {
            return Some("payment_card_number");
        }
        let ssn_possible = digits >= 9 && bytes.contains(&b'-');
        if let Some(kind) = ssn_possible.then(|| ssn_in(bytes)).flatten() {
            return Some(kind);
        }
        let email = bytes.contains(&b'@')
            && self.email.find_iter(text).any(|m| {
                let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
                !before.copied().is_some_and(is_email_local)
            });
        email.then_some("email_address")
    }
}

/// The reference guards emails with a lookbehind on this class; the `regex`
/// crate has none, so the preceding byte is checked by hand.
fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn mixed_alnum(body: &str) -> bool {
    let b = body.as_bytes();
    b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase) && b.iter().any(u8::is_ascii_digit)
}

/// True when `b64` decodes to printable text containing `:`, the shape of
/// `user:password`; ordinary words after "Basic" almost never do.
fn basic_credentials(b64: &str) -> bool {
    let body = b64.trim_end_matches('=');
    if body.len() < 4 || body.len() % 4 == 1 {
        return false;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    match std::str::from_utf8(&out) {
        Ok(s) => s.contains(':') && !s.chars().any(char::is_control),
        Err(_) => false,
    }
}

fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.saturating_sub(b'0'));
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the major networks (Visa 4, Mastercard 51–55 and
/// 2221–2720, Amex 34/37, Diners 30/36/38/39, JCB 35, Discover/UnionPay/
/// Maestro 5x/6x, Mir 2200–2204). Numbers led by 0, 1, 7, 8 or 9 — epoch
/// timestamps, ISBNs, most database ids — are never card numbers.
fn issuer_plausible(d: &[u8]) -> bool {
    let prefix4 = d.iter().take(4).fold(0u32, |acc, b| acc * 10 + u32::from(b.saturating_sub(b'0')));
    match (d.first(), d.get(1)) {
        (Some(b'4' | b'5' | b'6'), _) => true,
        (Some(b'3'), Some(b'0' | b'4'..=b'9')) => true,
        (Some(b'2'), _) => (2200..=2204).contains(&prefix4) || (2221..=2720).contains(&prefix4),
        _ => false,
    }
}

/// Card numbers are written unbroken or in the printed groupings: 4-4-4-4
/// (with a shorter last group for 13–19 digits), Amex 4-6-5, Diners 4-6-4.
fn layout_ok(groups: &[usize]) -> bool {
    match groups {
        [_] | [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&g| g == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// Maximal runs of digit groups joined by single spaces or dashes (what
/// `[0-9]+(?:[ -][0-9]+)*` would find), each tried by [`card_in_run`].
fn card_number_in(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            continue;
        }
        let start = i;
        loop {
            match bytes.get(i) {
                Some(b) if b.is_ascii_digit() => i += 1,
                Some(b' ' | b'-') if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
                _ => break,
            }
        }
        if card_in_run(bytes, start, i) {
            return true;
        }
    }
    false
}

/// Looks for a card number inside one run of digit groups separated by single
/// spaces or dashes (`run` = `bytes[start..end]`). A window of consecutive
/// groups counts when it has 13–19 digits, one separator kind, a card
/// layout, a plausible issuer and a valid Luhn digit, so "card 4111 1111 1111
/// 1111 exp 2030" is caught but phone numbers and dates are not.
fn card_in_run(bytes: &[u8], start: usize, end: usize) -> bool {
    let glued = |i: Option<usize>| i.and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_alphanumeric);
    if glued(start.checked_sub(1)) || glued(Some(end)) {
        return false;
    }
    let run = bytes.get(start..end).unwrap_or_default();
    if run.iter().filter(|b| b.is_ascii_digit()).count() < 13 {
        return false;
    }
    // The k-th separator sits before group k+1; the scanner guarantees
    // exactly one between non-empty groups.
    let mut seps = run.iter().copied().filter(|b| !b.is_ascii_digit());
    let groups: Vec<(&[u8], u8)> = run
        .split(|b| !b.is_ascii_digit())
        .enumerate()
        .map(|(k, g)| (g, if k == 0 { 0 } else { seps.next().unwrap_or(0) }))
        .collect();
    let mut digits = Vec::with_capacity(19);
    let mut lens = Vec::with_capacity(19);
    for i in 0..groups.len() {
        digits.clear();
        lens.clear();
        let mut kind = None;
        for (j, (group, before)) in groups.iter().enumerate().skip(i) {
            if j > i && *kind.get_or_insert(*before) != *before {
                break;
            }
            // Only the last group of a layout may be irregular, so a window
            // whose earlier groups already break every layout cannot grow
            // into one: this keeps "1 2 3 4 …" linear.
            if !matches!(lens.as_slice(), [] | [4] | [4, 6]) && lens.iter().any(|&l| l != 4) {
                break;
            }
            digits.extend_from_slice(group);
            lens.push(group.len());
            if digits.len() > 19 {
                break;
            }
            if digits.len() >= 13 && layout_ok(&lens) && issuer_plausible(&digits) && luhn_ok(&digits) {
                return true;
            }
        }
    }
    false
}

/// Every `NNN-NN-NNNN` window, overlapping ones included, classified by
/// [`ssn_at`].
fn ssn_in(bytes: &[u8]) -> Option<&'static str> {
    bytes.windows(11).enumerate().find_map(|(start, w)| {
        let shape = w.iter().enumerate().all(|(k, b)| match k {
            3 | 6 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
        shape.then(|| ssn_at(bytes, start, start + 11)).flatten()
    })
}

/// ITIN group ranges (IRS): 9xx numbers with these groups are taxpayer ids,
/// other 9xx numbers are not issued.
fn itin_group(group: u32) -> bool {
    matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// Classifies the `NNN-NN-NNNN` at `bytes[start..end]`. Excluded, since
/// the SSA never issues them: area 000 or 666, group 00, serial 0000, and
/// 9xx areas outside the ITIN groups; also matches glued to letters, digits
/// or `-digit` (part numbers, `123-45-6789-0`). Everything else that is left,
/// including `555-12-3456`, is indistinguishable from a real SSN and stays
/// redacted: a leaked SSN costs more than an over-redacted log line.
fn ssn_at(bytes: &[u8], start: usize, end: usize) -> Option<&'static str> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let before = start.checked_sub(1).and_then(|i| bytes.get(i));
    let before2 = start.checked_sub(2).and_then(|i| bytes.get(i));
    if before.is_some_and(word) || (before == Some(&b'-') && before2.is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    let after = bytes.get(end);
    if after.is_some_and(word) || (after == Some(&b'-') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        bytes
            .get(start + r.start..start + r.end)
            .map(|s| s.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b.saturating_sub(b'0'))))
    };
    ssn_kind(num(0..3)?, num(4..6)?, num(7..11)?)
}

fn ssn_kind(area: u32, group: u32, serial: u32) -> Option<&'static str> {
    if group == 0 || serial == 0 {
        return None;
    }
    match area {
        0 | 666 => None,
        1..=899 => Some("us_ssn"),
        900..=999 if itin_group(group) => Some("us_itin"),
        _ => None,
    }
}

//! Palisade's password policy, applied on every path that sets a password.
//!
//! Rules run in the fixed order of [`RULE_ORDER`] and the first failure wins,
//! so an API answer always names one stable rule code:
//!
//! 1. `too_short`: fewer code points than the configured minimum (default 12).
//! 2. `too_long`: more than [`MAX_LENGTH`] code points or [`MAX_BYTES`] UTF-8 bytes.
//! 3. `too_few_classes`: fewer than 3 of lowercase, uppercase, digit, symbol.
//!    Unlike the reference there is no passphrase escape: the rule applies at
//!    every length.
//! 4. `common_password`: on the shipped denylist after case folding, stripping
//!    leading/trailing digits and symbols and folding simple leetspeak or
//!    shifted digits; or a repeat of a denylisted word; or a run such as
//!    `aaaa…`/`1234…`.
//! 5. `contains_user_info`: contains the email local part, a domain label or the
//!    instance name.
//!
//! Messages never include the password or any substring of it.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::Serialize;

pub const DEFAULT_MIN_LENGTH: usize = 12;
/// Operators may raise the minimum but never lower it below the spec's 12.
pub const MIN_LENGTH_FLOOR: usize = 12;
pub const MIN_LENGTH_CEILING: usize = 128;
pub const MAX_LENGTH: usize = 256;
pub const MAX_BYTES: usize = 1024;
pub const REQUIRED_CLASSES: usize = 3;
pub const CLASS_NAMES: [&str; 4] = ["lowercase", "uppercase", "digit", "symbol"];
pub const INSTANCE_NAME: &str = "palisade";
pub const EMAIL_LOCAL_PART_MIN_LENGTH: usize = 3;
pub const EMAIL_DOMAIN_LABEL_MIN_LENGTH: usize = 4;
/// Stable rule codes in evaluation order; they appear in API error details.
pub const RULE_ORDER: [&str; 5] = ["too_short", "too_long", "too_few_classes", "common_password", "contains_user_info"];

/// Shortest stripped core that is still compared with the denylist: shorter
/// cores would turn every "x" + random digits password into a false positive.
const MIN_CORE_LEN: usize = 3;
/// Dotted/dashed email local parts are also matched piecewise, but only for
/// pieces long enough not to be initials.
const EMAIL_PIECE_MIN_LENGTH: usize = 4;
/// Character folds tried on every candidate, as (from, to) pairs: leetspeak
/// with '1' read as 'l', then as 'i' (it is ambiguous), then US-layout shifted
/// digits so that `1qaz@WSX3edc` becomes the listed walk `1qaz2wsx3edc`.
const FOLDS: [(&str, &str); 3] = [("013457@$", "oleastas"), ("013457@$", "oieastas"), ("!@#$%^&*()", "1234567890")];
const DENYLIST_MATCHING: &str = "case-insensitive; leading and trailing digits and symbols are \
     ignored; common substitutions (0=o, 1=l/i, 3=e, 4=a, 5=s, 7=t, @=a, $=s) and shifted \
     digits (!=1, @=2, ...) are folded; repeated words and simple runs such as aaaa or 1234 \
     are rejected";

static DENYLIST: LazyLock<HashSet<Box<str>>> = LazyLock::new(|| parse_denylist(include_str!("common_passwords.txt")));

fn parse_denylist(text: &str) -> HashSet<Box<str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.to_lowercase().into_boxed_str())
        .collect()
}

/// Number of distinct entries in the compiled-in denylist.
#[must_use]
pub fn denylist_size() -> usize {
    DENYLIST.len()
}

/// Which piece of context a password contained; named in the message so the
/// user knows what to change, without repeating the matched text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserInfoPart {
    EmailLocalPart,
    EmailDomain,
    InstanceName,
}

impl UserInfoPart {
    const fn phrase(self) -> &'static str {
        match self {
            Self::EmailLocalPart => "your email address",
            Self::EmailDomain => "your email domain",
            Self::InstanceName => "the product name",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("password must be at most {max} characters and {max_bytes} bytes long")]
    TooLong { max: usize, max_bytes: usize },
    #[error(
        "password must contain at least {required} of: lowercase letters, uppercase letters, \
         digits, symbols (spaces do not count)"
    )]
    TooFewClasses { required: usize },
    #[error(
        "password is too common or too predictable (a well-known password, a repeated word \
         or a simple run of characters)"
    )]
    CommonPassword,
    #[error("password must not contain {}", part.phrase())]
    ContainsUserInfo { part: UserInfoPart },
}

impl PolicyViolation {
    /// Stable `snake_case` code for `details.rule` in API answers.
    #[must_use]
    pub const fn rule(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLong { .. } => "too_long",
            Self::TooFewClasses { .. } => "too_few_classes",
            Self::CommonPassword => "common_password",
            Self::ContainsUserInfo { .. } => "contains_user_info",
        }
    }

    /// Human-readable explanation; safe to show and log (no password content).
    #[must_use]
    pub fn message(&self) -> String {
        self.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    #[error("password minimum length {0} is outside {MIN_LENGTH_FLOOR}..={MIN_LENGTH_CEILING}")]
    MinLengthOutOfRange(usize),
}

/// What `GET /api/v1/auth/policy` returns. The first three z4j keys keep
/// their names so the z4j dashboard keeps working; the rest are additions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDescription {
    pub min_length: usize,
    pub max_length: usize,
    pub max_bytes: usize,
    pub required_character_classes: usize,
    pub character_class_names: [&'static str; 4],
    /// Always false: long passwords get no exemption from the class rule.
    pub passphrase_escape: bool,
    pub denylist_size: usize,
    pub denylist_matching: &'static str,
    pub context_rule: ContextRuleDescription,
    pub rule_order: [&'static str; 5],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextRuleDescription {
    pub case_insensitive: bool,
    pub email_local_part_min_length: usize,
    pub email_domain_label_min_length: usize,
    pub instance_name: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: DEFAULT_MIN_LENGTH }
    }
}

impl PasswordPolicy {
    /// # Errors
    /// `MinLengthOutOfRange` unless `min_length` is within
    /// the range [`MIN_LENGTH_FLOOR`] to [`MIN_LENGTH_CEILING`] inclusive.
    pub fn new(min_length: usize) -> Result<Self, PolicyConfigError> {
        if (MIN_LENGTH_FLOOR..=MIN_LENGTH_CEILING).contains(&min_length) {
            Ok(Self { min_length })
        } else {
            Err(PolicyConfigError::MinLengthOutOfRange(min_length))
        }
    }

    #[must_use]
    pub const fn min_length(&self) -> usize {
        self.min_length
    }

    /// Checks `password` for a user whose email is `email` (None when no
    /// account exists yet to compare with).
    ///
    /// # Errors
    /// The first [`PolicyViolation`] in [`RULE_ORDER`] that applies.
    pub fn check(&self, password: &str, email: Option<&str>) -> Result<(), PolicyViolation> {
        // Lazy evaluation matters: the length rules bound the input size
        // before the more expensive denylist and context passes run.
        (0..RULE_ORDER.len()).find_map(|step| self.evaluate(step, password, email)).map_or(Ok(()), Err)
    }

    #[must_use]
    pub fn describe(&self) -> PolicyDescription {
        PolicyDescription {
            min_length: self.min_length,
            max_length: MAX_LENGTH,
            max_bytes: MAX_BYTES,
            required_character_classes: REQUIRED_CLASSES,
            character_class_names: CLASS_NAMES,
            passphrase_escape: false,
            denylist_size: denylist_size(),
            denylist_matching: DENYLIST_MATCHING,
            context_rule: ContextRuleDescription {
                case_insensitive: true,
                email_local_part_min_length: EMAIL_LOCAL_PART_MIN_LENGTH,
                email_domain_label_min_length: EMAIL_DOMAIN_LABEL_MIN_LENGTH,
                instance_name: INSTANCE_NAME,
            },
            rule_order: RULE_ORDER,
        }
    }

    /// Rule number `step` of [`RULE_ORDER`]; a test pins each step to its code.
    fn evaluate(self, step: usize, password: &str, email: Option<&str>) -> Option<PolicyViolation> {
        use PolicyViolation as V;
        let (min, max, max_bytes, required) = (self.min_length, MAX_LENGTH, MAX_BYTES, REQUIRED_CLASSES);
        match step {
            0 if password.chars().count() < min => Some(V::TooShort { min }),
            // Bytes first: O(1), and it bounds the char count that follows.
            // At 4 bytes per code point at most, the byte cap only bites if
            // MAX_LENGTH is ever raised, but storage budgets are in bytes.
            1 if password.len() > max_bytes || password.chars().count() > max => Some(V::TooLong { max, max_bytes }),
            2 if class_count(password) < required => Some(V::TooFewClasses { required }),
            3 if is_common(password) => Some(V::CommonPassword),
            4 => context_hit(password, email).map(|part| V::ContainsUserInfo { part }),
            _ => None,
        }
    }
}

fn class_count(password: &str) -> usize {
    // Letters from caseless scripts count as "lowercase"; otherwise CJK
    // users could not reach three classes without two Latin cases.
    let classes: [fn(char) -> bool; 4] = [
        |c| c.is_alphabetic() && !c.is_uppercase(),
        char::is_uppercase,
        |c| c.is_numeric() && !c.is_alphabetic(),
        |c| !c.is_alphanumeric() && !c.is_whitespace(),
    ];
    let count = |class: &fn(char) -> bool| password.chars().any(class);
    classes.iter().filter(|class| count(class)).count()
}

fn translate(c: char, (from, to): (&str, &str)) -> char {
    let pos = from.chars().position(|f| f == c);
    pos.and_then(|i| to.chars().nth(i)).unwrap_or(c)
}

fn fold_all(text: &str) -> impl Iterator<Item = String> + '_ {
    FOLDS.into_iter().map(|fold| text.chars().map(|c| translate(c, fold)).collect())
}

/// Drops word separators only: dropping every symbol would turn random text
/// such as `P[A@;n#c.%ho` into a word ("pancho") and reject it.
fn without_separators(text: &str) -> String {
    let separator = |c: char| c.is_whitespace() || matches!(c, '-' | '_' | '.');
    text.chars().filter(|&c| !separator(c)).collect()
}

fn is_common(password: &str) -> bool {
    let lower: Vec<char> = password.to_lowercase().chars().collect();
    let hit = |form: &String| listed(form) || is_repeated_weak_unit(form);
    is_simple_run(&lower) || forms(&lower).iter().any(hit)
}

fn listed(form: &str) -> bool {
    DENYLIST.contains(form)
}

/// Candidate spellings to look up. Each core is the text between a left and a
/// right cut, where cuts sit at the ends or at the first/last character that is
/// alphanumeric, alphabetic or a leet letter. That strips "123!", "!!" or
/// "2024" decorations without ever cutting inside the word, so a random
/// password that merely contains a word is never reduced to that word.
fn forms(chars: &[char]) -> Vec<String> {
    let leet_letter = |c: char| c.is_alphabetic() || FOLDS[0].0.contains(c);
    let preds: [&dyn Fn(char) -> bool; 3] = [&char::is_alphanumeric, &char::is_alphabetic, &leet_letter];
    let lefts = preds.iter().filter_map(|p| chars.iter().position(|&c| p(c)));
    let rights: Vec<usize> =
        (preds.iter()).filter_map(|p| chars.iter().rposition(|&c| p(c)).map(|i| i + 1)).chain([chars.len()]).collect();
    let mut out: Vec<String> = Vec::new();
    let cores = lefts.chain([0]).flat_map(|l| rights.iter().filter_map(move |&r| chars.get(l..r)));
    for core in cores.filter(|core| core.len() >= MIN_CORE_LEN.min(chars.len())) {
        let raw: String = core.iter().collect();
        for variant in fold_all(&raw).chain([raw.clone()]) {
            // "pass_word" and "pass word" are the same choice as "password".
            for form in [without_separators(&variant), variant] {
                if !form.is_empty() && !out.contains(&form) {
                    out.push(form);
                }
            }
        }
    }
    out
}

/// `qwertyqwerty` (two copies of a listed word) or anything made of three or
/// more copies of one unit (`abcabcabc`, `Aa1!Aa1!Aa1!`). The symbol-free
/// skeleton is tried too, because `Z4j!Z4j!2024` cores to `z4j!z4j`.
fn is_repeated_weak_unit(form: &str) -> bool {
    let chars: Vec<char> = form.chars().collect();
    let skeleton: Vec<char> = form.chars().filter(|c| c.is_alphanumeric()).collect();
    [chars, skeleton].iter().any(|chars| {
        let n = chars.len();
        (1..=n / 2)
            .filter(|&p| n % p == 0)
            .filter_map(|p| chars.get(..p))
            .find(|unit| chars.chunks(unit.len()).all(|chunk| chunk == *unit))
            .is_some_and(|unit| n / unit.len() >= 3 || forms(unit).iter().any(|f| listed(f)))
    })
}

/// Step between neighbours of a run: same, next or previous character, with
/// digits wrapping so `7890123` is one run.
fn step(a: char, b: char) -> Option<i64> {
    let diff = i64::from(u32::from(b)) - i64::from(u32::from(a));
    let digits = a.is_ascii_digit() && b.is_ascii_digit();
    Some(if digits { (diff + 1).rem_euclid(10) - 1 } else { diff }).filter(|d| d.abs() <= 1)
}

/// True when the password splits into very few runs of constant step: a
/// random 12-char password has about 11, while `aaaaaaaaaaa1!` or
/// `abcdefgh1234!` have 3. Natural-language passphrases stay far above the
/// threshold of max(3, len/4).
fn is_simple_run(chars: &[char]) -> bool {
    let mut runs = usize::from(!chars.is_empty());
    // Step of the open run; None while the run holds a single character.
    let mut open: Option<i64> = None;
    for (a, b) in chars.iter().zip(chars.iter().skip(1)) {
        match (open, step(*a, *b)) {
            (None, Some(s)) => open = Some(s),
            (Some(o), Some(s)) if o == s => {}
            _ => {
                runs += 1;
                open = None;
            }
        }
    }
    runs <= (chars.len() / 4).max(3)
}

fn context_hit(password: &str, email: Option<&str>) -> Option<UserInfoPart> {
    let lower = password.to_lowercase();
    let mut hay: Vec<String> = fold_all(&lower).chain([lower.clone()]).collect();
    // "Al-ice" or "a.l.i.c.e" still contains the local part.
    let joined: Vec<String> = hay.iter().map(|h| without_separators(h)).collect();
    hay.extend(joined);
    let found = |needle: &str| hay.iter().any(|h| h.contains(needle));
    let long = |min: usize| move |t: &&str| t.chars().count() >= min;

    let email = email.map(|e| e.trim().to_lowercase()).unwrap_or_default();
    let (local, domain) = email.rsplit_once('@').unwrap_or((&email, ""));
    let untagged = local.split('+').next().unwrap_or(local);
    let joined = without_separators(untagged);
    let whole = [local, untagged, &joined].into_iter();
    let pieces = untagged.split(|c: char| !c.is_alphanumeric());
    let mut local_words =
        (whole.filter(long(EMAIL_LOCAL_PART_MIN_LENGTH))).chain(pieces.filter(long(EMAIL_PIECE_MIN_LENGTH)));
    if local_words.any(found) {
        return Some(UserInfoPart::EmailLocalPart);
    }
    // All labels but the TLD: in mail.acme.com the first label says little.
    let labels: Vec<&str> = domain.split('.').collect();
    let named = labels.iter().take(labels.len().saturating_sub(1).max(1));

    if named.copied().filter(long(EMAIL_DOMAIN_LABEL_MIN_LENGTH)).any(found) {
        return Some(UserInfoPart::EmailDomain);
    }
    found(INSTANCE_NAME).then_some(UserInfoPart::InstanceName)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: Option<&str> = Some("Alice.Smith+work@Example.co");

    fn code(password: &str, email: Option<&str>) -> Option<&'static str> {
        PasswordPolicy::default().check(password, email).err().map(|v| v.rule())
    }

    /// Deterministic, non-periodic text of `n` code points (an LCG).
    fn noise(n: usize, alphabet: &[char]) -> String {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut out = String::new();
        for _ in 0..n {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            out.push(alphabet[(x >> 33) as usize % alphabet.len()]);
        }
        out
    }

    /// One line per expected outcome ("ok" = accepted), samples split on `|`.
    const CASES: &str = "\
        too_short: Tq8#vLm2$Rz|Short1!Aa|password\n\
        too_few_classes: qmzvtrwplkxn82|QMZVTRWPLKXN82|qmzv_trwp_lkxn|UPPERlowercase|\
          qmzv trwp lkxn 82|correct horse battery staple again|passwordpassword\n\
        common_password: Password123!|P@ssw0rd2024!!|MONKEY1234567!|Summer2024!!|\
          !!Dragon!!2024|L3tm3in!2024|$unsh1ne2024!|Pass_Word_2024!|Michael1984!!!|\
          Redis@2024!!|Changeme2024!!|!QAZ2wsx#EDC|1qaz@WSX3edc|QwertyQwerty1!|\
          Qwerty!Qwerty!|Z4j!Z4j!2024|Aa1!Aa1!Aa1!|Aaaaaaaaaaa1!|Abcdefgh1234!|\
          123456789012Ab!|Zyxwvutsrq9876!|Admin@123456|Iloveyou!!!!|Palisade2024!\n\
        contains_user_info: Xq7!alicesmith#Zp9|Xq7!ALICE.SMITH#Zp9|Xq7!Sm1th#Zp9wK|\
          Xq7!exAmple#9zK|Xq7!PaLiSaDe#9zK|Xq7!p4l1s4de#9zK\n\
        ok: Tq8#vLm2$Rzw|n7F!pX2qLr9@Kd|G4v%hT9zWq2&mB8e|rP3^kZ8!wN5qX2cJ7m@L|\
          Xk9#dragon$mQ2v|bY6-Monkey-is-not-my-P4ss|Tq8#vLm2Tq8#vLm2|日本語の文字列です12!|\
          qmzv trwp lkxn 8!|Purple elephants dance quietly at 7";

    fn samples() -> impl Iterator<Item = (&'static str, &'static str)> {
        let groups = CASES.lines().filter_map(|line| line.split_once(": "));
        groups.flat_map(|(want, s)| s.split('|').map(move |pw| (want, pw)))
    }

    #[test]
    fn each_rule_rejects_with_its_code() {
        assert_eq!(samples().count(), 50, "CASES parse");
        for (want, pw) in samples() {
            assert_eq!(code(pw, EMAIL).unwrap_or("ok"), want, "{pw}");
        }
        for pw in "password|PaSsWoRd|1qaz2wsx3edc4rfv|aaaaaaaaaaaa|123456789012".split('|') {
            assert!(is_common(pw), "{pw}");
        }
    }

    #[test]
    fn context_rule_thresholds() {
        let err = PasswordPolicy::default().check("Xq7!exAmple#9zK", EMAIL);
        let part = UserInfoPart::EmailDomain;
        assert_eq!(err, Err(PolicyViolation::ContainsUserInfo { part }));
        let user_info = Some("contains_user_info");
        assert_eq!(code("Xq7!al#Zp9wKabc", Some("al@abc.com")), None); // < 3 and < 4
        assert_eq!(code("Xq7!bob#Zp9wKv2", Some("bob@x.org")), user_info);
        assert_eq!(code("Xq7!com#Zp9wKv2", Some("bob@x.com")), None); // TLD ignored
    }

    #[test]
    fn length_limits() {
        let policy = PasswordPolicy::new(16).unwrap();
        let short = policy.check("Tq8#vLm2$Rzw7Kp", None);
        assert_eq!(short, Err(PolicyViolation::TooShort { min: 16 }));
        assert!(policy.check("Tq8#vLm2$Rzw7Kpx", None).is_ok());
        assert!(PasswordPolicy::new(11).is_err() && PasswordPolicy::new(129).is_err());
        assert_eq!(PasswordPolicy::new(12).unwrap(), PasswordPolicy::default());

        let at_limit = noise(MAX_LENGTH, &('!'..='~').collect::<Vec<_>>());
        assert_eq!(code(&at_limit, None), None);
        assert_eq!(code(&format!("{at_limit}x"), None), Some("too_long"));
        // 256 four-byte code points are exactly MAX_BYTES and allowed; a
        // 1025-byte string always has more than 256 code points.
        let wide = format!("Aa1!{}", noise(MAX_LENGTH - 4, &['😀', '🦀', '𝄞', '🐍']));
        assert_eq!((wide.chars().count(), wide.len()), (MAX_LENGTH, 1012));
        assert_eq!(code(&wide, None), None);
        let full = noise(MAX_LENGTH, &['😀', '🦀', '𝄞', '🐍']);
        assert_eq!(full.len(), MAX_BYTES);
        assert_ne!(code(&full, None), Some("too_long"));
        assert_eq!(code(&format!("{full}😀"), None), Some("too_long"));
    }

    #[test]
    fn first_failure_wins_in_documented_order() {
        let policy = PasswordPolicy::default();
        let long_lower = "a".repeat(300);
        let mut all: Vec<(&str, &str)> = samples().collect();
        all.push(("too_long", &long_lower));
        for (want, pw) in all {
            let each: Vec<_> = (0..RULE_ORDER.len()).map(|i| policy.evaluate(i, pw, EMAIL)).collect();
            for (hit, rule) in each.iter().zip(RULE_ORDER) {
                assert!(hit.as_ref().is_none_or(|v| v.rule() == rule), "{pw}");
            }
            let first = each.into_iter().flatten().next();
            let got = first.as_ref().map_or("ok", PolicyViolation::rule);
            assert_eq!(got, want, "{pw}");
            assert_eq!(policy.check(pw, EMAIL).err(), first);
        }
        // Samples that break several rules report only the earliest.
        assert!(is_common("password") && is_common("passwordpassword"));
        assert!(context_hit("Palisade2024!", EMAIL).is_some());
    }

    #[test]
    fn messages_never_echo_the_password() {
        // "password" is the one sample that is a word of every message.
        for (_, pw) in samples().filter(|&(want, pw)| want != "ok" && pw != "password") {
            let err = PasswordPolicy::default().check(pw, EMAIL).unwrap_err();
            for text in [err.message(), err.to_string(), format!("{err:?}")] {
                let leaks = [pw.to_lowercase(), "alice".into(), "example".into()];
                assert!(!leaks.iter().any(|l| text.to_lowercase().contains(l)), "{text}");
            }
        }
    }

    #[test]
    fn denylist_is_loaded_and_clean() {
        assert!(denylist_size() >= 1_500, "{}", denylist_size());
        for entry in DENYLIST.iter() {
            assert!(!entry.is_empty() && entry.trim() == &**entry && !entry.starts_with('#'));
        }
        for word in ["palisade", "z4j", "celery", "redis", "rabbitmq", "letmein"] {
            assert!(DENYLIST.contains(word), "{word}");
        }
        assert_eq!(parse_denylist("# c\n\n  Foo \n#x\nfoo\n").len(), 1);
    }

    #[test]
    fn describe_matches_constants() {
        let d = PasswordPolicy::new(14).unwrap().describe();
        let lengths = (d.min_length, d.max_length, d.max_bytes);
        assert_eq!(lengths, (14, MAX_LENGTH, MAX_BYTES));
        assert_eq!(d.required_character_classes, REQUIRED_CLASSES);
        assert_eq!(d.character_class_names, CLASS_NAMES);
        assert!(!d.passphrase_escape);
        assert_eq!(d.denylist_size, denylist_size());
        assert_eq!(d.context_rule.instance_name, INSTANCE_NAME);
        assert_eq!(d.rule_order, RULE_ORDER);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["required_character_classes"], 3);
        assert_eq!(json["character_class_names"][3], "symbol");
        assert_eq!(json["context_rule"]["email_local_part_min_length"], 3);
        assert_eq!(json["context_rule"]["email_domain_label_min_length"], 4);
    }
}

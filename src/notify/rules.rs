//! Rule filters: which occurrences of a trigger a rule wants. All filters
//! combine with AND; an empty list matches everything.

use serde::{Deserialize, Serialize};

use super::{Severity, Trigger};

pub const MAX_PATTERNS: usize = 20;
pub const MAX_PATTERN_CHARS: usize = 200;
pub const MAX_COOLDOWN_SECS: i32 = 86_400;
pub const DEFAULT_COOLDOWN_SECS: i32 = 300;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Task-name patterns; `*` matches any run of characters (nothing else
    /// is special). Task triggers only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_names: Vec<String>,
    /// Exact queue names. Task triggers only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Only occurrences at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
}

/// The parts of an occurrence filters look at.
pub struct Subject<'a> {
    pub task_name: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub severity: Severity,
}

impl Filters {
    /// Refuse filters that could never apply or cost too much to match.
    pub fn validate(&self, trigger: Trigger) -> Result<(), &'static str> {
        if !trigger.is_task() && (!self.task_names.is_empty() || !self.queues.is_empty()) {
            return Err("task_names and queues filters only apply to task triggers");
        }
        if self.task_names.len() > MAX_PATTERNS || self.queues.len() > MAX_PATTERNS {
            return Err("at most 20 task_names and 20 queues");
        }
        let ok =
            |s: &String| !s.is_empty() && s.chars().count() <= MAX_PATTERN_CHARS && !s.chars().any(char::is_control);
        if !self.task_names.iter().all(ok) || !self.queues.iter().all(ok) {
            return Err("each task_names and queues entry must be 1 to 200 printable characters");
        }
        Ok(())
    }

    pub fn matches(&self, s: &Subject<'_>) -> bool {
        if self.min_severity.is_some_and(|min| s.severity < min) {
            return false;
        }
        if !self.queues.is_empty() && !s.queue.is_some_and(|q| self.queues.iter().any(|x| x == q)) {
            return false;
        }
        if !self.task_names.is_empty() && !s.task_name.is_some_and(|n| self.task_names.iter().any(|p| glob(p, n))) {
            return false;
        }
        true
    }
}

/// `*`-only wildcard match, iterative with one backtrack point: linear in
/// practice and O(pattern × text) at worst, with both capped at a few
/// hundred characters, so a hostile pattern cannot stall ingest.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("billing.*", "billing.charge"));
        assert!(glob("*charge", "billing.charge"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(!glob("billing.?", "billing.x"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        // Worst case stays fast.
        let long = "a".repeat(200);
        assert!(!glob(&format!("{}b", "*a".repeat(100)), &long));
    }

    #[test]
    fn filters_combine_with_and() {
        let f = Filters {
            task_names: vec!["billing.*".into()],
            queues: vec!["critical".into()],
            min_severity: Some(Severity::Error),
        };
        let s = |n, q, sev| Subject { task_name: Some(n), queue: Some(q), severity: sev };
        assert!(f.matches(&s("billing.charge", "critical", Severity::Error)));
        assert!(!f.matches(&s("billing.charge", "default", Severity::Error)));
        assert!(!f.matches(&s("mail.send", "critical", Severity::Error)));
        assert!(!f.matches(&s("billing.charge", "critical", Severity::Warning)));
        assert!(Filters::default().matches(&Subject { task_name: None, queue: None, severity: Severity::Info }));
        assert!(f.validate(Trigger::AgentOffline).is_err());
        assert!(f.validate(Trigger::TaskFailed).is_ok());
    }
}

//! Neutralising task data for chat markup. Task names, queues and
//! exceptions come from workers, so they are attacker-influenced: without
//! escaping, an exception text could carry a masked link
//! (`<https://evil|Reset your password>`, `[Reset](https://evil)`) or a
//! mention that pages a whole workspace (`<!channel>`, `@everyone`).

/// Slack mrkdwn: `&`, `<` and `>` are the only control characters (links,
/// mentions and `<!channel>` all need `<`), and Slack documents exactly
/// these three entities.
pub fn slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Discord markdown: backslash-escape every markdown character (masked
/// links need `[`, `]`, `(`, `)`; user, role and channel mentions need `<`)
/// and break `@everyone`/`@here` with a zero-width space. The payload also
/// sets `allowed_mentions: {parse: []}`, so nothing pings even if a
/// construct slipped through.
pub fn discord(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '(' | ')' | '#' | '-' | ':' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200b}"),
            c => out.push(c),
        }
    }
    out
}

/// Teams Adaptive Card text (a CommonMark subset): backslash-escape the
/// characters that start links, emphasis, code, headings and HTML-like
/// tags (Teams renders `<at>` only with a matching entity, which we never
/// send).
pub fn teams(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '!' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_links_and_mentions_become_text() {
        let e = slack("<https://evil.example|Reset> <!channel> <@U123> a&b");
        assert_eq!(e, "&lt;https://evil.example|Reset&gt; &lt;!channel&gt; &lt;@U123&gt; a&amp;b");
        assert!(!e.contains('<') && !e.contains('>'));
    }

    #[test]
    fn discord_masked_links_and_everyone_are_broken() {
        let e = discord("[Reset](https://evil.example) @everyone <@123> **x**");
        assert!(!e.contains("[Reset]("), "{e}");
        assert!(!e.contains("@everyone"));
        assert!(e.contains("\\[Reset\\]\\(https\\://evil.example\\)"), "{e}");
        assert!(e.contains("\\<@\u{200b}123\\>"));
    }

    #[test]
    fn teams_links_are_escaped() {
        let e = teams("[Reset](https://evil.example) ![img](x) <at>Boss</at>");
        assert_eq!(e, "\\[Reset\\]\\(https://evil.example\\) \\!\\[img\\]\\(x\\) \\<at\\>Boss\\</at\\>");
    }
}

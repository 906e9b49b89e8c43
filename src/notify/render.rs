//! One notification as each receiver expects it. Every string that came
//! from task data goes through the channel's escaper (`escape`) or, for
//! JSON-only receivers (webhook, PagerDuty), through serde's encoder.

use serde_json::{json, Value};
use uuid::Uuid;

use super::escape;
use super::message::{clip, Notification};
use super::Severity;

fn emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "🔴",
        Severity::Error => "🟠",
        Severity::Warning => "🟡",
        Severity::Info => "🔵",
    }
}

/// Webhook body: the notification plus its delivery id, compact JSON.
/// Receivers must verify the signature over these exact bytes.
pub fn webhook(n: &Notification, delivery_id: Uuid) -> Vec<u8> {
    let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("delivery_id".into(), json!(delivery_id));
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Slack incoming webhook. Block Kit `plain_text` is not parsed for links
/// or mentions at all; the `mrkdwn` fallback `text` is escaped anyway.
pub fn slack(n: &Notification) -> Vec<u8> {
    let title = format!("{} {}", emoji(n.severity), clip(&n.title, 140));
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(10)
        .map(|(k, v)| json!({ "type": "plain_text", "text": format!("{k}: {}", clip(&v, 200)), "emoji": false }))
        .collect();
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": title, "emoji": true } }),
        json!({ "type": "section", "fields": fields }),
    ];
    if let Some(d) = &n.detail {
        blocks.push(
            json!({ "type": "section", "text": { "type": "plain_text", "text": clip(d, 1500), "emoji": false } }),
        );
    }
    let body = json!({ "text": escape::slack(&title), "mrkdwn": false, "blocks": blocks });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Discord webhook (native API). `allowed_mentions` with an empty `parse`
/// list means nothing in the message can ping anyone.
pub fn discord(n: &Notification) -> Vec<u8> {
    let mut text = format!("{} **{}**\n", emoji(n.severity), escape::discord(&clip(&n.title, 200)));
    for (k, v) in n.facts() {
        text.push_str(&format!("**{k}:** {}\n", escape::discord(&clip(&v, 200))));
    }
    if let Some(d) = &n.detail {
        text.push_str(&escape::discord(&clip(d, 1000)));
    }
    let body = json!({
        "content": clip(&text, 1900),
        "username": "Palisade",
        "allowed_mentions": { "parse": [] },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Microsoft Teams: an Adaptive Card in a message envelope (what Teams
/// workflows and the classic connectors both accept).
pub fn teams(n: &Notification) -> Vec<u8> {
    let style = match n.severity {
        Severity::Critical => "attention",
        Severity::Error | Severity::Warning => "warning",
        Severity::Info => "default",
    };
    let facts: Vec<Value> =
        n.facts().into_iter().map(|(k, v)| json!({ "title": k, "value": escape::teams(&clip(&v, 200)) })).collect();
    let mut body = vec![
        json!({ "type": "Container", "style": style, "items": [
            { "type": "TextBlock", "text": escape::teams(&clip(&n.title, 200)), "weight": "Bolder", "size": "Large", "wrap": true }
        ]}),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    if let Some(d) = &n.detail {
        body.push(json!({ "type": "TextBlock", "text": escape::teams(&clip(d, 1500)), "fontType": "Monospace", "wrap": true }));
    }
    let card = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": body,
            }
        }]
    });
    serde_json::to_vec(&card).unwrap_or_default()
}

/// PagerDuty Events v2 `trigger`. The dedup key groups repeats of one
/// subject into one incident.
pub fn pagerduty(n: &Notification, routing_key: &str) -> Vec<u8> {
    let details: serde_json::Map<String, Value> =
        n.facts().into_iter().map(|(k, v)| (k.to_string(), Value::String(clip(&v, 1000)))).collect();
    let mut details = Value::Object(details);
    if let (Some(d), Some(obj)) = (&n.detail, details.as_object_mut()) {
        obj.insert("detail".into(), Value::String(clip(d, 4000)));
    }
    let body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.subject_key(),
        "payload": {
            "summary": clip(&format!("{} ({})", n.title, n.project_slug), 1000),
            "source": format!("palisade/{}", n.project_slug),
            "severity": n.severity.as_str(),
            "component": n.task.as_ref().and_then(|t| t.name.clone()).or_else(|| n.agent.as_ref().map(|a| a.name.clone())).unwrap_or_else(|| "palisade".into()),
            "group": n.trigger.name(),
            "class": "palisade.notification",
            "custom_details": details,
        }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Email: subject and plain-text body (no markup to inject into).
pub fn email(n: &Notification) -> (String, String) {
    let subject = format!("[Palisade {}] {}", n.severity.as_str(), clip(&n.title, 150));
    let mut body = format!("{}\r\n\r\n", n.title);
    for (k, v) in n.facts() {
        body.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(d) = &n.detail {
        body.push_str(&format!("\r\n{}\r\n", clip(d, 2000)));
    }
    body.push_str("\r\n-- Palisade notifications\r\n");
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::TaskInfo;
    use crate::notify::Trigger;

    fn evil() -> Notification {
        let mut n = Notification::test(Uuid::new_v4(), "alpha", chrono::Utc::now());
        n.test = false;
        n.trigger = Trigger::TaskFailed;
        n.title = "Task failed: <!channel> [Reset](https://evil.example) @everyone".into();
        n.task = Some(TaskInfo {
            engine: "rq".into(),
            task_id: "t1".into(),
            name: Some("<https://evil.example|click>".into()),
            queue: Some("@here".into()),
            retries: 0,
        });
        n.detail = Some("ValueError: <@U123> [x](https://evil.example)".into());
        n
    }

    #[test]
    fn chat_payloads_carry_no_live_markup() {
        let n = evil();
        let slack = String::from_utf8(slack(&n)).unwrap();
        let v: Value = serde_json::from_str(&slack).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(!text.contains("<!channel>") && text.contains("&lt;!channel&gt;"));
        // Blocks are plain_text only: no mrkdwn anywhere.
        assert!(v["blocks"].as_array().unwrap().iter().all(|b| !b.to_string().contains("\"type\":\"mrkdwn\"")));

        let discord: Value = serde_json::from_slice(&discord(&n)).unwrap();
        let content = discord["content"].as_str().unwrap();
        assert!(!content.contains("@everyone") && !content.contains("@here") && !content.contains("[Reset]("));
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));

        let teams = String::from_utf8(teams(&n)).unwrap();
        assert!(!teams.contains("[Reset](") && !teams.contains("[x]("), "{teams}");
    }

    #[test]
    fn webhook_body_is_the_notification_with_its_delivery_id() {
        let n = evil();
        let id = Uuid::new_v4();
        let v: Value = serde_json::from_slice(&webhook(&n, id)).unwrap();
        assert_eq!(v["delivery_id"], json!(id));
        assert_eq!(v["trigger"], "task.failed");
        assert_eq!(v["task"]["task_id"], "t1");
        let pd: Value = serde_json::from_slice(&pagerduty(&n, "R0UTINGKEY")).unwrap();
        assert_eq!(pd["payload"]["severity"], "info");
        assert!(pd["dedup_key"].as_str().unwrap().contains("task.failed"));
    }
}

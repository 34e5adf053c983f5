//! ACL files in Mosquitto's syntax:
//!
//! ```text
//! # anonymous clients: topic lines before the first `user` line
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret/#
//! pattern write devices/%c/up      # every client; %c = client id, %u = user name
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default when left out) or
//! `deny`. A matching `deny` wins over any grant; nothing matching means no
//! access. Unlike Mosquitto's file, a SUBSCRIBE is refused unless a read rule
//! covers every topic the filter can match.

use std::path::Path;

use thiserror::Error;

use crate::mqtt::topic;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages (delivery, SUBSCRIBE).
    Read,
    /// Publish messages.
    Write,
}

/// What an ACL line grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Grant {
    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Grant::ReadWrite, _) | (Grant::Read, Access::Read) | (Grant::Write, Access::Write)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    topic: String,
}

/// An ACL line that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {why}")]
pub struct AclError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFile {
    /// Rules for clients without a user name (before any `user` line).
    anonymous: Vec<Rule>,
    /// Rules per user name.
    users: std::collections::HashMap<String, Vec<Rule>>,
    /// `pattern` rules: apply to every client after substitution.
    patterns: Vec<Rule>,
}

impl AclFile {
    /// Parses the file text.
    pub fn parse(text: &str) -> Result<AclFile, AclError> {
        let mut acl = AclFile::default();
        let mut current: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |why: &str| AclError {
                line,
                why: why.to_string(),
            };
            let (keyword, rest) = l.split_once([' ', '\t']).unwrap_or((l, ""));
            let rest = rest.trim_start();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(err("`user` needs a name"));
                    }
                    // Mosquitto takes the rest of the line, spaces included.
                    current = Some(rest.to_string());
                    acl.users.entry(rest.to_string()).or_default();
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(|why| err(&why))?;
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else {
                        match &current {
                            Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                            None => acl.anonymous.push(rule),
                        }
                    }
                }
                other => {
                    return Err(err(&format!(
                        "unknown keyword {other:?} (expected user, topic or pattern)"
                    )));
                }
            }
        }
        Ok(acl)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<AclFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        AclFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the client may publish to / receive from the topic name `topic`.
    pub fn allows_topic(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
    ) -> bool {
        self.decide(client_id, username, access, |pattern| {
            topic::matches(pattern, topic)
        })
    }

    /// Whether the client may subscribe to `filter`: some read rule covers
    /// every topic the filter matches, and no deny rule covers all of them
    /// (a deny that covers only part is enforced per delivery).
    pub fn allows_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let filter = match topic::parse_shared(filter) {
            Some(Ok((_, inner))) => inner,
            Some(Err(_)) => return false,
            None => filter,
        };
        self.decide(client_id, username, Access::Read, |pattern| {
            covers(pattern, filter)
        })
    }

    fn decide(
        &self,
        client_id: &str,
        username: Option<&str>,
        access: Access,
        applies: impl Fn(&str) -> bool,
    ) -> bool {
        let own: &[Rule] = match username {
            Some(u) => self.users.get(u).map_or(&[], Vec::as_slice),
            None => &self.anonymous,
        };
        let substituted: Vec<(Grant, String)> = self
            .patterns
            .iter()
            .filter_map(|r| substitute(&r.topic, client_id, username).map(|t| (r.grant, t)))
            .collect();
        let rules = own
            .iter()
            .map(|r| (r.grant, r.topic.as_str()))
            .chain(substituted.iter().map(|(g, t)| (*g, t.as_str())));
        let mut granted = false;
        for (grant, pattern) in rules {
            if !applies(pattern) {
                continue;
            }
            if grant == Grant::Deny {
                return false;
            }
            granted |= grant.allows(access);
        }
        granted
    }
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let (grant, topic) = match first {
        "read" => (Grant::Read, after.trim_start()),
        "write" => (Grant::Write, after.trim_start()),
        "readwrite" => (Grant::ReadWrite, after.trim_start()),
        "deny" => (Grant::Deny, after.trim_start()),
        _ => (Grant::ReadWrite, rest),
    };
    if topic.is_empty() {
        return Err("rule needs a topic".into());
    }
    // %u / %c are plain characters for the filter syntax check.
    topic::validate_topic_filter(topic).map_err(|e| format!("invalid topic {topic:?}: {e}"))?;
    Ok(Rule {
        grant,
        topic: topic.to_string(),
    })
}

/// Fills `%u` and `%c`; `None` (rule skipped) when a value is missing or
/// could widen the rule: a client id `a/#` must not turn `x/%c` into a wildcard,
/// and `a/b` must not reach into client `a`'s subtree.
fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let safe = |v: &str| !v.is_empty() && !v.contains(['+', '#', '/']);
    let mut out = pattern.to_string();
    if out.contains("%c") {
        if !safe(client_id) {
            return None;
        }
        out = out.replace("%c", client_id);
    }
    if out.contains("%u") {
        let u = username.filter(|u| safe(u))?;
        out = out.replace("%u", u);
    }
    Some(out)
}

/// True when every topic matched by `filter` is matched by `pattern` (both
/// may hold wildcards).
fn covers(pattern: &str, filter: &str) -> bool {
    // A leading wildcard never matches `$` topics [MQTT-4.7.2-1].
    if filter.starts_with('$') && pattern.starts_with(['+', '#']) {
        return false;
    }
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some(_), Some("#")) | (None, Some(_)) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            // `a/#` also matches `a`, which `a` covers only if nothing more is left.
            (Some(_), None) | (Some(_), Some(_)) => return false,
            (None, None) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> AclFile {
        AclFile::parse(text).unwrap()
    }

    #[test]
    fn topic_without_access_word_grants_readwrite() {
        let a = acl("user u\ntopic x/y");
        assert!(a.allows_topic("c", Some("u"), "x/y", Access::Read));
        assert!(a.allows_topic("c", Some("u"), "x/y", Access::Write));
    }

    #[test]
    fn read_rule_does_not_grant_write() {
        let a = acl("user u\ntopic read x/#");
        assert!(a.allows_topic("c", Some("u"), "x/1", Access::Read));
        assert!(!a.allows_topic("c", Some("u"), "x/1", Access::Write));
    }

    #[test]
    fn deny_wins_over_an_earlier_grant() {
        let a = acl("user u\ntopic readwrite #\ntopic deny secret/#");
        assert!(!a.allows_topic("c", Some("u"), "secret/k", Access::Read));
        assert!(a.allows_topic("c", Some("u"), "open", Access::Read));
    }

    #[test]
    fn rules_before_the_first_user_line_are_for_anonymous_clients_only() {
        let a = acl("topic read pub/#\nuser u\ntopic write u/#");
        assert!(a.allows_topic("c", None, "pub/1", Access::Read));
        assert!(!a.allows_topic("c", Some("u"), "pub/1", Access::Read));
        assert!(!a.allows_topic("c", None, "u/1", Access::Write));
    }

    #[test]
    fn patterns_substitute_user_and_client_id_for_everyone() {
        let a = acl("pattern readwrite users/%u/#\npattern write devices/%c/up");
        assert!(a.allows_topic("d1", Some("ann"), "users/ann/x", Access::Read));
        assert!(!a.allows_topic("d1", Some("ann"), "users/bob/x", Access::Read));
        assert!(a.allows_topic("d1", None, "devices/d1/up", Access::Write));
        assert!(!a.allows_topic("d1", None, "users/x", Access::Read));
    }

    #[test]
    fn patterns_are_skipped_for_ids_that_would_widen_them() {
        let a = acl("pattern readwrite devices/%c/#");
        assert!(!a.allows_topic("#", None, "devices/a/b", Access::Read));
        assert!(!a.allows_topic("a/b", None, "devices/a/b/x", Access::Read));
        assert!(!a.allows_subscribe("+", None, "devices/+/#"));
    }

    #[test]
    fn subscribe_needs_a_read_rule_covering_the_whole_filter() {
        let a = acl("user u\ntopic read sensors/+/temp\ntopic read logs/#");
        assert!(a.allows_subscribe("c", Some("u"), "sensors/1/temp"));
        assert!(a.allows_subscribe("c", Some("u"), "sensors/+/temp"));
        assert!(a.allows_subscribe("c", Some("u"), "logs/#"));
        assert!(!a.allows_subscribe("c", Some("u"), "sensors/#"));
        assert!(!a.allows_subscribe("c", Some("u"), "#"));
        assert!(!a.allows_subscribe("c", Some("u"), "$share/g/sensors/#"));
        assert!(a.allows_subscribe("c", Some("u"), "$share/g/logs/a"));
    }

    #[test]
    fn deny_refuses_subscribe_only_when_it_covers_the_filter() {
        let a = acl("user u\ntopic read #\ntopic deny secret/#");
        assert!(a.allows_subscribe("c", Some("u"), "#"));
        assert!(!a.allows_subscribe("c", Some("u"), "secret/+"));
    }

    #[test]
    fn leading_wildcards_do_not_cover_dollar_topics() {
        let a = acl("user u\ntopic read #");
        assert!(!a.allows_subscribe("c", Some("u"), "$SYS/#"));
        assert!(!a.allows_topic("c", Some("u"), "$SYS/x", Access::Read));
    }

    #[test]
    fn unknown_keywords_and_bad_topics_are_errors_with_line_numbers() {
        assert_eq!(AclFile::parse("user u\nallow x").unwrap_err().line, 2);
        assert_eq!(AclFile::parse("topic read a/#/b").unwrap_err().line, 1);
        assert_eq!(AclFile::parse("topic read").unwrap_err().line, 1);
    }

    #[test]
    fn covers_follows_wildcard_semantics() {
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/#"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/+", "a"));
        assert!(covers("+/+", "x/+"));
        assert!(!covers("a/b", "a/+"));
    }
}

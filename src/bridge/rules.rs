//! Topic rules of a bridge: which topics cross, in which direction, and how
//! their names change on the way (prefixes, or templates that reuse the
//! levels a wildcard matched). Pure functions, no IO.

use thiserror::Error;

use crate::config::{BridgeDirection, BridgeTopicConfig};
use crate::mqtt::topic::{matches, validate_topic_filter, validate_topic_name};
use crate::qos::QoS;

/// Why a topic rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    /// A template has a `{` without a known placeholder and `}`.
    #[error("template {template:?}: {why}")]
    BadTemplate {
        /// The template text.
        template: String,
        /// What is wrong.
        why: String,
    },
    /// A template was given for a direction it cannot serve.
    #[error("{0}")]
    Direction(String),
    /// The pattern with its prefix is not a valid filter.
    #[error("pattern {0:?} with its prefix is not a valid topic filter")]
    BadFilter(String),
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// `{n}`: the n-th wildcard capture, 1-based.
    Capture(usize),
    /// `{client_id}`: the publishing client's id.
    ClientId,
}

/// A parsed topic template such as `site1/{1}/temperature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; `captures` is how many wildcards the pattern has.
    pub fn parse(text: &str, captures: usize) -> Result<Template, RuleError> {
        let bad = |why: String| RuleError::BadTemplate {
            template: text.to_owned(),
            why,
        };
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let (before, after) = rest.split_at(open);
            if !before.is_empty() {
                pieces.push(Piece::Text(before.to_owned()));
            }
            let Some(close) = after.find('}') else {
                return Err(bad("'{' without '}'".into()));
            };
            let name = after.get(1..close).unwrap_or_default();
            let piece = if name == "client_id" {
                Piece::ClientId
            } else {
                match name.parse::<usize>() {
                    Ok(n) if (1..=captures).contains(&n) => Piece::Capture(n),
                    Ok(n) => {
                        return Err(bad(format!(
                            "{{{n}}} but the pattern has {captures} wildcard(s)"
                        )));
                    }
                    Err(_) => {
                        return Err(bad(format!(
                            "unknown placeholder {{{name}}}; use {{1}}, {{2}}… or {{client_id}}"
                        )));
                    }
                }
            };
            pieces.push(piece);
            rest = after.get(close + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if pieces
            .iter()
            .any(|p| matches!(p, Piece::Text(t) if t.contains(['+', '#'])))
        {
            return Err(bad("a template must not contain '+' or '#'".into()));
        }
        Ok(Template { pieces })
    }

    /// True when the template needs the publisher's client id.
    pub fn uses_client_id(&self) -> bool {
        self.pieces.contains(&Piece::ClientId)
    }

    /// Fills in the placeholders; `None` if a needed value is missing.
    pub fn render(&self, captures: &[&str], client_id: Option<&str>) -> Option<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Capture(n) => out.push_str(captures.get(n.checked_sub(1)?)?),
                Piece::ClientId => out.push_str(client_id?),
            }
        }
        Some(out)
    }
}

/// The levels of `topic` that the wildcards of `filter` matched, in order;
/// `#` captures the rest joined with `/` (possibly empty). `None` if no match.
pub fn captures<'t>(filter: &str, topic: &'t str) -> Option<Vec<&'t str>> {
    if !matches(filter, topic) {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = Some(topic);
    for level in filter.split('/') {
        match level {
            "#" => {
                out.push(rest.unwrap_or(""));
                return Some(out);
            }
            _ => {
                let current = rest?;
                let (head, tail) = match current.split_once('/') {
                    Some((h, t)) => (h, Some(t)),
                    None => (current, None),
                };
                if level == "+" {
                    out.push(head);
                }
                rest = tail;
            }
        }
    }
    Some(out)
}

/// One topic rule, ready to map names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    /// The pattern, without prefixes.
    pub pattern: String,
    /// Which way messages flow.
    pub direction: BridgeDirection,
    /// QoS of subscriptions and forwarded messages.
    pub qos: QoS,
    /// Prefix on the local broker.
    pub local_prefix: String,
    /// Prefix on the remote broker.
    pub remote_prefix: String,
    /// Keep the retain flag of forwarded messages.
    pub retain: bool,
    remote_template: Option<Template>,
    local_template: Option<Template>,
}

fn wildcard_count(pattern: &str) -> usize {
    pattern
        .split('/')
        .filter(|l| *l == "+" || *l == "#")
        .count()
}

impl TopicRule {
    /// Builds a rule from its config entry.
    pub fn from_config(c: &BridgeTopicConfig) -> Result<TopicRule, RuleError> {
        let n = wildcard_count(&c.pattern);
        let remote_template = c
            .remote_topic
            .as_deref()
            .map(|t| Template::parse(t, n))
            .transpose()?;
        let local_template = c
            .local_topic
            .as_deref()
            .map(|t| Template::parse(t, n))
            .transpose()?;
        // A template is a one-way function: the way back is not defined.
        if remote_template.is_some() && c.direction != BridgeDirection::Out {
            return Err(RuleError::Direction(format!(
                "pattern {:?}: remote_topic needs direction = \"out\"",
                c.pattern
            )));
        }
        if local_template.is_some() && c.direction != BridgeDirection::In {
            return Err(RuleError::Direction(format!(
                "pattern {:?}: local_topic needs direction = \"in\"",
                c.pattern
            )));
        }
        // Only local publishers are known: a remote PUBLISH does not say who sent it.
        if let (Some(t), Some(text)) = (&local_template, &c.local_topic)
            && t.uses_client_id()
        {
            return Err(RuleError::BadTemplate {
                template: text.clone(),
                why: "{client_id} is known only for messages going out; use it in remote_topic"
                    .into(),
            });
        }
        let rule = TopicRule {
            pattern: c.pattern.clone(),
            direction: c.direction,
            qos: c.qos,
            local_prefix: c.local_prefix.clone(),
            remote_prefix: c.remote_prefix.clone(),
            retain: c.retain,
            remote_template,
            local_template,
        };
        for filter in [rule.local_filter(), rule.remote_filter()] {
            validate_topic_filter(&filter).map_err(|_| RuleError::BadFilter(filter.clone()))?;
        }
        Ok(rule)
    }

    /// True if messages flow local → remote.
    pub fn is_out(&self) -> bool {
        matches!(self.direction, BridgeDirection::Out | BridgeDirection::Both)
    }

    /// True if messages flow remote → local.
    pub fn is_in(&self) -> bool {
        matches!(self.direction, BridgeDirection::In | BridgeDirection::Both)
    }

    /// The filter the bridge subscribes to locally (out rules).
    pub fn local_filter(&self) -> String {
        format!("{}{}", self.local_prefix, self.pattern)
    }

    /// The filter the bridge subscribes to remotely (in rules).
    pub fn remote_filter(&self) -> String {
        format!("{}{}", self.remote_prefix, self.pattern)
    }

    /// True when a template needs the publisher's client id.
    pub fn uses_client_id(&self) -> bool {
        let t = |t: &Option<Template>| t.as_ref().is_some_and(Template::uses_client_id);
        t(&self.remote_template) || t(&self.local_template)
    }

    /// The remote topic for a local topic, if this rule carries it out.
    pub fn to_remote(&self, local_topic: &str, client_id: Option<&str>) -> Option<String> {
        if !self.is_out() {
            return None;
        }
        map(
            local_topic,
            &self.local_prefix,
            &self.pattern,
            &self.remote_prefix,
            self.remote_template.as_ref(),
            client_id,
        )
    }

    /// The local topic for a remote topic, if this rule carries it in.
    pub fn to_local(&self, remote_topic: &str, client_id: Option<&str>) -> Option<String> {
        if !self.is_in() {
            return None;
        }
        map(
            remote_topic,
            &self.remote_prefix,
            &self.pattern,
            &self.local_prefix,
            self.local_template.as_ref(),
            client_id,
        )
    }
}

fn map(
    topic: &str,
    from_prefix: &str,
    pattern: &str,
    to_prefix: &str,
    template: Option<&Template>,
    client_id: Option<&str>,
) -> Option<String> {
    let rest = topic.strip_prefix(from_prefix)?;
    let caps = captures(pattern, rest)?;
    let out = match template {
        Some(t) => t.render(&caps, client_id)?,
        None => format!("{to_prefix}{rest}"),
    };
    validate_topic_name(&out).ok()?;
    Some(out)
}

/// Where a local message goes out, as [`route_out`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutRoute<'r> {
    /// Send it to the remote on this topic.
    To(&'r TopicRule, String),
    /// No out rule matches the topic.
    NoRule,
    /// The first matching rule cannot name it: its template needs the
    /// publisher's client id and the message has none (the broker's own
    /// messages), or the rendered name is not a valid topic.
    Unnamed(&'r TopicRule),
}

/// The first out rule whose filter matches `local_topic` decides where it goes.
///
/// A rule that matches but cannot render the name does not fall through to
/// later rules: a `{client_id}` rule sends a message without a publisher
/// nowhere rather than to a catch-all's topic.
pub fn route_out<'r>(
    rules: &'r [TopicRule],
    local_topic: &str,
    client_id: Option<&str>,
) -> OutRoute<'r> {
    let Some(rule) = rules
        .iter()
        .find(|r| r.is_out() && matches(&r.local_filter(), local_topic))
    else {
        return OutRoute::NoRule;
    };
    match rule.to_remote(local_topic, client_id) {
        Some(topic) => OutRoute::To(rule, topic),
        None => OutRoute::Unnamed(rule),
    }
}

/// The first rule that carries `remote_topic` in, with the local topic.
pub fn route_in<'r>(
    rules: &'r [TopicRule],
    remote_topic: &str,
    client_id: Option<&str>,
) -> Option<(&'r TopicRule, String)> {
    rules
        .iter()
        .find_map(|r| r.to_local(remote_topic, client_id).map(|t| (r, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, direction: BridgeDirection, lp: &str, rp: &str) -> BridgeTopicConfig {
        BridgeTopicConfig {
            pattern: pattern.into(),
            direction,
            qos: QoS::AtLeastOnce,
            local_prefix: lp.into(),
            remote_prefix: rp.into(),
            remote_topic: None,
            local_topic: None,
            retain: true,
        }
    }

    #[test]
    fn out_rule_swaps_prefixes() {
        let r = TopicRule::from_config(&rule("sensors/#", BridgeDirection::Out, "lab/", "site1/"))
            .unwrap();
        assert_eq!(r.local_filter(), "lab/sensors/#");
        assert_eq!(
            r.to_remote("lab/sensors/t1", None).as_deref(),
            Some("site1/sensors/t1")
        );
        assert_eq!(r.to_remote("sensors/t1", None), None);
        assert_eq!(r.to_local("site1/sensors/t1", None), None);
    }

    #[test]
    fn both_rule_maps_each_way() {
        let r = TopicRule::from_config(&rule("cmd/+", BridgeDirection::Both, "", "dev/")).unwrap();
        assert_eq!(r.to_local("dev/cmd/x", None).as_deref(), Some("cmd/x"));
        assert_eq!(r.to_remote("cmd/x", None).as_deref(), Some("dev/cmd/x"));
    }

    #[test]
    fn template_reuses_captured_levels_and_client_id() {
        let mut c = rule("sensors/+/temp", BridgeDirection::Out, "", "");
        c.remote_topic = Some("site1/{1}/temperature/{client_id}".into());
        let r = TopicRule::from_config(&c).unwrap();
        assert_eq!(
            r.to_remote("sensors/k1/temp", Some("node7")).as_deref(),
            Some("site1/k1/temperature/node7")
        );
        assert_eq!(r.to_remote("sensors/k1/temp", None), None);
        assert!(r.uses_client_id());
    }

    #[test]
    fn hash_captures_the_rest() {
        assert_eq!(captures("a/+/#", "a/b/c/d"), Some(vec!["b", "c/d"]));
        assert_eq!(captures("a/#", "a"), Some(vec![""]));
        assert_eq!(captures("a/+", "b/c"), None);
    }

    #[test]
    fn template_placeholder_beyond_the_wildcards_is_refused() {
        assert!(Template::parse("x/{2}", 1).is_err());
        assert!(Template::parse("x/{name}", 1).is_err());
        assert!(Template::parse("x/{1", 1).is_err());
        assert!(Template::parse("x/+/{1}", 1).is_err());
    }

    #[test]
    fn template_on_a_both_rule_is_refused() {
        let mut c = rule("a/+", BridgeDirection::Both, "", "");
        c.remote_topic = Some("b/{1}".into());
        assert!(matches!(
            TopicRule::from_config(&c),
            Err(RuleError::Direction(_))
        ));
    }

    #[test]
    fn sys_topics_are_not_matched_by_a_leading_wildcard() {
        let r = TopicRule::from_config(&rule("#", BridgeDirection::Both, "", "")).unwrap();
        assert_eq!(r.to_remote("$SYS/broker/connection/x/state", None), None);
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = vec![
            TopicRule::from_config(&rule("a/#", BridgeDirection::Out, "", "one/")).unwrap(),
            TopicRule::from_config(&rule("#", BridgeDirection::Out, "", "two/")).unwrap(),
        ];
        assert_eq!(
            route_out(&rules, "a/b", None),
            OutRoute::To(&rules[0], "one/a/b".into())
        );
        assert_eq!(
            route_out(&rules, "c", None),
            OutRoute::To(&rules[1], "two/c".into())
        );
    }

    #[test]
    fn client_id_rule_without_a_publisher_does_not_fall_through() {
        let mut c = rule("sensors/+/temp", BridgeDirection::Out, "", "");
        c.remote_topic = Some("site1/{client_id}/{1}".into());
        let rules = vec![
            TopicRule::from_config(&c).unwrap(),
            TopicRule::from_config(&rule("#", BridgeDirection::Out, "", "all/")).unwrap(),
        ];
        assert_eq!(
            route_out(&rules, "sensors/k/temp", Some("node1")),
            OutRoute::To(&rules[0], "site1/node1/k".into())
        );
        assert_eq!(
            route_out(&rules, "sensors/k/temp", None),
            OutRoute::Unnamed(&rules[0])
        );
        assert_eq!(
            route_out(&rules, "other", None),
            OutRoute::To(&rules[1], "all/other".into())
        );
    }

    #[test]
    fn client_id_with_a_wildcard_character_names_no_topic() {
        let mut c = rule("t", BridgeDirection::Out, "", "");
        c.remote_topic = Some("up/{client_id}".into());
        let rules = vec![TopicRule::from_config(&c).unwrap()];
        assert_eq!(
            route_out(&rules, "t", Some("a+b")),
            OutRoute::Unnamed(&rules[0])
        );
    }

    #[test]
    fn no_out_rule_for_the_topic() {
        let rules =
            vec![TopicRule::from_config(&rule("a/#", BridgeDirection::In, "", "")).unwrap()];
        assert_eq!(route_out(&rules, "a/b", None), OutRoute::NoRule);
    }

    #[test]
    fn client_id_in_a_local_template_is_refused() {
        let mut c = rule("cmd/+", BridgeDirection::In, "", "");
        c.local_topic = Some("dev/{client_id}/{1}".into());
        assert!(matches!(
            TopicRule::from_config(&c),
            Err(RuleError::BadTemplate { .. })
        ));
    }
}

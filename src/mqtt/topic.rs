//! Topic names and topic filters: validation and matching (MQTT 3.1.1 §4.7,
//! MQTT 5 §4.7, shared subscriptions MQTT 5 §4.8.2).
//!
//! These rules are the same for every protocol sngate speaks, so the broker
//! core and the MQTT-SN gateway use them too.

use thiserror::Error;

/// Why a topic name or filter is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// Topic names and filters must be at least one character long [MQTT-4.7.3-1].
    #[error("[MQTT-4.7.3-1] topic is empty")]
    Empty,
    /// A topic name must not contain wildcards [MQTT-3.3.2-2].
    #[error("[MQTT-3.3.2-2] topic name contains a wildcard")]
    WildcardInName,
    /// `+` must occupy a whole level [MQTT-4.7.1-3].
    #[error("[MQTT-4.7.1-3] '+' does not occupy an entire level")]
    BadSingleLevelWildcard,
    /// `#` must be last and occupy a whole level [MQTT-4.7.1-2].
    #[error("[MQTT-4.7.1-2] '#' is not the last character of the filter or not a whole level")]
    BadMultiLevelWildcard,
    /// U+0000 is never allowed in a topic [MQTT-4.7.3-2].
    #[error("[MQTT-4.7.3-2] topic contains U+0000")]
    NullCharacter,
    /// Topics are limited to 65535 bytes [MQTT-4.7.3-3].
    #[error("[MQTT-4.7.3-3] topic is longer than 65535 bytes")]
    TooLong,
    /// `$share/` needs a non-empty group without wildcards and a filter [MQTT-4.8.2-1, MQTT-4.8.2-2].
    #[error("[MQTT-4.8.2-2] malformed shared subscription")]
    BadSharedSubscription,
}

fn check_common(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err(TopicError::TooLong);
    }
    if topic.contains('\0') {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

/// Validates a topic name as used in PUBLISH.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Validates a topic filter as used in SUBSCRIBE / UNSUBSCRIBE, including the
/// `$share/{group}/{filter}` form.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let inner = match parse_shared(filter) {
        Some(Ok((_, inner))) => inner,
        Some(Err(e)) => return Err(e),
        None => filter,
    };
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::BadMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::BadSingleLevelWildcard);
        }
    }
    Ok(())
}

/// True if the filter contains `+` or `#`.
pub fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Splits `$share/{group}/{filter}` into its group and filter. Returns `None`
/// for an ordinary filter.
pub fn parse_shared(filter: &str) -> Option<Result<(&str, &str), TopicError>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(TopicError::BadSharedSubscription));
    };
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Some(Err(TopicError::BadSharedSubscription));
    }
    Some(Ok((group, inner)))
}

/// True if `topic` (a name) matches `filter` (an ordinary filter, not `$share`).
///
/// Filters starting with a wildcard do not match names starting with `$`
/// [MQTT-4.7.2-1]; `a/#` also matches `a` [MQTT-4.7.1-2].
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_with_wildcard_is_rejected() {
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
        assert!(validate_topic_name("a/b c/").is_ok());
    }

    #[test]
    fn empty_topic_is_rejected() {
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn null_character_is_rejected() {
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NullCharacter));
    }

    #[test]
    fn hash_must_be_last_whole_level() {
        assert!(validate_topic_filter("#").is_ok());
        assert!(validate_topic_filter("a/#").is_ok());
        assert_eq!(
            validate_topic_filter("a/#/b"),
            Err(TopicError::BadMultiLevelWildcard)
        );
        assert_eq!(
            validate_topic_filter("a#"),
            Err(TopicError::BadMultiLevelWildcard)
        );
    }

    #[test]
    fn plus_must_be_whole_level() {
        assert!(validate_topic_filter("+/a/+").is_ok());
        assert_eq!(
            validate_topic_filter("a+/b"),
            Err(TopicError::BadSingleLevelWildcard)
        );
    }

    #[test]
    fn shared_subscription_needs_group_and_filter() {
        assert!(validate_topic_filter("$share/g/a/#").is_ok());
        assert!(validate_topic_filter("$share/g").is_err());
        assert!(validate_topic_filter("$share//a").is_err());
        assert!(validate_topic_filter("$share/g+/a").is_err());
        assert_eq!(parse_shared("$share/g/a/b"), Some(Ok(("g", "a/b"))));
        assert_eq!(parse_shared("a/b"), None);
    }

    #[test]
    fn wildcards_match_per_level() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(matches("+/+", "/a"));
        assert!(matches("#", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("a//b", "a//b"));
    }

    #[test]
    fn leading_wildcard_does_not_match_dollar_topics() {
        assert!(!matches("#", "$SYS/broker/uptime"));
        assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
    }
}

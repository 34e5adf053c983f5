//! The subscription tree: a trie keyed by topic level, with `+` and `#`
//! children, that answers "who wants this topic?" without scanning every
//! filter. Shared subscriptions (`$share/group/filter`, MQTT 5 §4.8.2) hang off
//! the node of their inner filter and pick one member per message.

use std::collections::HashMap;
use std::sync::Arc;

use super::api::SubscriptionOptions;
use crate::mqtt::topic;

/// The broker-internal key of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u64);

/// One subscription as stored in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The subscribing session.
    pub session: SessionKey,
    /// Its options.
    pub options: SubscriptionOptions,
    /// Its MQTT 5 subscription identifier.
    pub subscription_id: Option<u32>,
    /// The whole `$share/group/filter` for a shared subscription, so that a
    /// message can be offered to another member later (MQTT 5 §4.8.2).
    pub shared: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct SharedGroup {
    members: Vec<Subscriber>,
    next: usize,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    subscribers: HashMap<SessionKey, Subscriber>,
    shared: HashMap<Arc<str>, SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.subscribers.is_empty()
            && self.shared.is_empty()
    }

    fn descend_mut(&mut self, level: &str) -> &mut Node {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.children.entry(level.into()).or_default(),
        }
    }
}

/// Subscription trie.
#[derive(Debug, Default)]
pub struct SubscriptionTree {
    root: Node,
    count: usize,
}

impl SubscriptionTree {
    /// An empty tree.
    pub fn new() -> SubscriptionTree {
        SubscriptionTree::default()
    }

    /// Number of subscriptions held (shared members counted one each).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces a subscription; returns true if it is new.
    /// `filter` must already be valid (see [`topic::validate_topic_filter`]).
    pub fn insert(&mut self, filter: &str, sub: Subscriber) -> bool {
        let (group, inner) = split_shared(filter);
        let mut node = &mut self.root;
        for level in inner.split('/') {
            node = node.descend_mut(level);
        }
        let new = match group {
            None => node.subscribers.insert(sub.session, sub).is_none(),
            Some(group) => {
                let g = node.shared.entry(group.into()).or_default();
                let sub = Subscriber {
                    shared: Some(Arc::from(filter)),
                    ..sub
                };
                match g.members.iter_mut().find(|m| m.session == sub.session) {
                    Some(m) => {
                        *m = sub;
                        false
                    }
                    None => {
                        g.members.push(sub);
                        true
                    }
                }
            }
        };
        if new {
            self.count += 1;
        }
        new
    }

    /// Removes a subscription; returns true if it existed.
    pub fn remove(&mut self, filter: &str, session: SessionKey) -> bool {
        let (group, inner) = split_shared(filter);
        let levels: Vec<&str> = inner.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, group, session);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Chooses a member of the shared subscription `filter` other than
    /// `exclude`, round-robin among those for which `online` is true; with
    /// `allow_offline`, an offline member is taken when no member is online.
    pub fn pick_shared(
        &mut self,
        filter: &str,
        exclude: SessionKey,
        online: &dyn Fn(SessionKey) -> bool,
        allow_offline: bool,
    ) -> Option<Subscriber> {
        let (Some(group), inner) = split_shared(filter) else {
            return None;
        };
        let mut node = &mut self.root;
        for level in inner.split('/') {
            node = match level {
                "+" => node.plus.as_deref_mut()?,
                "#" => node.hash.as_deref_mut()?,
                _ => node.children.get_mut(level)?,
            };
        }
        let g = node.shared.get_mut(group)?;
        pick_member(g, &|k| k != exclude && online(k))
            .filter(|m| m.session != exclude && online(m.session))
            .or_else(|| {
                g.members
                    .iter()
                    .find(|m| allow_offline && m.session != exclude)
                    .cloned()
            })
    }

    /// Collects every subscription matching `topic` into `out`. For each
    /// shared group one member is chosen round-robin, preferring members for
    /// which `online` returns true.
    pub fn matches(
        &mut self,
        topic: &str,
        online: &dyn Fn(SessionKey) -> bool,
        out: &mut Vec<Subscriber>,
    ) {
        let dollar = topic.starts_with('$');
        walk(&mut self.root, Some(topic), true, dollar, online, out);
    }
}

fn split_shared(filter: &str) -> (Option<&str>, &str) {
    match topic::parse_shared(filter) {
        Some(Ok((group, inner))) => (Some(group), inner),
        _ => (None, filter),
    }
}

fn remove_at(node: &mut Node, levels: &[&str], group: Option<&str>, session: SessionKey) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return match group {
            None => node.subscribers.remove(&session).is_some(),
            Some(group) => {
                let Some(g) = node.shared.get_mut(group) else {
                    return false;
                };
                let before = g.members.len();
                g.members.retain(|m| m.session != session);
                let removed = g.members.len() != before;
                if g.members.is_empty() {
                    node.shared.remove(group);
                }
                removed
            }
        };
    };
    let removed;
    match *first {
        "+" | "#" => {
            let slot = if *first == "+" {
                &mut node.plus
            } else {
                &mut node.hash
            };
            let Some(child) = slot.as_deref_mut() else {
                return false;
            };
            removed = remove_at(child, rest, group, session);
            if child.is_empty() {
                *slot = None;
            }
        }
        level => {
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            removed = remove_at(child, rest, group, session);
            if child.is_empty() {
                node.children.remove(level);
            }
        }
    }
    removed
}

fn emit(node: &mut Node, online: &dyn Fn(SessionKey) -> bool, out: &mut Vec<Subscriber>) {
    out.extend(node.subscribers.values().cloned());
    for group in node.shared.values_mut() {
        if let Some(member) = pick_member(group, online) {
            out.push(member);
        }
    }
}

/// Round-robin over the group, skipping offline members unless all are offline
/// (MQTT 5 §4.8.2: a message goes to exactly one member).
fn pick_member(group: &mut SharedGroup, online: &dyn Fn(SessionKey) -> bool) -> Option<Subscriber> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    for step in 0..n {
        let i = (group.next + step) % n;
        if group.members.get(i).is_some_and(|m| online(m.session)) {
            group.next = (i + 1) % n;
            return group.members.get(i).cloned();
        }
    }
    let i = group.next % n;
    group.next = (i + 1) % n;
    group.members.get(i).cloned()
}

/// Walks the levels of `rest` (None once every level is consumed) without
/// collecting them: this runs for every message routed.
fn walk(
    node: &mut Node,
    rest: Option<&str>,
    first: bool,
    dollar: bool,
    online: &dyn Fn(SessionKey) -> bool,
    out: &mut Vec<Subscriber>,
) {
    // A wildcard in the first level never matches a `$` topic [MQTT-4.7.2-1].
    let wildcard_ok = !(first && dollar);
    if wildcard_ok && let Some(hash) = node.hash.as_deref_mut() {
        // `a/#` matches `a` and everything below it [MQTT-4.7.1-2].
        emit(hash, online, out);
    }
    let Some(rest) = rest else {
        emit(node, online, out);
        return;
    };
    let (level, tail) = match rest.split_once('/') {
        Some((level, tail)) => (level, Some(tail)),
        None => (rest, None),
    };
    if let Some(child) = node.children.get_mut(level) {
        walk(child, tail, false, dollar, online, out);
    }
    if wildcard_ok && let Some(plus) = node.plus.as_deref_mut() {
        walk(plus, tail, false, dollar, online, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sub(n: u64) -> Subscriber {
        Subscriber {
            session: SessionKey(n),
            options: SubscriptionOptions::default(),
            subscription_id: None,
            shared: None,
        }
    }

    fn matched(tree: &mut SubscriptionTree, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        tree.matches(topic, &|_| true, &mut out);
        let mut ids: Vec<u64> = out.iter().map(|s| s.session.0).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn exact_and_wildcard_filters_match() {
        let mut t = SubscriptionTree::new();
        t.insert("a/b", sub(1));
        t.insert("a/+", sub(2));
        t.insert("a/#", sub(3));
        t.insert("#", sub(4));
        t.insert("b/#", sub(5));
        assert_eq!(matched(&mut t, "a/b"), vec![1, 2, 3, 4]);
        assert_eq!(matched(&mut t, "a"), vec![3, 4]);
        assert_eq!(matched(&mut t, "b"), vec![4, 5]);
    }

    #[test]
    fn dollar_topics_skip_leading_wildcards() {
        let mut t = SubscriptionTree::new();
        t.insert("#", sub(1));
        t.insert("+/broker/uptime", sub(2));
        t.insert("$SYS/#", sub(3));
        assert_eq!(matched(&mut t, "$SYS/broker/uptime"), vec![3]);
    }

    #[test]
    fn removing_prunes_and_reports_existence() {
        let mut t = SubscriptionTree::new();
        assert!(t.insert("a/+/c", sub(1)));
        assert!(!t.insert("a/+/c", sub(1)));
        assert_eq!(t.len(), 1);
        assert!(t.remove("a/+/c", SessionKey(1)));
        assert!(!t.remove("a/+/c", SessionKey(1)));
        assert!(t.is_empty());
        assert!(t.root.is_empty());
    }

    #[test]
    fn shared_group_delivers_to_one_member_round_robin() {
        let mut t = SubscriptionTree::new();
        t.insert("$share/g/a/#", sub(1));
        t.insert("$share/g/a/#", sub(2));
        assert_eq!(matched(&mut t, "a/x").len(), 1);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(matched(&mut t, "a/x"));
        }
        assert_eq!(seen, vec![2, 1, 2, 1]);
    }

    #[test]
    fn shared_group_prefers_online_members() {
        let mut t = SubscriptionTree::new();
        t.insert("$share/g/a", sub(1));
        t.insert("$share/g/a", sub(2));
        for _ in 0..3 {
            let mut out = Vec::new();
            t.matches("a", &|s| s == SessionKey(2), &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].session, SessionKey(2));
        }
    }

    #[test]
    fn shared_member_for_redelivery_is_another_online_member() {
        let mut t = SubscriptionTree::new();
        t.insert("$share/g/a/+", sub(1));
        t.insert("$share/g/a/+", sub(2));
        t.insert("$share/g/a/+", sub(3));
        let online = |s: SessionKey| s != SessionKey(3);
        for _ in 0..4 {
            let m = t.pick_shared("$share/g/a/+", SessionKey(1), &online, false);
            assert_eq!(m.map(|m| m.session), Some(SessionKey(2)));
        }
        let none_online = |_| false;
        assert_eq!(
            t.pick_shared("$share/g/a/+", SessionKey(1), &none_online, false),
            None
        );
        assert!(
            t.pick_shared("$share/g/a/+", SessionKey(1), &none_online, true)
                .is_some_and(|m| m.session != SessionKey(1))
        );
    }

    #[test]
    fn shared_member_carries_its_shared_filter() {
        let mut t = SubscriptionTree::new();
        t.insert("$share/g/a", sub(1));
        let mut out = Vec::new();
        t.matches("a", &|_| true, &mut out);
        assert_eq!(out[0].shared.as_deref(), Some("$share/g/a"));
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string())
        ]
    }

    fn filter_level() -> impl Strategy<Value = String> {
        prop_oneof![level(), Just("+".to_string())]
    }

    proptest! {
        #[test]
        fn tree_agrees_with_naive_matcher(
            filters in prop::collection::vec((prop::collection::vec(filter_level(), 1..4), any::<bool>()), 1..12),
            topic in prop::collection::vec(level(), 1..4),
        ) {
            let topic = topic.join("/");
            let mut t = SubscriptionTree::new();
            let mut expected = Vec::new();
            for (i, (levels, hash)) in filters.iter().enumerate() {
                let mut f = levels.join("/");
                if *hash { f.push_str("/#"); }
                t.insert(&f, sub(i as u64));
                if topic::matches(&f, &topic) { expected.push(i as u64); }
            }
            prop_assert_eq!(matched(&mut t, &topic), expected);
        }
    }
}

//! Topic ids: the configured predefined ids (global or per client) and each
//! client's own table of normal ids (MQTT-SN 1.2 §6.5, §6.7, §7.3).

use std::collections::HashMap;
use std::sync::Arc;

use super::settings::PredefinedTopic;

/// Reserved topic id values (digest §2.5): never allocated.
const RESERVED_LOW: u16 = 0x0000;
const RESERVED_HIGH: u16 = 0xFFFF;

/// The configured predefined topic ids.
#[derive(Debug, Default)]
pub struct PredefinedTopics {
    global: HashMap<u16, Arc<str>>,
    per_client: HashMap<Arc<str>, HashMap<u16, Arc<str>>>,
    /// Name → lowest id, for the gateway's publish procedure (digest §4.10).
    global_ids: HashMap<Arc<str>, u16>,
    per_client_ids: HashMap<Arc<str>, HashMap<Arc<str>, u16>>,
    /// Highest configured id; normal ids are allocated above it (G-31).
    highest: u16,
}

impl PredefinedTopics {
    /// Builds the table; reserved ids (0x0000, 0xFFFF) and empty names are skipped.
    pub fn new(entries: &[PredefinedTopic]) -> PredefinedTopics {
        let mut t = PredefinedTopics::default();
        for e in entries {
            if e.topic_id == RESERVED_LOW || e.topic_id == RESERVED_HIGH || e.topic.is_empty() {
                tracing::warn!(
                    topic_id = e.topic_id,
                    "predefined topic ignored: reserved id or empty name"
                );
                continue;
            }
            let name: Arc<str> = Arc::from(e.topic.as_str());
            match &e.client_id {
                None => {
                    t.global.insert(e.topic_id, name.clone());
                    let id = t.global_ids.entry(name).or_insert(e.topic_id);
                    *id = (*id).min(e.topic_id);
                }
                Some(c) => {
                    let c: Arc<str> = Arc::from(c.as_str());
                    t.per_client
                        .entry(c.clone())
                        .or_default()
                        .insert(e.topic_id, name.clone());
                    let id = t
                        .per_client_ids
                        .entry(c)
                        .or_default()
                        .entry(name)
                        .or_insert(e.topic_id);
                    *id = (*id).min(e.topic_id);
                }
            }
            t.highest = t.highest.max(e.topic_id);
        }
        t
    }

    /// The first id normal registrations may use.
    pub fn first_normal_id(&self) -> u16 {
        self.highest.saturating_add(1).max(1)
    }

    /// The name of predefined id `id` for `client_id` (a per-client entry wins).
    pub fn name(&self, client_id: Option<&str>, id: u16) -> Option<&Arc<str>> {
        if let Some(c) = client_id
            && let Some(n) = self.per_client.get(c).and_then(|m| m.get(&id))
        {
            return Some(n);
        }
        self.global.get(&id)
    }

    /// The predefined id of `topic` for `client_id`, if one is configured.
    pub fn id_of(&self, client_id: &str, topic: &str) -> Option<u16> {
        self.per_client_ids
            .get(client_id)
            .and_then(|m| m.get(topic))
            .or_else(|| self.global_ids.get(topic))
            .copied()
    }
}

/// The table is full (`max_topics_per_sensor` or the id space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topic table full")]
pub struct RegistryFull;

#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    /// The client has learned this id (REGACK sent to it, SUBACK, or its REGACK 0x00).
    known: bool,
}

/// One client's normal topic ids.
#[derive(Debug, Clone)]
pub struct TopicRegistry {
    by_id: HashMap<u16, Entry>,
    by_name: HashMap<Arc<str>, u16>,
    first: u16,
    next: u16,
    limit: usize,
    /// Names were added or removed since [`TopicRegistry::take_changed`].
    changed: bool,
}

impl TopicRegistry {
    /// An empty table allocating ids from `first` upward, holding at most `limit` names.
    pub fn new(first: u16, limit: usize) -> TopicRegistry {
        let first = first.max(1);
        TopicRegistry {
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            first,
            next: first,
            limit,
            changed: false,
        }
    }

    /// Puts back an id kept across a restart; ids outside the normal range
    /// (the predefined ids may have changed) or already taken are skipped.
    pub fn restore(&mut self, id: u16, name: &str) {
        if id < self.first
            || id == RESERVED_HIGH
            || self.by_id.len() >= self.limit
            || self.by_id.contains_key(&id)
            || self.by_name.contains_key(name)
        {
            return;
        }
        let name: Arc<str> = Arc::from(name);
        self.by_name.insert(name.clone(), id);
        self.by_id.insert(id, Entry { name, known: false });
    }

    /// True once after names were added or removed (for the durable store).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Every registered id with its name, by id.
    pub fn entries(&self) -> Vec<(u16, Arc<str>)> {
        let mut v: Vec<(u16, Arc<str>)> = self
            .by_id
            .iter()
            .map(|(id, e)| (*id, e.name.clone()))
            .collect();
        v.sort_unstable_by_key(|(id, _)| *id);
        v
    }

    /// The id of `name`, allocating one if needed (G-27, G-28); the same name
    /// always gets the same id while it is registered.
    pub fn register(&mut self, name: &str) -> Result<u16, RegistryFull> {
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        if self.by_id.len() >= self.limit || self.first == RESERVED_HIGH {
            return Err(RegistryFull);
        }
        let span = usize::from(RESERVED_HIGH - self.first);
        for _ in 0..span {
            let id = self.next;
            self.next = if self.next >= RESERVED_HIGH - 1 {
                self.first
            } else {
                self.next + 1
            };
            if !self.by_id.contains_key(&id) {
                let name: Arc<str> = Arc::from(name);
                self.by_name.insert(name.clone(), id);
                self.by_id.insert(id, Entry { name, known: false });
                self.changed = true;
                return Ok(id);
            }
        }
        Err(RegistryFull)
    }

    /// The name registered under `id`.
    pub fn name(&self, id: u16) -> Option<&Arc<str>> {
        self.by_id.get(&id).map(|e| &e.name)
    }

    /// The id of `name`, if registered.
    pub fn id_of(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    /// The id of `name` if the client is known to have learned it.
    pub fn known_id_of(&self, name: &str) -> Option<u16> {
        let id = self.by_name.get(name)?;
        self.by_id.get(id).filter(|e| e.known).map(|_| *id)
    }

    /// Records that the client has learned `id`.
    pub fn mark_known(&mut self, id: u16) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.known = true;
        }
    }

    /// Forgets that the client knows any id: after a reconnect without
    /// CleanSession the gateway REGISTERs again before use (§6.5, digest §4.3).
    pub fn mark_all_unknown(&mut self) {
        for e in self.by_id.values_mut() {
            e.known = false;
        }
    }

    /// Drops one id (REGACK rejection, PUBACK 0x02: G-55, G-67).
    pub fn remove(&mut self, id: u16) {
        if let Some(e) = self.by_id.remove(&id) {
            self.by_name.remove(&e.name);
            self.changed = true;
        }
    }

    /// Drops every normal id (CleanSession=1, G-26).
    pub fn clear(&mut self) {
        self.changed |= !self.by_id.is_empty();
        self.by_id.clear();
        self.by_name.clear();
        self.next = self.first;
    }

    /// Number of registered names.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// A valid MQTT topic name: non-empty UTF-8, no wildcards, no U+0000.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', '#', '\0'])
}

/// A valid MQTT topic filter ([MQTT-4.7.1-2], [MQTT-4.7.1-3]).
pub fn valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, l)| {
        if l.contains('#') {
            *l == "#" && i == last
        } else if l.contains('+') {
            *l == "+"
        } else {
            true
        }
    })
}

/// True when the filter has a `+` or `#` wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_gets_same_id() {
        let mut r = TopicRegistry::new(1, 10);
        let a = r.register("a/b").unwrap();
        assert_eq!(r.register("a/b").unwrap(), a);
        assert_ne!(r.register("a/c").unwrap(), a);
    }

    #[test]
    fn registry_refuses_past_its_limit() {
        let mut r = TopicRegistry::new(1, 2);
        r.register("a").unwrap();
        r.register("b").unwrap();
        assert_eq!(r.register("c"), Err(RegistryFull));
    }

    #[test]
    fn ids_never_reach_reserved_values() {
        let mut r = TopicRegistry::new(0xFFFD, 10);
        assert_eq!(r.register("a").unwrap(), 0xFFFD);
        assert_eq!(r.register("b").unwrap(), 0xFFFE);
        assert_eq!(r.register("c"), Err(RegistryFull));
    }

    #[test]
    fn restored_ids_keep_their_names_and_are_not_a_change() {
        let mut r = TopicRegistry::new(3, 10);
        r.restore(7, "a/b");
        r.restore(1, "below/the/normal/range");
        assert_eq!(r.name(7).map(|n| &**n), Some("a/b"));
        assert_eq!(r.id_of("below/the/normal/range"), None);
        assert!(!r.take_changed());
        assert_ne!(
            r.register("c").unwrap(),
            7,
            "a restored id is not handed out again"
        );
        assert!(r.take_changed());
        assert!(!r.take_changed());
    }

    #[test]
    fn normal_ids_start_above_predefined_ids() {
        let p = PredefinedTopics::new(&[PredefinedTopic {
            topic_id: 7,
            topic: "x".into(),
            client_id: None,
        }]);
        assert_eq!(p.first_normal_id(), 8);
    }

    #[test]
    fn per_client_predefined_id_is_only_for_that_client() {
        let p = PredefinedTopics::new(&[PredefinedTopic {
            topic_id: 3,
            topic: "own".into(),
            client_id: Some("c1".into()),
        }]);
        assert!(p.name(Some("c1"), 3).is_some());
        assert!(p.name(Some("c2"), 3).is_none());
        assert!(p.name(None, 3).is_none());
    }

    #[test]
    fn filter_validation_follows_mqtt_rules() {
        assert!(valid_topic_filter("a/+/#"));
        assert!(!valid_topic_filter("a/b#"));
        assert!(!valid_topic_filter("a/#/b"));
        assert!(!valid_topic_filter("a+/b"));
        assert!(valid_topic_name("a/b"));
        assert!(!valid_topic_name("a/+"));
    }
}

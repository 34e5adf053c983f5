//! The client's QoS 1/2 publishes not yet fully acknowledged, counted against
//! the Receive Maximum [MQTT-3.3.4-9].

/// A set of packet identifiers kept as a sorted `Vec`: 24 bytes inline, no
/// heap while empty (the idle case), and small while in use, since MQTT 5
/// bounds it by the Receive Maximum sngate advertises.
#[derive(Debug, Default)]
pub(super) struct PacketIds(Vec<u16>);

impl PacketIds {
    /// Whether `id` is in the set.
    pub fn contains(&self, id: u16) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    /// How many ids are in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds `id` (a no-op if it is already there).
    pub fn insert(&mut self, id: u16) {
        if let Err(at) = self.0.binary_search(&id) {
            self.0.insert(at, id);
        }
    }

    /// Removes `id`; the last removal gives the memory back, so that a
    /// connection gone idle after a burst holds none.
    pub fn remove(&mut self, id: u16) {
        if let Ok(at) = self.0.binary_search(&id) {
            self.0.remove(at);
        }
        if self.0.is_empty() && self.0.capacity() > 0 {
            self.0 = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_found_once_each() {
        let mut ids = PacketIds::default();
        ids.insert(7);
        ids.insert(3);
        ids.insert(7);
        assert!(ids.contains(3) && ids.contains(7));
        assert!(!ids.contains(5));
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn removed_ids_are_gone_and_removing_an_unknown_id_changes_nothing() {
        let mut ids = PacketIds::default();
        ids.insert(1);
        ids.insert(2);
        ids.remove(9);
        ids.remove(1);
        assert!(!ids.contains(1));
        assert!(ids.contains(2));
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn an_emptied_set_holds_no_heap_memory() {
        let mut ids = PacketIds::default();
        for id in 1..=20 {
            ids.insert(id);
        }
        for id in 1..=20 {
            ids.remove(id);
        }
        assert_eq!(ids.0.capacity(), 0);
    }
}

//! A session's will state. Most sessions never set a will, so it lives in a
//! box allocated only while there is one (an idle session pays one pointer).

use std::time::Instant;

use super::Session;
use crate::broker::api::Will;

/// The will of the attached connection and a delayed will waiting to be published.
#[derive(Debug, Default)]
pub(super) struct WillState {
    /// The will of the attached connection.
    will: Option<Will>,
    /// When `will` was set: its message expiry is counted from when it is
    /// published, not from CONNECT (MQTT 5 §3.1.3.2.4).
    since: Option<Instant>,
    /// A will waiting for its delay to pass (MQTT 5 §3.1.3.2.2); its expiry
    /// is already counted from the due time.
    due: Option<(Instant, Will)>,
}

impl Session {
    /// The will of the attached connection.
    pub fn will(&self) -> Option<&Will> {
        self.will_state.as_ref()?.will.as_ref()
    }

    /// When the attached connection's will was set.
    pub fn will_since(&self) -> Option<Instant> {
        self.will_state.as_ref()?.since
    }

    /// The delayed will waiting for its due time, if any.
    pub fn will_due(&self) -> Option<&(Instant, Will)> {
        self.will_state.as_ref()?.due.as_ref()
    }

    /// Sets (or clears) the attached connection's will, set at `since`.
    pub fn set_will(&mut self, will: Option<Will>, since: Instant) {
        match will {
            Some(will) => {
                let st = self.will_state.get_or_insert_with(Box::default);
                st.will = Some(will);
                st.since = Some(since);
            }
            None => {
                if let Some(st) = self.will_state.as_mut() {
                    st.will = None;
                    st.since = None;
                }
                self.drop_empty_will_state();
            }
        }
    }

    /// Takes the attached connection's will, with when it was set.
    pub fn take_will(&mut self) -> Option<(Will, Option<Instant>)> {
        let st = self.will_state.as_mut()?;
        let will = st.will.take()?;
        let since = st.since.take();
        self.drop_empty_will_state();
        Some((will, since))
    }

    /// Sets (or cancels) the delayed will.
    pub fn set_will_due(&mut self, due: Option<(Instant, Will)>) {
        match due {
            Some(due) => self.will_state.get_or_insert_with(Box::default).due = Some(due),
            None => {
                if let Some(st) = self.will_state.as_mut() {
                    st.due = None;
                }
                self.drop_empty_will_state();
            }
        }
    }

    /// Takes the delayed will.
    pub fn take_will_due(&mut self) -> Option<(Instant, Will)> {
        let due = self.will_state.as_mut()?.due.take();
        self.drop_empty_will_state();
        due
    }

    fn drop_empty_will_state(&mut self) {
        if self
            .will_state
            .as_ref()
            .is_some_and(|st| st.will.is_none() && st.due.is_none())
        {
            self.will_state = None;
        }
    }
}

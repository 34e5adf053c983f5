//! Gateway discovery: periodic ADVERTISE and GWINFO answers to SEARCHGW
//! (MQTT-SN 1.2 §6.1, digest §4.1).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqttsn::codec::Message;

/// The ADVERTISE timer.
#[derive(Debug)]
pub struct Advertiser {
    gw_id: u8,
    interval: Duration,
    next: Option<Instant>,
}

impl Advertiser {
    /// A timer for `interval`; zero means advertising is off.
    pub fn new(gw_id: u8, interval: Duration) -> Advertiser {
        Advertiser {
            gw_id,
            interval,
            next: None,
        }
    }

    /// When the next ADVERTISE is due, if advertising is on and started.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Starts (`true`) or stops advertising; G-10: only while the broker is reachable.
    /// Starting sends the first ADVERTISE at once.
    pub fn set_enabled(&mut self, now: Instant, enabled: bool) {
        if enabled && !self.interval.is_zero() {
            if self.next.is_none() {
                self.next = Some(now);
            }
        } else {
            self.next = None;
        }
    }

    /// The ADVERTISE to broadcast if one is due at `now` (G-09).
    pub fn poll(&mut self, now: Instant) -> Option<Message> {
        let due = self.next?;
        if due > now {
            return None;
        }
        self.next = Some(now + self.interval);
        Some(self.advertise())
    }

    fn advertise(&self) -> Message {
        // Duration is the period in seconds, saturated to the 16-bit field (digest §5.21).
        let secs = u16::try_from(self.interval.as_secs()).unwrap_or(u16::MAX);
        Message::Advertise {
            gw_id: self.gw_id,
            duration: secs,
        }
    }
}

/// The GWINFO a gateway sends in answer to SEARCHGW: no GwAdd (G-11).
pub fn gwinfo(gw_id: u8) -> Message {
    Message::GwInfo {
        gw_id,
        gw_add: Bytes::new(),
    }
}

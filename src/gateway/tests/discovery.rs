//! ADVERTISE and SEARCHGW/GWINFO.

use std::time::Duration;

use super::*;

fn advertised(h: &mut Harness) -> Vec<Vec<u8>> {
    h.transmits()
        .into_iter()
        .filter(|t| t.peer.is_none() && t.broadcast)
        .map(|t| t.payload.to_vec())
        .collect()
}

#[test]
fn advertise_is_broadcast_every_interval_with_duration_in_seconds() {
    // G-09
    let mut h = Harness::with(GatewaySettings {
        advertise_interval: Duration::from_secs(900),
        ..settings()
    });
    let now = h.now;
    h.gw.handle_timeout(now);
    assert_eq!(advertised(&mut h), vec![vec![0x05, 0x00, 0x01, 0x03, 0x84]]);
    h.advance(Duration::from_secs(899));
    assert!(advertised(&mut h).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(advertised(&mut h).len(), 1);
}

#[test]
fn no_advertise_while_the_broker_is_unreachable() {
    // G-10
    let mut h = Harness::with(GatewaySettings {
        advertise_interval: Duration::from_secs(60),
        ..settings()
    });
    let now = h.now;
    h.gw.set_broker_available(now, false);
    h.advance(Duration::from_secs(600));
    assert!(advertised(&mut h).is_empty());
    assert_eq!(h.gw.poll_timeout(), None);
}

#[test]
fn advertise_is_off_when_the_interval_is_zero() {
    let h = Harness::new();
    assert_eq!(h.gw.poll_timeout(), None);
}

#[test]
fn searchgw_is_answered_with_gwinfo_without_gwadd() {
    // G-11
    let mut h = Harness::new();
    h.raw(1, &[0x03, 0x01, 0x01]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x02, 0x01]]);
}

#[test]
fn gwinfo_is_handed_to_the_transport_as_broadcast_with_the_searchgw_radius() {
    // G-12
    let mut h = Harness::new();
    h.raw(1, &[0x03, 0x01, 0x02]);
    let t = h.transmits();
    assert_eq!(t.len(), 1);
    assert!(t[0].broadcast);
    assert_eq!(t[0].radius, 2);
}

#[test]
fn advertise_and_gwinfo_from_others_are_ignored() {
    // G-13
    let mut h = Harness::new();
    h.raw(1, &[0x05, 0x00, 0x07, 0x03, 0x84]);
    h.raw(1, &[0x05, 0x02, 0x07, 0x0A, 0x0B]);
    assert!(h.transmits().is_empty());
    assert!(h.commands().is_empty());
    assert_eq!(h.gw.session_count(), 0);
}

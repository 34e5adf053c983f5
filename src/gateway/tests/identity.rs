//! Sensors authenticated by a secure transport (DTLS PSK): the identity binds
//! the client id, names the ACL user and owns the session (docs/dtls.md).

use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::gateway::PeerIdentity;
use crate::mqttsn::codec::ReturnCode;

fn dtls(port: u16) -> PeerAddr {
    PeerAddr::Dtls {
        listener: 0,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn sensor(name: &str, client_id: &str) -> Arc<PeerIdentity> {
    Arc::new(PeerIdentity {
        name: name.into(),
        client_id: client_id.into(),
        username: Some(format!("user-{name}").into()),
    })
}

fn feed(h: &mut Harness, to: &PeerAddr, id: Option<&Arc<PeerIdentity>>, msg: &Message) {
    let mut buf = BytesMut::new();
    codec::encode(msg, &mut buf).unwrap();
    h.gw.handle_datagram_with_identity(h.now, to.clone(), buf.freeze(), id.cloned());
}

fn replies(h: &mut Harness, to: &PeerAddr) -> Vec<Message> {
    h.transmits()
        .into_iter()
        .filter(|t| t.peer.as_ref() == Some(to))
        .map(|t| match codec::decode(&t.payload).unwrap() {
            Frame::Message(m) => m,
            Frame::Encapsulated { message, .. } => message,
        })
        .collect()
}

fn connect_dtls(h: &mut Harness, port: u16, id: &Arc<PeerIdentity>) -> ConnId {
    let at = dtls(port);
    feed(
        h,
        &at,
        Some(id),
        &connect_msg(&id.client_id, false, false, 60),
    );
    let conn = h
        .play_broker()
        .iter()
        .find_map(|c| match c {
            Command::Connect(r) => Some(r.conn),
            _ => None,
        })
        .expect("Command::Connect");
    assert_eq!(
        replies(h, &at),
        vec![Message::ConnAck {
            code: ReturnCode::Accepted
        }]
    );
    conn
}

#[test]
fn connect_with_the_bound_client_id_reaches_the_broker_with_the_identity_username() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    feed(
        &mut h,
        &dtls(1),
        Some(&id),
        &connect_msg("sensor-1", true, false, 60),
    );
    let cmds = h.commands();
    let user = cmds.iter().find_map(|c| match c {
        Command::Connect(r) => Some(r.username.clone()),
        _ => None,
    });
    assert_eq!(user, Some(Some("user-dev1".into())));
}

#[test]
fn connect_with_another_client_id_than_the_identity_is_refused_with_not_supported() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    feed(
        &mut h,
        &dtls(1),
        Some(&id),
        &connect_msg("sensor-2", true, false, 60),
    );
    assert_eq!(
        replies(&mut h, &dtls(1)),
        vec![Message::ConnAck {
            code: ReturnCode::NotSupported
        }]
    );
    assert!(h.commands().is_empty());
    assert_eq!(h.gw.session_count(), 0);
}

#[test]
fn plain_connect_cannot_take_over_a_session_opened_by_an_identity() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    connect_dtls(&mut h, 1, &id);
    h.send(7, connect_msg("sensor-1", false, false, 60));
    assert_eq!(
        h.replies_to(7),
        vec![Message::ConnAck {
            code: ReturnCode::NotSupported
        }]
    );
    assert!(
        h.commands().is_empty(),
        "the DTLS sensor keeps its connection"
    );
}

fn put_to_sleep(h: &mut Harness, id: &Arc<PeerIdentity>) -> ConnId {
    let conn = connect_dtls(h, 1, id);
    feed(
        h,
        &dtls(1),
        Some(id),
        &Message::Disconnect {
            duration: Some(300),
        },
    );
    assert_eq!(
        replies(h, &dtls(1)),
        vec![Message::Disconnect { duration: None }]
    );
    h.outbound(conn, delivery("a/b", b"held", QoS::AtMostOnce, None));
    assert!(h.transmits().is_empty());
    conn
}

fn pingreq(client_id: &str) -> Message {
    Message::PingReq {
        client_id: Some(Bytes::copy_from_slice(client_id.as_bytes())),
    }
}

#[test]
fn sleeping_sensor_woken_from_a_new_port_with_its_identity_gets_its_messages() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    put_to_sleep(&mut h, &id);
    feed(&mut h, &dtls(2), Some(&id), &pingreq("sensor-1"));
    // The buffered delivery goes to the new port, behind a REGISTER (G-83).
    let Some(Message::Register {
        topic_id, msg_id, ..
    }) = replies(&mut h, &dtls(2)).into_iter().next()
    else {
        panic!("expected REGISTER at the new port");
    };
    let regack = Message::RegAck {
        topic_id,
        msg_id,
        code: ReturnCode::Accepted,
    };
    feed(&mut h, &dtls(2), Some(&id), &regack);
    let got = replies(&mut h, &dtls(2));
    assert!(
        got.iter()
            .any(|m| matches!(m, Message::Publish { data, .. } if &data[..] == b"held")),
        "{got:?}"
    );
}

#[test]
fn plain_pingreq_with_the_client_id_of_a_sleeping_identity_is_not_answered() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    put_to_sleep(&mut h, &id);
    h.send(9, pingreq("sensor-1"));
    assert!(h.replies_to(9).is_empty());
    // The buffered message is still there for the real sensor.
    feed(&mut h, &dtls(1), Some(&id), &pingreq("sensor-1"));
    assert!(!replies(&mut h, &dtls(1)).is_empty());
}

#[test]
fn pingreq_from_another_identity_does_not_wake_the_sensor() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    put_to_sleep(&mut h, &id);
    let other = sensor("dev2", "sensor-2");
    feed(&mut h, &dtls(3), Some(&other), &pingreq("sensor-1"));
    assert!(replies(&mut h, &dtls(3)).is_empty());
}

#[test]
fn another_identity_at_the_same_dtls_address_cannot_act_for_the_session() {
    let mut h = Harness::new();
    let id = sensor("dev1", "sensor-1");
    connect_dtls(&mut h, 1, &id);
    let other = sensor("dev2", "sensor-2");
    feed(
        &mut h,
        &dtls(1),
        Some(&other),
        &Message::Disconnect { duration: None },
    );
    assert!(h.commands().is_empty(), "the session is not ended");
}

#[test]
fn a_client_id_bound_to_an_identity_is_refused_to_plain_sensors_before_it_ever_connected() {
    let mut h = Harness::new();
    h.gw.bind_identities([sensor("dev1", "sensor-1")]);
    h.send(7, connect_msg("sensor-1", true, false, 60));
    assert_eq!(
        h.replies_to(7),
        vec![Message::ConnAck {
            code: ReturnCode::NotSupported
        }]
    );
    assert!(h.commands().is_empty());
}

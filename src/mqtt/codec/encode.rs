//! Packet encoder: typed packets in, bytes for a peer out. Bodies are written
//! through a [`Sink`] so `encoded_len` counts without allocating.

use bytes::BytesMut;

use super::error::EncodeError;
use super::fixed_header::{encode_fixed_header, kind};
use super::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::{properties_len, write_properties};
use super::reason::ReasonCode;
use super::wire::{self, Counter, Sink};
use crate::qos::QoS;

/// Appends `packet` encoded for `version` to `buf`. On error nothing is written.
/// MQTT 5-only fields are dropped for 3.x; AUTH fails for 3.x.
pub fn encode_packet(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let body_len = body_len(packet, version)?;
    let mut header = [0u8; 5];
    let n = encode_fixed_header(first_byte(packet), body_len, &mut header)?;
    buf.reserve(n + body_len);
    buf.extend_from_slice(header.get(..n).unwrap_or_default());
    write_body(packet, version, buf)
}

/// Total encoded size of `packet` (fixed header included) for `version`.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let body_len = body_len(packet, version)?;
    let mut header = [0u8; 5];
    let n = encode_fixed_header(first_byte(packet), body_len, &mut header)?;
    Ok(n + body_len)
}

fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let mut c = Counter::default();
    write_body(packet, version, &mut c)?;
    Ok(c.0)
}

fn first_byte(packet: &Packet) -> u8 {
    let (ty, flags) = match packet {
        Packet::Connect(_) => (kind::CONNECT, 0),
        Packet::ConnAck(_) => (kind::CONNACK, 0),
        Packet::Publish(p) => {
            // [MQTT-3.3.1-2]: DUP is always 0 on QoS 0, whatever the struct says.
            let dup = p.dup && p.qos != QoS::AtMostOnce;
            (
                kind::PUBLISH,
                (u8::from(dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain),
            )
        }
        Packet::PubAck(_) => (kind::PUBACK, 0),
        Packet::PubRec(_) => (kind::PUBREC, 0),
        Packet::PubRel(_) => (kind::PUBREL, 0x02),
        Packet::PubComp(_) => (kind::PUBCOMP, 0),
        Packet::Subscribe(_) => (kind::SUBSCRIBE, 0x02),
        Packet::SubAck(_) => (kind::SUBACK, 0),
        Packet::Unsubscribe(_) => (kind::UNSUBSCRIBE, 0x02),
        Packet::UnsubAck(_) => (kind::UNSUBACK, 0),
        Packet::PingReq => (kind::PINGREQ, 0),
        Packet::PingResp => (kind::PINGRESP, 0),
        Packet::Disconnect(_) => (kind::DISCONNECT, 0),
        Packet::Auth(_) => (kind::AUTH, 0),
    };
    (ty << 4) | flags
}

fn write_body<S: Sink>(
    packet: &Packet,
    version: ProtocolVersion,
    s: &mut S,
) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => write_connect(c, s),
        Packet::ConnAck(c) => write_connack(c, v5, s),
        Packet::Publish(p) => write_publish(p, v5, s),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            write_pub_response(r, v5, s)
        }
        Packet::Subscribe(sub) => write_subscribe(sub, v5, s),
        Packet::SubAck(a) => write_suback(a, v5, s),
        Packet::Unsubscribe(u) => write_unsubscribe(u, v5, s),
        Packet::UnsubAck(a) => write_unsuback(a, v5, s),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => write_disconnect(d, v5, s),
        Packet::Auth(a) if v5 => write_auth(a, s),
        Packet::Auth(_) => Err(EncodeError::NotInVersion("AUTH")),
    }
}

fn packet_id(id: u16) -> Result<u16, EncodeError> {
    if id == 0 {
        return Err(EncodeError::MissingPacketId);
    }
    Ok(id)
}

// CONNECT carries its own protocol version; `version` does not apply to it.
fn write_connect<S: Sink>(c: &Connect, s: &mut S) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    wire::put_utf8(s, c.protocol.protocol_name())?;
    wire::put_u8(s, c.protocol.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos.as_u8() << 3) | (u8::from(w.retain) << 5);
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    wire::put_u8(s, flags);
    wire::put_u16(s, c.keep_alive);
    if v5 {
        write_properties(&c.properties, s)?;
    }
    wire::put_utf8(s, &c.client_id)?;
    if let Some(w) = &c.will {
        if v5 {
            write_properties(&w.properties, s)?;
        }
        wire::put_utf8(s, &w.topic)?;
        wire::put_binary(s, &w.payload)?;
    }
    if let Some(u) = &c.username {
        wire::put_utf8(s, u)?;
    }
    if let Some(p) = &c.password {
        wire::put_binary(s, p)?;
    }
    Ok(())
}

fn write_connack<S: Sink>(c: &ConnAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    wire::put_u8(s, u8::from(c.session_present));
    wire::put_u8(s, c.code);
    if v5 {
        write_properties(&c.properties, s)?;
    }
    Ok(())
}

fn write_publish<S: Sink>(p: &Publish, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    wire::put_utf8(s, &p.topic)?;
    if p.qos != QoS::AtMostOnce {
        let id = p.packet_id.ok_or(EncodeError::MissingPacketId)?;
        wire::put_u16(s, packet_id(id)?);
    }
    if v5 {
        write_properties(&p.properties, s)?;
    }
    s.put(&p.payload);
    Ok(())
}

// MQTT 5 §3.4.2.1: the short forms are used whenever they say the same thing.
fn write_pub_response<S: Sink>(r: &PubResponse, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    wire::put_u16(s, packet_id(r.packet_id)?);
    if v5 {
        let props = properties_len(&r.properties)?;
        if r.reason != ReasonCode::Success || props > 0 {
            wire::put_u8(s, r.reason.as_u8());
        }
        if props > 0 {
            write_properties(&r.properties, s)?;
        }
    }
    Ok(())
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    let mut b = o.qos.as_u8();
    if v5 {
        b |= u8::from(o.no_local) << 2;
        b |= u8::from(o.retain_as_published) << 3;
        b |= (o.retain_handling as u8) << 4;
    }
    b
}

fn write_subscribe<S: Sink>(sub: &Subscribe, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if sub.filters.is_empty() {
        return Err(EncodeError::NoFilters);
    }
    wire::put_u16(s, packet_id(sub.packet_id)?);
    if v5 {
        write_properties(&sub.properties, s)?;
    }
    for (filter, options) in &sub.filters {
        wire::put_utf8(s, filter)?;
        wire::put_u8(s, options_byte(options, v5));
    }
    Ok(())
}

fn write_suback<S: Sink>(a: &SubAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    wire::put_u16(s, packet_id(a.packet_id)?);
    if v5 {
        write_properties(&a.properties, s)?;
    }
    for rc in &a.reasons {
        // 3.1.1 knows only granted QoS and 0x80 Failure.
        let code = match rc.as_u8() {
            c @ 0..=2 => c,
            c if v5 => c,
            _ => 0x80,
        };
        wire::put_u8(s, code);
    }
    Ok(())
}

fn write_unsubscribe<S: Sink>(u: &Unsubscribe, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if u.filters.is_empty() {
        return Err(EncodeError::NoFilters);
    }
    wire::put_u16(s, packet_id(u.packet_id)?);
    if v5 {
        write_properties(&u.properties, s)?;
    }
    for filter in &u.filters {
        wire::put_utf8(s, filter)?;
    }
    Ok(())
}

fn write_unsuback<S: Sink>(a: &UnsubAck, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    wire::put_u16(s, packet_id(a.packet_id)?);
    if v5 {
        write_properties(&a.properties, s)?;
        for rc in &a.reasons {
            wire::put_u8(s, rc.as_u8());
        }
    }
    Ok(())
}

// MQTT 5 §3.14.2.1: an empty body means Normal disconnection without properties.
fn write_disconnect<S: Sink>(d: &Disconnect, v5: bool, s: &mut S) -> Result<(), EncodeError> {
    if !v5 {
        return Ok(());
    }
    let props = properties_len(&d.properties)?;
    if d.reason != ReasonCode::Success || props > 0 {
        wire::put_u8(s, d.reason.as_u8());
    }
    if props > 0 {
        write_properties(&d.properties, s)?;
    }
    Ok(())
}

fn write_auth<S: Sink>(a: &Auth, s: &mut S) -> Result<(), EncodeError> {
    let props = properties_len(&a.properties)?;
    if a.reason != ReasonCode::Success || props > 0 {
        wire::put_u8(s, a.reason.as_u8());
        write_properties(&a.properties, s)?;
    }
    Ok(())
}

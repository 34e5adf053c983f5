//! Streaming packet decoder: bytes from a peer in, typed packets out.

use bytes::{Buf, BytesMut};

use super::error::DecodeError;
use super::fixed_header::{check_flags, kind, parse_fixed_header};
use super::packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, ProtocolVersion, PubResponse, Publish,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::{PropContext, read_properties};
use super::reason::{ConnectReturnCode, ReasonCode, ReasonContext};
use super::wire::Reader;
use crate::qos::QoS;

/// Most buffer space reserved ahead of an incomplete body.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole packet; on
/// `Ok(Some)` the packet's bytes are consumed from `buf`. `max_packet_size`
/// (total bytes including the fixed header; pass `u32::MAX` for no limit) is
/// checked from the fixed header before the body is awaited. CONNECT decides
/// its own layout from its protocol level; other packets follow `version`.
/// After an error the buffer's contents are unspecified: close the connection.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = parse_fixed_header(buf)? else {
        return Ok(None);
    };
    check_flags(header.byte1, version)?;
    let total = header.total_len();
    if total > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    // total ≤ u32::MAX here, so it fits usize on every supported target.
    let total = usize::try_from(total).map_err(|_| DecodeError::PacketTooLarge {
        size: total,
        max: max_packet_size,
    })?;
    if buf.len() < total {
        // Grow towards the body, but never let a declared length alone claim much memory.
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(header.header_len);
    let mut r = Reader::new(frame);
    let flags = header.byte1 & 0x0F;
    let packet = match header.byte1 >> 4 {
        kind::CONNECT => Packet::Connect(decode_connect(&mut r)?),
        kind::CONNACK => Packet::ConnAck(decode_connack(&mut r, version)?),
        kind::PUBLISH => Packet::Publish(decode_publish(&mut r, flags, version)?),
        kind::PUBACK => {
            Packet::PubAck(decode_pub_response(&mut r, version, ReasonContext::PubAck)?)
        }
        kind::PUBREC => {
            Packet::PubRec(decode_pub_response(&mut r, version, ReasonContext::PubRec)?)
        }
        kind::PUBREL => {
            Packet::PubRel(decode_pub_response(&mut r, version, ReasonContext::PubRel)?)
        }
        kind::PUBCOMP => Packet::PubComp(decode_pub_response(
            &mut r,
            version,
            ReasonContext::PubComp,
        )?),
        kind::SUBSCRIBE => Packet::Subscribe(decode_subscribe(&mut r, version)?),
        kind::SUBACK => Packet::SubAck(decode_suback(&mut r, version)?),
        kind::UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(&mut r, version)?),
        kind::UNSUBACK => Packet::UnsubAck(decode_unsuback(&mut r, version)?),
        kind::PINGREQ => Packet::PingReq,
        kind::PINGRESP => Packet::PingResp,
        kind::DISCONNECT => Packet::Disconnect(decode_disconnect(&mut r, version)?),
        kind::AUTH => Packet::Auth(decode_auth(&mut r)?),
        other => return Err(DecodeError::ReservedPacketType(other)),
    };
    r.finish()?;
    Ok(Some(packet))
}

/// The protocol version a CONNECT at the front of `buf` announces, read
/// without consuming anything; `None` if `buf` does not start with a CONNECT
/// whose name and level are present and known. Lets a server answer a broken
/// CONNECT with a CONNACK in the client's own format.
pub fn peek_connect_version(buf: &[u8]) -> Option<ProtocolVersion> {
    let header = parse_fixed_header(buf).ok()??;
    if header.byte1 != kind::CONNECT << 4 {
        return None;
    }
    let rest = buf.get(header.header_len..)?;
    let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = std::str::from_utf8(rest.get(2..2 + name_len)?).ok()?;
    ProtocolVersion::from_name_and_level(name, *rest.get(2 + name_len)?)
}

fn reason(code: u8, ctx: ReasonContext) -> Result<ReasonCode, DecodeError> {
    ReasonCode::from_u8(code)
        .filter(|c| c.allowed_in(ctx))
        .ok_or(DecodeError::InvalidReasonCode {
            code,
            packet: ctx.name(),
        })
}

fn qos(bits: u8) -> Result<QoS, DecodeError> {
    QoS::from_u8(bits).ok_or(DecodeError::InvalidQoS)
}

fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.utf8()?;
    let level = r.u8()?;
    let protocol = ProtocolVersion::from_name_and_level(&name, level)
        .ok_or(DecodeError::UnsupportedProtocolVersion { name, level })?;
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && will_qos_bits != 0 {
        return Err(DecodeError::WillQoSWithoutWill);
    }
    if !will_flag && will_retain {
        return Err(DecodeError::WillRetainWithoutWill);
    }
    if will_qos_bits == 3 {
        return Err(DecodeError::InvalidWillQoS);
    }
    if password_flag && !username_flag && !protocol.is_v5() {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if protocol.is_v5() {
        read_properties(r, PropContext::Connect)?
    } else {
        Default::default()
    };
    let client_id = r.utf8()?;
    let will = if will_flag {
        let properties = if protocol.is_v5() {
            read_properties(r, PropContext::Will)?
        } else {
            Default::default()
        };
        let topic = r.utf8()?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: qos(will_qos_bits)?,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag { Some(r.utf8()?) } else { None };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn decode_connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let ack_flags = r.u8()?;
    if ack_flags & 0xFE != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let code = r.u8()?;
    let properties = if version.is_v5() {
        reason(code, ReasonContext::ConnAck)?;
        read_properties(r, PropContext::ConnAck)?
    } else {
        ConnectReturnCode::from_u8(code).ok_or(DecodeError::InvalidReasonCode {
            code,
            packet: "CONNACK",
        })?;
        Default::default()
    };
    Ok(ConnAck {
        session_present: ack_flags & 0x01 != 0,
        code,
        properties,
    })
}

fn decode_publish(
    r: &mut Reader,
    flags: u8,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let qos = qos((flags >> 1) & 0x03)?;
    let topic = r.utf8_arc()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    let properties = if version.is_v5() {
        read_properties(r, PropContext::Publish)?
    } else {
        Default::default()
    };
    Ok(Publish {
        dup: flags & 0x08 != 0,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

// MQTT 5 §3.4.2.1: reason code and properties may be left out when 0x00 / empty.
fn decode_pub_response(
    r: &mut Reader,
    version: ProtocolVersion,
    ctx: ReasonContext,
) -> Result<PubResponse, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut resp = PubResponse::new(packet_id);
    if version.is_v5() && !r.is_empty() {
        resp.reason = reason(r.u8()?, ctx)?;
        if !r.is_empty() {
            resp.properties = read_properties(r, PropContext::Ack)?;
        }
    }
    Ok(resp)
}

fn decode_subscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_properties(r, PropContext::Subscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.utf8()?;
        let options = subscription_options(r.u8()?, version)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscribe);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

// [MQTT-3.8.3-5]: reserved bits (7-6, and 5-2 before v5) must be zero.
fn subscription_options(
    b: u8,
    version: ProtocolVersion,
) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
    if b & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions);
    }
    let qos = QoS::from_u8(b & 0x03).ok_or(DecodeError::InvalidSubscribeQoS)?;
    let retain_handling = match (b >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: b & 0x04 != 0,
        retain_as_published: b & 0x08 != 0,
        retain_handling,
    })
}

fn decode_suback(r: &mut Reader, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_properties(r, PropContext::Ack)?
    } else {
        Default::default()
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8()?;
        let rc = if version.is_v5() {
            reason(code, ReasonContext::SubAck)?
        } else {
            // 3.1.1 §3.9.3: only 0x00, 0x01, 0x02 and 0x80 are defined.
            match code {
                0x00 => ReasonCode::Success,
                0x01 => ReasonCode::GrantedQoS1,
                0x02 => ReasonCode::GrantedQoS2,
                0x80 => ReasonCode::UnspecifiedError,
                _ => {
                    return Err(DecodeError::InvalidReasonCode {
                        code,
                        packet: "SUBACK",
                    });
                }
            }
        };
        reasons.push(rc);
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

fn decode_unsubscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        read_properties(r, PropContext::Unsubscribe)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.utf8()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscribe);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn decode_unsuback(r: &mut Reader, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut ack = UnsubAck {
        packet_id,
        reasons: Vec::new(),
        properties: Default::default(),
    };
    if version.is_v5() {
        ack.properties = read_properties(r, PropContext::Ack)?;
        while !r.is_empty() {
            ack.reasons.push(reason(r.u8()?, ReasonContext::UnsubAck)?);
        }
    }
    Ok(ack)
}

// MQTT 5 §3.14.2: remaining length 0 means Normal disconnection, no properties.
fn decode_disconnect(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if version.is_v5() && !r.is_empty() {
        d.reason = reason(r.u8()?, ReasonContext::Disconnect)?;
        if !r.is_empty() {
            d.properties = read_properties(r, PropContext::Disconnect)?;
        }
    }
    Ok(d)
}

// MQTT 5 §3.15.2: remaining length 0 means Success, no properties.
fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let mut a = Auth::default();
    if !r.is_empty() {
        a.reason = reason(r.u8()?, ReasonContext::Auth)?;
        if !r.is_empty() {
            a.properties = read_properties(r, PropContext::Auth)?;
        }
    }
    Ok(a)
}

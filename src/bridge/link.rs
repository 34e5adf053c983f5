//! One MQTT connection to the remote broker: open the stream, CONNECT and
//! wait for CONNACK, then read packets on a task of their own while the
//! bridge task writes.

use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::transport::{BoxStream, ConnectError, Connector};
use crate::mqtt::codec::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, EncodeError, Packet, ProtocolVersion,
    ReasonCode, decode_packet, encode_packet,
};

/// Largest packet accepted from the remote (the protocol's own limit).
const MAX_PACKET: u32 = 268_435_460;

/// Mosquitto's bridge flag: the protocol level with its top bit set tells a
/// Mosquitto broker that the client is a bridge, so it does not send the
/// bridge's own messages back to it (Mosquitto's `try_private`).
const BRIDGE_FLAG: u8 = 0x80;

/// Why a connection failed or ended.
#[derive(Debug, Error)]
pub enum LinkError {
    /// Opening the stream failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The remote broker refused the CONNECT.
    #[error("remote broker refused the connection: {0}")]
    Refused(String),
    /// No CONNACK within the connect timeout.
    #[error("no CONNACK within {0:?} (the remote accepted TCP but does not answer MQTT)")]
    NoConnAck(Duration),
    /// The remote closed the connection.
    #[error("the remote broker closed the connection")]
    Closed,
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The remote sent bytes that are not MQTT.
    #[error("protocol error from the remote broker: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded.
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
    /// The remote sent a packet that makes no sense now.
    #[error("unexpected {0} from the remote broker")]
    Unexpected(&'static str),
    /// A write did not finish in time.
    #[error("write to the remote broker timed out")]
    WriteTimeout,
}

impl LinkError {
    /// True when the remote refused the protocol level (only the bridge flag is to blame).
    pub fn is_protocol_level_refusal(&self) -> bool {
        matches!(self, LinkError::Refused(why) if why.contains("protocol version"))
    }
}

/// A connection whose CONNACK accepted the session.
pub struct Connected {
    /// The CONNACK.
    pub connack: ConnAck,
    /// Read side and the bytes already read past CONNACK.
    pub read: (ReadHalf<BoxStream>, BytesMut),
    /// Write side.
    pub write: WriteHalf<BoxStream>,
    /// Whether the bridge flag was sent (and accepted).
    pub bridge_flag: bool,
}

/// Encodes `packet` for `version`.
pub fn encode(packet: &Packet, version: ProtocolVersion) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf)?;
    Ok(buf)
}

fn encode_connect(connect: &Connect, bridge_flag: bool) -> Result<BytesMut, EncodeError> {
    let mut buf = encode(&Packet::Connect(connect.clone()), connect.protocol)?;
    if bridge_flag {
        // Fixed header (1 byte + remaining length), then the protocol name
        // (2-byte length + "MQTT"), then the level byte [MQTT-3.1.2-2].
        let remaining_len_bytes = buf
            .iter()
            .skip(1)
            .position(|b| b & 0x80 == 0)
            .map_or(1, |p| p + 1);
        let name_len = connect.protocol.protocol_name().len();
        if let Some(level) = buf.get_mut(1 + remaining_len_bytes + 2 + name_len) {
            *level |= BRIDGE_FLAG;
        }
    }
    Ok(buf)
}

fn refusal(connack: &ConnAck, version: ProtocolVersion) -> Option<String> {
    if version.is_v5() {
        let code = connack
            .reason_code()
            .unwrap_or(ReasonCode::UnspecifiedError);
        if (code as u8) < 0x80 {
            return None;
        }
        let mut why = format!("reason code 0x{:02X} ({code:?})", code as u8);
        if let Some(text) = &connack.properties.reason_string {
            why.push_str(&format!(": {text}"));
        }
        if code as u8 == 0x84 {
            why.push_str(" — unsupported protocol version");
        }
        return Some(why);
    }
    match connack.return_code() {
        Some(ConnectReturnCode::Accepted) => None,
        Some(ConnectReturnCode::UnacceptableProtocolVersion) => {
            Some("return code 1 (unacceptable protocol version)".into())
        }
        Some(ConnectReturnCode::IdentifierRejected) => {
            Some("return code 2 (client identifier rejected)".into())
        }
        Some(ConnectReturnCode::ServerUnavailable) => {
            Some("return code 3 (server unavailable)".into())
        }
        Some(ConnectReturnCode::BadUserNameOrPassword) => {
            Some("return code 4 (bad user name or password)".into())
        }
        Some(ConnectReturnCode::NotAuthorized) => Some("return code 5 (not authorized)".into()),
        None => Some(format!("return code {}", connack.code)),
    }
}

/// Opens `address`, sends CONNECT and waits for an accepting CONNACK.
pub async fn connect(
    connector: &Connector,
    address: &str,
    connect: &Connect,
    bridge_flag: bool,
    timeout: Duration,
) -> Result<Connected, LinkError> {
    let stream = connector.connect(address).await?;
    let (mut read, mut write) = tokio::io::split(stream);
    let bytes = encode_connect(connect, bridge_flag && !connect.protocol.is_v5())?;
    let version = connect.protocol;
    let handshake = async {
        write.write_all(&bytes).await?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(packet) = decode_packet(&mut buf, version, MAX_PACKET)? {
                return match packet {
                    Packet::ConnAck(c) => Ok((c, buf)),
                    other => Err(LinkError::Unexpected(other.name())),
                };
            }
            if read.read_buf(&mut buf).await? == 0 {
                return Err(LinkError::Closed);
            }
        }
    };
    let (connack, rest) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| LinkError::NoConnAck(timeout))??;
    if let Some(why) = refusal(&connack, version) {
        return Err(LinkError::Refused(why));
    }
    Ok(Connected {
        connack,
        read: (read, rest),
        write,
        bridge_flag: bridge_flag && !version.is_v5(),
    })
}

/// Reads packets until the stream ends; each is sent on the returned channel,
/// the last item being the error that ended it.
pub fn spawn_reader(
    read: (ReadHalf<BoxStream>, BytesMut),
    version: ProtocolVersion,
) -> (mpsc::Receiver<Result<Packet, LinkError>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let (mut read, mut buf) = read;
    let task = tokio::spawn(async move {
        loop {
            match decode_packet(&mut buf, version, MAX_PACKET) {
                Ok(Some(p)) => {
                    if tx.send(Ok(p)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
            match read.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(Err(LinkError::Closed)).await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::ConnectProperties;

    fn connect(protocol: ProtocolVersion) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: "b".into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    #[test]
    fn bridge_flag_sets_the_top_bit_of_the_protocol_level() {
        let bytes = encode_connect(&connect(ProtocolVersion::V311), true).unwrap();
        // 0x10, remaining length, 0x00 0x04 "MQTT", level.
        assert_eq!(&bytes[2..8], b"\x00\x04MQTT");
        assert_eq!(bytes[8], 0x84);
        let plain = encode_connect(&connect(ProtocolVersion::V311), false).unwrap();
        assert_eq!(plain[8], 0x04);
    }

    #[test]
    fn refusals_are_explained() {
        let c = ConnAck {
            session_present: false,
            code: 5,
            properties: Default::default(),
        };
        assert!(
            refusal(&c, ProtocolVersion::V311)
                .unwrap()
                .contains("not authorized")
        );
        let ok = ConnAck { code: 0, ..c };
        assert_eq!(refusal(&ok, ProtocolVersion::V5), None);
    }
}

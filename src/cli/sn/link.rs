//! How the `sngate sn` client reaches a gateway: a UDP socket or a serial link.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::transport::serial::framing::{Destination, OutFrame};
use crate::transport::serial::port::{LinkEvent, SerialLink};

/// One datagram received, with where it came from (for `sn search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The MQTT-SN datagram.
    pub datagram: Bytes,
    /// Sender: a socket address, or an XBee address in hex, or the serial device.
    pub from: String,
}

/// A datagram service to one gateway.
#[derive(Debug)]
pub enum Link {
    /// UDP to `gateway`; datagrams from other addresses are ignored unless `any_source`.
    Udp {
        /// The socket.
        socket: UdpSocket,
        /// The gateway (or the multicast group for `sn search`).
        gateway: SocketAddr,
        /// Accept datagrams from anyone (discovery).
        any_source: bool,
    },
    /// A DTLS session (PSK or certificate) to a `[[gateway.dtls]]` socket.
    #[cfg(feature = "dtls")]
    Dtls(Box<crate::transport::dtls::client::DtlsClient>),
    /// A serial link; stops when dropped.
    Serial {
        /// Sending half.
        link: SerialLink,
        /// Events from the link.
        events: mpsc::Receiver<LinkEvent>,
        /// Stops the link task.
        shutdown: CancellationToken,
        /// Device path, for messages.
        device: String,
    },
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Link::Serial { shutdown, .. } = self {
            shutdown.cancel();
        }
    }
}

impl Link {
    /// A UDP socket bound to the unspecified address of `gateway`'s family.
    pub async fn udp(gateway: SocketAddr, any_source: bool) -> io::Result<Link> {
        let bind: SocketAddr = if gateway.is_ipv4() {
            "0.0.0.0:0".parse().map_err(io::Error::other)?
        } else {
            "[::]:0".parse().map_err(io::Error::other)?
        };
        let socket = UdpSocket::bind(bind).await?;
        // Discovery stays on the local link unless the user picks a routed group.
        if gateway.ip().is_multicast() && gateway.is_ipv4() {
            socket.set_multicast_ttl_v4(1)?;
        }
        Ok(Link::Udp {
            socket,
            gateway,
            any_source,
        })
    }

    /// Handshakes with a `[[gateway.dtls]]` socket as PSK `identity` with the hex `key`.
    pub async fn dtls(gateway: SocketAddr, identity: &str, key: &str) -> io::Result<Link> {
        let Some(key) = crate::transport::dtls::psk::decode_hex(key).filter(|k| !k.is_empty())
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--psk must be an even number of hex digits",
            ));
        };
        #[cfg(feature = "dtls")]
        {
            let c = crate::transport::dtls::client::DtlsClient::connect(
                gateway,
                identity.as_bytes(),
                &key,
                std::time::Duration::from_secs(10),
            )
            .await?;
            Ok(Link::Dtls(Box::new(c)))
        }
        #[cfg(not(feature = "dtls"))]
        {
            let _ = (gateway, identity, key);
            Err(io::Error::other(
                "--psk needs sngate built with the \"dtls\" feature",
            ))
        }
    }

    /// Handshakes with a `[[gateway.dtls]]` socket with the client
    /// certificate `cert`/`key`; the gateway's certificate must chain to
    /// `ca` and name `host`. DTLS 1.3 when the gateway offers it, else 1.2.
    pub async fn dtls_certificate(
        gateway: SocketAddr,
        host: &str,
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> io::Result<Link> {
        #[cfg(feature = "dtls")]
        {
            use crate::transport::dtls::certs::ClientCertificates;
            use crate::transport::dtls::client::{DtlsClient, DtlsVersion};
            let certs = ClientCertificates::load(cert, key, ca, host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let c = DtlsClient::connect_with_certificate(
                gateway,
                std::sync::Arc::new(certs),
                DtlsVersion::Auto,
                std::time::Duration::from_secs(10),
            )
            .await?;
            Ok(Link::Dtls(Box::new(c)))
        }
        #[cfg(not(feature = "dtls"))]
        {
            let _ = (gateway, host, ca, cert, key);
            Err(io::Error::other(
                "--cert needs sngate built with the \"dtls\" feature",
            ))
        }
    }

    /// Sends one datagram to the gateway (broadcast on an XBee link when `broadcast`).
    pub async fn send(&mut self, datagram: Bytes, broadcast: bool) -> io::Result<()> {
        match self {
            Link::Udp {
                socket, gateway, ..
            } => socket.send_to(&datagram, *gateway).await.map(|_| ()),
            #[cfg(feature = "dtls")]
            Link::Dtls(c) => c.send(&datagram).await,
            Link::Serial { link, .. } => {
                let destination = if broadcast {
                    Destination::Broadcast
                } else {
                    Destination::Peer
                };
                link.tx
                    .send(OutFrame {
                        message: datagram,
                        destination,
                    })
                    .await
                    .map_err(|_| io::Error::other("serial link stopped"))
            }
        }
    }

    /// The next datagram before `deadline`, or `None` when it passes.
    pub async fn recv(&mut self, deadline: Instant) -> io::Result<Option<Received>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match self {
            Link::Udp {
                socket,
                gateway,
                any_source,
            } => {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let got = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
                    let Ok(got) = got else { return Ok(None) };
                    let (n, from) = got?;
                    if *any_source || from == *gateway {
                        let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        return Ok(Some(Received {
                            datagram,
                            from: from.to_string(),
                        }));
                    }
                }
            }
            #[cfg(feature = "dtls")]
            Link::Dtls(c) => Ok(c.recv(deadline.into_std()).await?.map(|datagram| Received {
                datagram,
                from: "dtls".to_owned(),
            })),
            Link::Serial { events, device, .. } => loop {
                let got = tokio::time::timeout_at(deadline, events.recv()).await;
                let Ok(event) = got else { return Ok(None) };
                match event {
                    None => return Err(io::Error::other("serial link stopped")),
                    Some(LinkEvent::Frame(frame)) => {
                        let from = match frame.source {
                            Some(address) => format!("{address:016x}"),
                            None => device.clone(),
                        };
                        return Ok(Some(Received {
                            datagram: frame.message,
                            from,
                        }));
                    }
                    Some(LinkEvent::Down { reason }) => {
                        eprintln!("sngate sn: {device}: {reason}");
                    }
                    Some(LinkEvent::DeliveryFailed { frame_id, status }) => {
                        eprintln!(
                            "sngate sn: radio could not deliver frame {frame_id} (status {status:#04x})"
                        );
                    }
                    Some(LinkEvent::Up | LinkEvent::FramingError(_)) => {}
                }
            },
        }
    }
}

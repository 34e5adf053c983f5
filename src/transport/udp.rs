//! UDP listeners for the MQTT-SN gateway: one socket per configured address,
//! IPv4 or IPv6, with an optional multicast group for gateway discovery.
//! Whole datagrams in and out; what they mean is the gateway's business.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Largest datagram the gateway reads (the MQTT-SN length field's maximum).
pub const MAX_DATAGRAM: usize = 65_535;

/// One UDP socket to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpListenerSettings {
    /// Local address; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Multicast group (and port) for ADVERTISE, SEARCHGW and GWINFO.
    pub multicast_group: Option<SocketAddr>,
    /// Multicast TTL / hop limit.
    pub multicast_ttl: u32,
}

impl UdpListenerSettings {
    /// A plain unicast listener.
    pub fn unicast(bind: SocketAddr) -> UdpListenerSettings {
        UdpListenerSettings {
            bind,
            multicast_group: None,
            multicast_ttl: 1,
        }
    }
}

/// A bound UDP socket.
#[derive(Debug)]
pub struct UdpListener {
    socket: UdpSocket,
    /// Bound to the multicast group's own port when it differs from the bind
    /// port, so a SEARCHGW sent to `group:port` is heard (as with the Paho
    /// gateway's separate `MulticastPortNo`); replies still leave from `socket`.
    discovery: Option<UdpSocket>,
    local: SocketAddr,
    group: Option<SocketAddr>,
    ttl: u32,
}

/// Receive buffer asked of the kernel for each MQTT-SN socket.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

impl UdpListener {
    /// Creates and binds the socket (SO_REUSEADDR, IPV6_V6ONLY for IPv6) and
    /// joins the multicast group if one is configured. Failing to join is a
    /// warning, not an error: unicast keeps working. Needs a tokio runtime.
    pub fn bind(settings: &UdpListenerSettings) -> io::Result<UdpListener> {
        let socket = open_socket(settings.bind)?;
        let group = settings
            .multicast_group
            .filter(|g| join_group(&socket, *g, settings.multicast_ttl));
        let socket = UdpSocket::from_std(socket.into())?;
        let local = socket.local_addr()?;
        let discovery = match group {
            Some(g) if g.port() != local.port() => discovery_socket(g)?,
            _ => None,
        };
        Ok(UdpListener {
            socket,
            discovery,
            local,
            group,
            ttl: settings.multicast_ttl,
        })
    }

    /// The bound local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The multicast group broadcasts go to, if joined.
    pub fn multicast_group(&self) -> Option<SocketAddr> {
        self.group
    }

    /// Receives one datagram, from the bind address or the group's port.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let Some(d) = &self.discovery else {
            return self.socket.recv_from(buf).await;
        };
        loop {
            // `readable` is cancel-safe; a readiness that turns out spurious
            // is cleared by the `WouldBlock` of `try_recv_from`.
            tokio::select! {
                r = self.socket.readable() => r?,
                r = d.readable() => r?,
            }
            match self.try_recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Receives one datagram that has already arrived, without waiting:
    /// `WouldBlock` when none is queued. After a [`UdpListener::recv_from`]
    /// wake-up, a reader drains the socket with this until `WouldBlock` and
    /// hands the whole batch on at once, paying one task hop per batch.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match (self.socket.try_recv_from(buf), &self.discovery) {
            (Err(e), Some(d)) if e.kind() == io::ErrorKind::WouldBlock => d.try_recv_from(buf),
            (r, _) => r,
        }
    }

    /// Sends one datagram.
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(buf, to).await
    }

    /// Sends one datagram to the multicast group; does nothing without one.
    /// A non-zero `radius` (from SEARCHGW, MQTT-SN 1.2 §6.1) lowers the
    /// TTL/hop limit for this datagram; 0 means the configured maximum.
    pub async fn broadcast(&self, buf: &[u8], radius: u8) -> io::Result<()> {
        let Some(g) = self.group else {
            return Ok(());
        };
        let ttl = match u32::from(radius) {
            0 => self.ttl,
            r => r.min(self.ttl),
        };
        let sock = socket2::SockRef::from(&self.socket);
        if g.is_ipv4() {
            sock.set_multicast_ttl_v4(ttl)?;
        } else {
            sock.set_multicast_hops_v6(ttl)?;
        }
        self.socket.send_to(buf, g).await?;
        Ok(())
    }
}

/// A non-blocking UDP socket bound to `bind` (SO_REUSEADDR, IPV6_V6ONLY for
/// IPv6, a large receive buffer).
fn open_socket(bind: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    if bind.is_ipv6() {
        // One socket per family: a v6 wildcard must not swallow v4 traffic.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    // Bursts from many sensors arrive faster than one task drains them;
    // with the kernel's default buffer (~200 KiB) the excess is lost before
    // sngate sees it. The kernel caps this at net.core.rmem_max, so a
    // refusal is only worth a debug line.
    if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::debug!(%bind, error = %e, "cannot enlarge the UDP receive buffer");
    }
    socket.bind(&bind.into())?;
    Ok(socket)
}

/// A socket on the multicast group's port, joined to the group. Bound to the
/// group address where the OS allows it (Linux: only that group's datagrams
/// arrive), else to the wildcard address. Failing is a warning, as for joining.
fn discovery_socket(group: SocketAddr) -> io::Result<Option<UdpSocket>> {
    let wildcard = match group.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let socket = match open_socket(group)
        .or_else(|_| open_socket(SocketAddr::new(wildcard, group.port())))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%group, error = %e, "cannot listen on the multicast group's port; SEARCHGW sent there goes unanswered");
            return Ok(None);
        }
    };
    if !join_group(&socket, group, 1) {
        return Ok(None);
    }
    Ok(Some(UdpSocket::from_std(socket.into())?))
}

/// Joins `group` and sets its TTL; logs and returns false on failure.
fn join_group(socket: &Socket, group: SocketAddr, ttl: u32) -> bool {
    let r = match group.ip() {
        IpAddr::V4(ip) => socket
            .join_multicast_v4(&ip, &Ipv4Addr::UNSPECIFIED)
            .and_then(|()| socket.set_multicast_ttl_v4(ttl))
            .and_then(|()| socket.set_multicast_loop_v4(true)),
        IpAddr::V6(ip) => socket
            .join_multicast_v6(&ip, 0)
            .and_then(|()| socket.set_multicast_hops_v6(ttl))
            .and_then(|()| socket.set_multicast_loop_v6(true)),
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(%group, error = %e, "cannot join the multicast group; discovery by unicast only");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_round_trip_on_loopback() {
        let a = UdpListener::bind(&UdpListenerSettings::unicast(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
        let b = UdpListener::bind(&UdpListenerSettings::unicast(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
        a.send_to(&[0x02, 0x16], b.local_addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &[0x02, 0x16]);
        assert_eq!(from, a.local_addr());
    }

    #[tokio::test]
    async fn try_recv_from_drains_queued_datagrams_then_would_block() {
        let a = UdpListener::bind(&UdpListenerSettings::unicast(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
        let b = UdpListener::bind(&UdpListenerSettings::unicast(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
        for i in 0..3u8 {
            a.send_to(&[0x03, 0x16, i], b.local_addr()).await.unwrap();
        }
        let mut buf = [0u8; 16];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        let mut got = vec![buf[..n].to_vec()];
        loop {
            match b.try_recv_from(&mut buf) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let tags: Vec<u8> = got.iter().map(|d| d[2]).collect();
        assert_eq!(tags, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn ipv6_listener_binds_v6_only() {
        let Ok(l) = UdpListener::bind(&UdpListenerSettings::unicast("[::1]:0".parse().unwrap()))
        else {
            return; // No IPv6 on this host.
        };
        assert!(l.local_addr().is_ipv6());
    }

    #[tokio::test]
    async fn failing_multicast_join_is_not_fatal() {
        // A unicast address is not a group: joining fails, binding succeeds.
        let l = UdpListener::bind(&UdpListenerSettings {
            bind: "127.0.0.1:0".parse().unwrap(),
            multicast_group: Some("127.0.0.1:1884".parse().unwrap()),
            multicast_ttl: 1,
        })
        .unwrap();
        assert_eq!(l.multicast_group(), None);
    }
}

//! IP networks in CIDR notation (`192.168.1.0/24`, `::1/128`) for source
//! allowlists; a bare address means that one host.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use thiserror::Error;

/// An unparsable network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid network {0:?} (expected an address with an optional /prefix, e.g. \"192.168.1.0/24\" or \"::1/128\")"
)]
pub struct CidrError(String);

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as seen on dual-stack sockets) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p.min(128))) == 0,
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Cidr, CidrError> {
        s.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv4_network_contains_its_hosts_only() {
        let n: Cidr = "192.168.1.0/24".parse().unwrap();
        assert!(n.contains(ip("192.168.1.77")));
        assert!(!n.contains(ip("192.168.2.1")));
        assert!(!n.contains(ip("::1")));
    }

    #[test]
    fn a_bare_address_is_one_host() {
        let n: Cidr = "::1".parse().unwrap();
        assert_eq!(n.to_string(), "::1/128");
        assert!(n.contains(ip("::1")));
        assert!(!n.contains(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_ipv6_sources_match_ipv4_networks() {
        let n: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn prefix_zero_matches_the_whole_family() {
        let n: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(n.contains(ip("203.0.113.9")));
        assert!(!n.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for s in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/x",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s}");
        }
    }
}

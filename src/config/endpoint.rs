//! The address of a remote broker as written in `addresses` of a `[[bridge]]`
//! or `[gateway.upstream]`: `host:port` (TCP, or TLS when a `tls` table is
//! given), or a URL naming the transport: `mqtt://`, `mqtts://`, `ws://`,
//! `wss://` (MQTT over WebSocket, for sites whose firewall lets only HTTPS out).

use std::fmt;
use std::net::Ipv6Addr;

/// How to reach the remote broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `host:port`: TCP, with TLS when the bridge has a `tls` table.
    HostPort,
    /// `mqtt://`: plain TCP whatever the `tls` table says.
    Mqtt,
    /// `mqtts://`: TLS (the `tls` table's settings, or the system roots).
    Mqtts,
    /// `ws://`: MQTT over a WebSocket on plain TCP.
    Ws,
    /// `wss://`: MQTT over a WebSocket on TLS.
    Wss,
}

impl Scheme {
    /// Whether this scheme always uses TLS (`HostPort` decides by the `tls` table).
    pub fn forces_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    /// Whether MQTT runs inside a WebSocket.
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }
}

/// A parsed remote broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP literal, without the brackets of IPv6.
    pub host: String,
    /// TCP port (the scheme's default when the URL leaves it out).
    pub port: u16,
    /// HTTP path of the WebSocket (`/mqtt` when left out); `/` otherwise.
    pub path: String,
}

impl Endpoint {
    /// Parses one entry of `addresses`; the error says what is expected.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let expected = || {
            format!(
                "invalid address {text:?} (expected \"host:port\" or a URL such as \
                 \"mqtts://host:8883\" or \"wss://host/mqtt\")"
            )
        };
        let (scheme, rest) = match text.split_once("://") {
            None => (Scheme::HostPort, text),
            Some((s, rest)) => {
                let scheme = match s.to_ascii_lowercase().as_str() {
                    "mqtt" | "tcp" => Scheme::Mqtt,
                    "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
                    "ws" => Scheme::Ws,
                    "wss" => Scheme::Wss,
                    _ => return Err(expected()),
                };
                (scheme, rest)
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) if scheme != Scheme::HostPort => (&rest[..i], &rest[i..]),
            Some(_) => return Err(expected()),
            None => (rest, ""),
        };
        let default_port = match scheme {
            Scheme::HostPort => None,
            Scheme::Mqtt => Some(1883),
            Scheme::Mqtts => Some(8883),
            Scheme::Ws => Some(80),
            Scheme::Wss => Some(443),
        };
        let (host, port) = split_authority(authority, default_port).ok_or_else(expected)?;
        if !path.is_empty() && !scheme.is_websocket() && path != "/" {
            return Err(expected());
        }
        let path = match (scheme.is_websocket(), path) {
            (true, "") => "/mqtt".to_owned(),
            (true, p) => p.to_owned(),
            (false, _) => "/".to_owned(),
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(expected());
        }
        Ok(Endpoint {
            scheme,
            host,
            port,
            path,
        })
    }

    /// `host:port` for the TCP connect (brackets around an IPv6 literal).
    pub fn socket_address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL of the WebSocket handshake request.
    pub fn websocket_url(&self) -> String {
        let scheme = if self.scheme == Scheme::Wss {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}{}", self.socket_address(), self.path)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::HostPort => f.write_str(&self.socket_address()),
            Scheme::Mqtt => write!(f, "mqtt://{}", self.socket_address()),
            Scheme::Mqtts => write!(f, "mqtts://{}", self.socket_address()),
            Scheme::Ws | Scheme::Wss => f.write_str(&self.websocket_url()),
        }
    }
}

/// `host:port`, `[v6]:port`, or just the host when a default port exists.
fn split_authority(authority: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (v6, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port?,
    };
    // An IPv6 literal must be in brackets, or its last group reads as the port.
    let host_ok = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    host_ok.then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Endpoint {
        Endpoint::parse(text).unwrap()
    }

    #[test]
    fn host_port_is_tcp_or_tls_by_the_tls_table() {
        let e = parse("broker.example.com:8883");
        assert_eq!(e.scheme, Scheme::HostPort);
        assert_eq!((e.host.as_str(), e.port), ("broker.example.com", 8883));
        assert_eq!(parse("[::1]:1883").socket_address(), "[::1]:1883");
        assert_eq!(parse("10.0.0.1:1883").host, "10.0.0.1");
    }

    #[test]
    fn urls_take_their_scheme_default_port() {
        assert_eq!(parse("mqtt://h").port, 1883);
        assert_eq!(parse("mqtts://h").port, 8883);
        assert_eq!(parse("ws://h").port, 80);
        assert_eq!(parse("wss://h").port, 443);
        assert_eq!(parse("wss://h:8443").port, 8443);
        assert_eq!(parse("wss://[::1]").socket_address(), "[::1]:443");
    }

    #[test]
    fn websocket_path_defaults_to_mqtt() {
        let e = parse("wss://iot.example.com/mqtt");
        assert_eq!(e.scheme, Scheme::Wss);
        assert_eq!(e.path, "/mqtt");
        assert_eq!(parse("ws://h:8080").path, "/mqtt");
        assert_eq!(parse("ws://h:8080/").path, "/");
        assert_eq!(
            parse("wss://h/mqtt?x-amz-customauthorizer-name=a").websocket_url(),
            "wss://h:443/mqtt?x-amz-customauthorizer-name=a"
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "broker.example.com",
            "host:0",
            "host:65536",
            ":1883",
            "::1:1883",
            "a b:1",
            "http://h",
            "ws://",
            "ws://h:x/mqtt",
            "h:1883/path",
            "mqtts://h/path",
            "[::1",
            "ws://h/a b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "h:1",
            "mqtt://h:1",
            "mqtts://h:2",
            "ws://h:3/mqtt",
            "wss://[::1]:4/x",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
    }
}

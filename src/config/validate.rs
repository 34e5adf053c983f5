//! Rules that span several keys or need more than a type: checked after deserialization.

use std::collections::HashSet;

use super::locate::KeyPath;
use super::serial::Framing;
use super::{BridgeConfig, Config, Endpoint, GatewayConfig, ListenerConfig};

/// A rule broken by the key at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Invalid {
    /// Where: the key, or the table missing a key.
    pub(super) path: KeyPath,
    /// What is wrong.
    pub(super) message: String,
}

type Check = Result<(), Invalid>;

fn invalid(path: KeyPath, message: impl Into<String>) -> Check {
    Err(Invalid {
        path,
        message: message.into(),
    })
}

/// Checks every rule; the first broken one is reported.
pub(super) fn validate(config: &Config) -> Check {
    let root = KeyPath::default();
    listeners(&config.listener, &root.key("listener"))?;
    // Port 0 asks the OS for a free port, so it never collides.
    if let Some(http) = &config.http
        && http.bind.port() != 0
        && config.listener.iter().any(|l| l.bind == http.bind)
    {
        invalid(
            root.key("http").key("bind"),
            format!("{} is already used by a [[listener]]", http.bind),
        )?;
    }
    gateway(&config.gateway, &root.key("gateway"))?;
    if config.persistence.enabled && config.persistence.path.as_os_str().is_empty() {
        invalid(
            root.key("persistence").key("path"),
            "must name a directory when persistence is enabled",
        )?;
    }
    if config.persistence.sync_interval == 0 {
        invalid(
            root.key("persistence").key("sync_interval"),
            "must be at least 1 (seconds)",
        )?;
    }
    bridges(&config.bridge, &root.key("bridge"))
}

fn listeners(listeners: &[ListenerConfig], at: &KeyPath) -> Check {
    let mut binds = HashSet::new();
    for (i, listener) in listeners.iter().enumerate() {
        let at = at.index(i);
        let protocol = listener.protocol.as_str();
        // Port 0 asks the OS for a free port, so several such listeners never clash.
        if listener.bind.port() != 0 && !binds.insert(listener.bind) {
            invalid(
                at.key("bind"),
                format!("{} is bound by an earlier listener", listener.bind),
            )?;
        }
        if listener.protocol.is_tls() {
            for (key, file) in [
                ("certfile", &listener.certfile),
                ("keyfile", &listener.keyfile),
            ] {
                if file.is_none() {
                    invalid(
                        at.key(key),
                        format!("protocol \"{protocol}\" needs `{key}` (a PEM file)"),
                    )?;
                }
            }
        } else if listener.require_certificate || listener.certfile.is_some() {
            let key = if listener.require_certificate {
                "require_certificate"
            } else {
                "certfile"
            };
            invalid(
                at.key(key),
                format!("TLS settings need protocol \"mqtts\" or \"wss\", not \"{protocol}\""),
            )?;
        }
        if listener.require_certificate && listener.cafile.is_none() {
            invalid(
                at.key("cafile"),
                "require_certificate = true needs `cafile` to verify client certificates",
            )?;
        }
        if listener.use_identity_as_username && !listener.require_certificate {
            invalid(
                at.key("use_identity_as_username"),
                "needs require_certificate = true: without a certificate there is no identity",
            )?;
        }
        if listener.protocol.is_websocket() && !listener.path.starts_with('/') {
            invalid(
                at.key("path"),
                format!("{:?} must start with '/'", listener.path),
            )?;
        }
    }
    Ok(())
}

fn gateway(gateway: &GatewayConfig, at: &KeyPath) -> Check {
    if gateway.enabled && gateway.mode.uses_upstream() && gateway.upstream.addresses.is_empty() {
        invalid(
            at.key("upstream").key("addresses"),
            "transparent and aggregating modes need at least one upstream address",
        )?;
    }
    host_ports(
        &gateway.upstream.addresses,
        &at.key("upstream").key("addresses"),
    )?;

    let mut binds = HashSet::new();
    for (i, udp) in gateway.udp.iter().enumerate() {
        let at = at.key("udp").index(i);
        if !binds.insert(udp.bind) {
            invalid(
                at.key("bind"),
                format!("{} is bound by an earlier [[gateway.udp]]", udp.bind),
            )?;
        }
        if let Some(group) = udp.multicast_group {
            if !group.ip().is_multicast() {
                invalid(
                    at.key("multicast_group"),
                    format!("{} is not a multicast address", group.ip()),
                )?;
            }
            if group.is_ipv4() != udp.bind.is_ipv4() {
                invalid(
                    at.key("multicast_group"),
                    format!("{group} and bind {} are different IP versions", udp.bind),
                )?;
            }
        }
    }

    for (i, dtls) in gateway.dtls.iter().enumerate() {
        let at = at.key("dtls").index(i);
        // Port 0 asks the OS for a free port each time, so it never clashes.
        if dtls.bind.port() != 0 && !binds.insert(dtls.bind) {
            invalid(
                at.key("bind"),
                format!("{} is bound by an earlier UDP or DTLS socket", dtls.bind),
            )?;
        }
        if dtls.certfile.is_some() || dtls.keyfile.is_some() || dtls.cafile.is_some() {
            invalid(
                at.key("certfile"),
                "certificate-based DTLS is not available in this build yet; use psk_file",
            )?;
        }
        if dtls.psk_file.is_none() {
            invalid(at.key("psk_file"), "a DTLS socket needs psk_file")?;
        }
    }

    let mut devices = HashSet::new();
    for (i, serial) in gateway.serial.iter().enumerate() {
        let at = at.key("serial").index(i);
        if serial.device.as_os_str().is_empty() {
            invalid(at.key("device"), "must name a serial device")?;
        }
        if !devices.insert(&serial.device) {
            invalid(
                at.key("device"),
                format!(
                    "{} is used by an earlier [[gateway.serial]]",
                    serial.device.display()
                ),
            )?;
        }
        if serial.crc && serial.framing != Framing::Slip {
            invalid(at.key("crc"), "crc = true needs framing = \"slip\"")?;
        }
    }

    let mut ids = HashSet::new();
    let mut topics = HashSet::new();
    for (i, predefined) in gateway.predefined.iter().enumerate() {
        let at = at.key("predefined").index(i);
        topic_name(&predefined.topic, &at.key("topic"))?;
        if predefined.client_id.is_empty() {
            invalid(at.key("client_id"), "must be a client id or \"*\"")?;
        }
        if !ids.insert((&predefined.client_id, predefined.topic_id)) {
            invalid(
                at.key("topic_id"),
                format!(
                    "topic id {} is already predefined for client {:?}",
                    predefined.topic_id, predefined.client_id
                ),
            )?;
        }
        if !topics.insert((&predefined.client_id, &predefined.topic)) {
            invalid(
                at.key("topic"),
                format!(
                    "topic {:?} already has a predefined id for client {:?}",
                    predefined.topic, predefined.client_id
                ),
            )?;
        }
    }
    Ok(())
}

fn bridges(bridges: &[BridgeConfig], at: &KeyPath) -> Check {
    let mut names = HashSet::new();
    for (i, bridge) in bridges.iter().enumerate() {
        let at = at.index(i);
        if bridge.name.is_empty() {
            invalid(at.key("name"), "must not be empty")?;
        }
        if !names.insert(&bridge.name) {
            invalid(
                at.key("name"),
                format!("{:?} names an earlier bridge too", bridge.name),
            )?;
        }
        if bridge.addresses.is_empty() {
            invalid(at.key("addresses"), "needs at least one \"host:port\"")?;
        }
        host_ports(&bridge.addresses, &at.key("addresses"))?;
        if bridge.reconnect_min > bridge.reconnect_max {
            invalid(
                at.key("reconnect_min"),
                format!(
                    "{} is more than reconnect_max ({})",
                    bridge.reconnect_min, bridge.reconnect_max
                ),
            )?;
        }
        if let Some(tls) = &bridge.tls
            && tls.certfile.is_some() != tls.keyfile.is_some()
        {
            let missing = if tls.certfile.is_none() {
                "certfile"
            } else {
                "keyfile"
            };
            invalid(
                at.key("tls").key(missing),
                "certfile and keyfile go together",
            )?;
        }
        if bridge.topics.is_empty() {
            invalid(at.key("topics"), "a bridge needs at least one topic")?;
        }
        for (j, topic) in bridge.topics.iter().enumerate() {
            let at = at.key("topics").index(j);
            topic_filter(&topic.pattern, &at.key("pattern"))?;
            for (key, prefix) in [
                ("local_prefix", &topic.local_prefix),
                ("remote_prefix", &topic.remote_prefix),
            ] {
                if prefix.contains(['+', '#', '\0']) {
                    invalid(at.key(key), "a prefix must not contain '+', '#' or NUL")?;
                }
            }
        }
    }
    Ok(())
}

/// A topic name a PUBLISH may carry [MQTT-4.7.3-1], [MQTT-4.7.0-1].
fn topic_name(topic: &str, at: &KeyPath) -> Check {
    if topic.is_empty() {
        return invalid(at.clone(), "must not be empty");
    }
    if topic.contains(['+', '#']) {
        return invalid(
            at.clone(),
            format!("{topic:?} contains a wildcard; predefined topics are topic names"),
        );
    }
    if topic.contains('\0') {
        return invalid(at.clone(), "must not contain NUL");
    }
    Ok(())
}

/// A topic filter a SUBSCRIBE may carry [MQTT-4.7.1-2], [MQTT-4.7.1-3].
fn topic_filter(filter: &str, at: &KeyPath) -> Check {
    if filter.is_empty() || filter.contains('\0') {
        return invalid(at.clone(), "must be a non-empty topic filter without NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let misplaced_hash = level.contains('#') && (*level != "#" || i + 1 != levels.len());
        if misplaced_hash || (level.contains('+') && *level != "+") {
            return invalid(
                at.clone(),
                format!("{filter:?}: '+' must be a whole level and '#' a whole last level"),
            );
        }
    }
    Ok(())
}

fn host_ports(addresses: &[String], at: &KeyPath) -> Check {
    for (i, address) in addresses.iter().enumerate() {
        if let Err(message) = Endpoint::parse(address) {
            invalid(at.index(i), message)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filter_rules_follow_mqtt_4_7_1() {
        let at = KeyPath::default();
        for ok in ["#", "a/+/b", "+", "a/#", "sport/tennis/+"] {
            assert!(topic_filter(ok, &at).is_ok(), "{ok}");
        }
        for bad in ["", "a#", "a/#/b", "a+/b", "#/a"] {
            assert!(topic_filter(bad, &at).is_err(), "{bad}");
        }
    }
}

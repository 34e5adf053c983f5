//! Defaults and the accepted values of every enum.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::*;
use crate::qos::QoS;

fn parse(text: &str) -> Config {
    Config::from_toml_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn builtin_file_parses() {
    Config::from_toml_str(BUILTIN_TOML, "sngate.toml").unwrap();
}

#[test]
fn builtin_file_states_exactly_the_defaults_of_an_empty_file() {
    assert_eq!(Config::builtin(), parse(""));
    assert_eq!(Config::builtin(), Config::default());
}

#[test]
fn absent_listener_key_gives_one_mqtt_listener_on_1883() {
    let config = parse("");
    assert_eq!(
        config.listener,
        vec![ListenerConfig::new(
            ListenerProtocol::Mqtt,
            addr("0.0.0.0:1883")
        )]
    );
}

#[test]
fn empty_listener_array_gives_no_listeners() {
    assert!(parse("listener = []").listener.is_empty());
}

#[test]
fn absent_udp_key_gives_ipv4_multicast_and_ipv6_sockets() {
    let udp = parse("").gateway.udp;
    assert_eq!(udp.len(), 2);
    assert_eq!(udp[0].bind, addr("0.0.0.0:1884"));
    assert_eq!(udp[0].multicast_group, Some(addr("225.1.1.1:1884")));
    assert_eq!(udp[0].multicast_ttl, 1);
    assert_eq!(udp[1].bind, addr("[::]:1884"));
    assert_eq!(udp[1].multicast_group, None);
}

#[test]
fn empty_udp_array_gives_no_udp_sockets() {
    assert!(parse("[gateway]\nudp = []").gateway.udp.is_empty());
}

#[test]
fn absent_sections_give_documented_defaults() {
    let config = parse("");
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.broker.max_keepalive, 65535);
    assert_eq!(config.broker.max_packet_size, 268_435_456);
    assert_eq!(config.broker.sys_interval, 10);
    assert_eq!(config.broker.max_queued_messages, 1000);
    assert_eq!(config.broker.max_inflight_messages, 20);
    assert_eq!(config.broker.connect_timeout, 10);
    assert!(config.broker.retain_available);
    assert!(config.broker.allow_zero_length_clientid);
    assert_eq!(config.broker.max_topic_alias, 10);
    assert_eq!(config.broker.max_connections, 0);

    let gateway = &config.gateway;
    assert!(gateway.enabled);
    assert_eq!(gateway.gateway_id, 1);
    assert_eq!(gateway.advertise_interval, 900);
    assert_eq!(gateway.mode, GatewayMode::Broker);
    assert_eq!(gateway.retry_interval, 10);
    assert_eq!(gateway.max_retries, 5);
    assert!(gateway.allow_qos_minus_one);
    assert_eq!(gateway.max_sensors, 10_000);
    assert_eq!(gateway.max_topics_per_sensor, 1000);
    assert_eq!(gateway.max_buffered_messages, 100);
    assert_eq!(gateway.max_message_size, 65535);
    assert_eq!(gateway.max_client_id_len, 64);
    assert_eq!(gateway.persistent_session_expiry, 86_400);
    assert!(gateway.upstream.addresses.is_empty());
    assert_eq!(gateway.upstream.protocol_version, ProtocolVersion::V311);
    assert!(gateway.serial.is_empty());
    assert!(gateway.predefined.is_empty());

    assert!(!config.persistence.enabled);
    assert_eq!(config.persistence.path, PathBuf::from("/var/lib/sngate"));
    assert_eq!(config.persistence.sync, SyncMode::Always);
    assert_eq!(config.persistence.max_size, 0);

    assert!(config.auth.allow_anonymous);
    assert_eq!(config.auth.password_file, None);
    assert_eq!(config.auth.acl_file, None);
    assert!(config.bridge.is_empty());
    assert_eq!(config.http, None);
}

#[test]
fn listener_bind_defaults_to_the_protocols_port() {
    let config = parse(
        r#"
        [[listener]]
        protocol = "ws"
        [[listener]]
        protocol = "mqtts"
        certfile = "c"
        keyfile = "k"
        "#,
    );
    assert_eq!(config.listener[0].bind, addr("0.0.0.0:8080"));
    assert_eq!(config.listener[0].path, "/mqtt");
    assert_eq!(config.listener[1].bind, addr("0.0.0.0:8883"));
}

#[test]
fn http_section_without_bind_listens_on_localhost_8081() {
    assert_eq!(
        parse("[http]").http,
        Some(HttpConfig {
            bind: addr("127.0.0.1:8081")
        })
    );
}

#[test]
fn password_file_makes_anonymous_default_to_false() {
    let auth = parse("[auth]\npassword_file = \"/etc/sngate/passwd\"").auth;
    assert!(!auth.allow_anonymous);
}

#[test]
fn explicit_allow_anonymous_wins_over_password_file() {
    let auth = parse("[auth]\npassword_file = \"p\"\nallow_anonymous = true").auth;
    assert!(auth.allow_anonymous);
}

#[test]
fn predefined_client_id_defaults_to_every_client() {
    let config = parse("[[gateway.predefined]]\ntopic_id = 7\ntopic = \"a/b\"");
    assert_eq!(config.gateway.predefined[0].client_id, "*");
}

#[test]
fn serial_port_defaults_to_115200_8n1_raw() {
    let serial = &parse("[[gateway.serial]]\ndevice = \"/dev/ttyUSB0\"")
        .gateway
        .serial[0];
    assert_eq!(serial.baud, 115_200);
    assert_eq!(serial.data_bits, DataBits::Eight);
    assert_eq!(serial.parity, Parity::None);
    assert_eq!(serial.stop_bits, StopBits::One);
    assert_eq!(serial.flow_control, FlowControl::None);
    assert_eq!(serial.framing, Framing::Raw);
    assert!(!serial.crc);
    assert_eq!(serial.api_mode, XbeeApiMode::Escaped);
}

#[test]
fn bridge_defaults() {
    let bridge = &parse(
        "[[bridge]]\nname = \"c\"\naddresses = [\"h:1883\"]\ntopics = [{ pattern = \"#\" }]",
    )
    .bridge[0];
    assert_eq!(bridge.protocol_version, ProtocolVersion::V311);
    assert_eq!(bridge.effective_client_id(), "sngate-bridge-c");
    assert!(!bridge.clean_start);
    assert_eq!(bridge.keepalive, 60);
    assert_eq!(bridge.tls, None);
    assert_eq!((bridge.reconnect_min, bridge.reconnect_max), (1, 60));
    let topic = &bridge.topics[0];
    assert_eq!(topic.direction, BridgeDirection::Out);
    assert_eq!(topic.qos, QoS::AtMostOnce);
    assert_eq!(
        (topic.local_prefix.as_str(), topic.remote_prefix.as_str()),
        ("", "")
    );
}

#[test]
fn every_log_level_parses() {
    for (text, level) in [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ] {
        assert_eq!(
            parse(&format!("[log]\nlevel = \"{text}\"")).log.level,
            level
        );
        assert_eq!(level.as_str(), text);
    }
}

#[test]
fn every_listener_protocol_parses() {
    for (text, protocol) in [
        ("mqtt", ListenerProtocol::Mqtt),
        ("mqtts", ListenerProtocol::Mqtts),
        ("ws", ListenerProtocol::Ws),
        ("wss", ListenerProtocol::Wss),
    ] {
        let toml =
            format!("[[listener]]\nprotocol = \"{text}\"\ncertfile = \"c\"\nkeyfile = \"k\"");
        let toml = if protocol.is_tls() {
            toml
        } else {
            format!("[[listener]]\nprotocol = \"{text}\"")
        };
        assert_eq!(parse(&toml).listener[0].protocol, protocol);
        assert_eq!(protocol.as_str(), text);
    }
}

#[test]
fn every_gateway_mode_parses() {
    for (text, mode) in [
        ("broker", GatewayMode::Broker),
        ("transparent", GatewayMode::Transparent),
        ("aggregating", GatewayMode::Aggregating),
    ] {
        let toml = format!("[gateway]\nmode = \"{text}\"\nupstream.addresses = [\"h:1883\"]");
        assert_eq!(parse(&toml).gateway.mode, mode);
    }
}

#[test]
fn both_protocol_versions_parse() {
    for (n, version) in [(4, ProtocolVersion::V311), (5, ProtocolVersion::V5)] {
        let toml = format!("[gateway.upstream]\nprotocol_version = {n}");
        assert_eq!(parse(&toml).gateway.upstream.protocol_version, version);
        assert_eq!(version.level(), n);
    }
}

fn serial(keys: &str) -> SerialConfig {
    let toml = format!("[[gateway.serial]]\ndevice = \"/dev/ttyS0\"\n{keys}");
    parse(&toml).gateway.serial.remove(0)
}

#[test]
fn every_serial_setting_parses() {
    for (n, bits) in [
        (5, DataBits::Five),
        (6, DataBits::Six),
        (7, DataBits::Seven),
        (8, DataBits::Eight),
    ] {
        assert_eq!(serial(&format!("data_bits = {n}")).data_bits, bits);
        assert_eq!(bits.bits(), n);
    }
    for (text, parity) in [
        ("none", Parity::None),
        ("odd", Parity::Odd),
        ("even", Parity::Even),
    ] {
        assert_eq!(serial(&format!("parity = \"{text}\"")).parity, parity);
    }
    for (n, stop) in [(1, StopBits::One), (2, StopBits::Two)] {
        assert_eq!(serial(&format!("stop_bits = {n}")).stop_bits, stop);
    }
    for (text, flow) in [
        ("none", FlowControl::None),
        ("software", FlowControl::Software),
        ("hardware", FlowControl::Hardware),
    ] {
        assert_eq!(
            serial(&format!("flow_control = \"{text}\"")).flow_control,
            flow
        );
    }
    for (text, framing) in [
        ("raw", Framing::Raw),
        ("slip", Framing::Slip),
        ("xbee", Framing::Xbee),
    ] {
        assert_eq!(serial(&format!("framing = \"{text}\"")).framing, framing);
    }
    for (n, mode) in [(1, XbeeApiMode::Unescaped), (2, XbeeApiMode::Escaped)] {
        assert_eq!(
            serial(&format!("framing = \"xbee\"\napi_mode = {n}")).api_mode,
            mode
        );
    }
    assert!(serial("framing = \"slip\"\ncrc = true").crc);
}

#[test]
fn both_sync_modes_parse() {
    for (text, sync) in [
        ("always", SyncMode::Always),
        ("interval", SyncMode::Interval),
    ] {
        assert_eq!(
            parse(&format!("[persistence]\nsync = \"{text}\""))
                .persistence
                .sync,
            sync
        );
    }
}

#[test]
fn every_bridge_direction_and_qos_parses() {
    let directions = [
        ("in", BridgeDirection::In),
        ("out", BridgeDirection::Out),
        ("both", BridgeDirection::Both),
    ];
    let levels = [
        (0, QoS::AtMostOnce),
        (1, QoS::AtLeastOnce),
        (2, QoS::ExactlyOnce),
    ];
    for (text, direction) in directions {
        for (n, qos) in levels {
            let toml = format!(
                "[[bridge]]\nname = \"b\"\naddresses = [\"h:1\"]\n\
                 topics = [{{ pattern = \"a/#\", direction = \"{text}\", qos = {n} }}]"
            );
            let topic = &parse(&toml).bridge[0].topics[0];
            assert_eq!((topic.direction, topic.qos), (direction, qos));
        }
    }
}

#[test]
fn minimal_example_has_one_listener_and_one_udp_socket() {
    let config = parse(include_str!("../../config/sngate.minimal.toml"));
    assert_eq!(config.listener.len(), 1);
    assert_eq!(config.gateway.udp.len(), 1);
}

#[test]
fn full_example_parses() {
    let config = parse(include_str!("../../config/sngate.example.toml"));
    assert_eq!(config.listener.len(), 3);
    assert_eq!(config.bridge[0].topics.len(), 2);
    assert_eq!(
        config.http,
        Some(HttpConfig {
            bind: addr("127.0.0.1:8081")
        })
    );
}

#[test]
fn type_errors_use_toml_words_not_rust_type_names() {
    let message = Config::from_toml_str("[gateway]\nupstream = 5", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        message.ends_with("invalid type: integer `5`, expected a table"),
        "{message}"
    );
    let message = Config::from_toml_str("listener = 5", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(message.ends_with("expected an array"), "{message}");
}

#[test]
fn dtls_socket_defaults_to_port_1885_and_64_handshakes() {
    let gateway = parse("[[gateway.dtls]]\npsk_file = \"/etc/sngate/psk.txt\"").gateway;
    let dtls = &gateway.dtls[0];
    assert_eq!(dtls.bind, addr("0.0.0.0:1885"));
    assert_eq!(dtls.psk_file, Some(PathBuf::from("/etc/sngate/psk.txt")));
    assert_eq!(dtls.max_handshakes, 64);
}

#[test]
fn dtls_socket_without_credentials_or_with_incomplete_certificates_is_invalid() {
    for text in [
        "[[gateway.dtls]]\nbind = \"127.0.0.1:1885\"",
        "[[gateway.dtls]]\npsk_file = \"p\"\ncertfile = \"c.pem\"",
        "[[gateway.dtls]]\npsk_file = \"p\"\nbind = \"0.0.0.0:1884\"",
        "[[gateway.dtls]]\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"ca\"",
        "[[gateway.dtls]]\ncertfile = \"c\"\nkeyfile = \"k\"\nrequire_certificate = true",
        "[[gateway.dtls]]\npsk_file = \"p\"\ncafile = \"ca\"",
        "[[gateway.dtls]]\npsk_file = \"p\"\nuse_identity_as_username = true",
    ] {
        assert!(Config::from_toml_str(text, "t.toml").is_err(), "{text}");
    }
}

#[test]
fn dtls_socket_with_certificates_and_optional_psk_is_valid() {
    for text in [
        "[[gateway.dtls]]\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"ca\"\nrequire_certificate = true\nuse_identity_as_username = true",
        "[[gateway.dtls]]\npsk_file = \"p\"\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"ca\"\nrequire_certificate = true",
    ] {
        let config = Config::from_toml_str(text, "t.toml").unwrap();
        assert!(config.gateway.dtls[0].require_certificate, "{text}");
    }
}

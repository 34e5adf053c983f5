//! Every kind of config error names the file, the line and the key.

use sngate::config::{Config, ConfigError};

/// Loads `text` from a file named sngate.toml and returns the error it must produce.
fn load_error(text: &str) -> ConfigError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sngate.toml");
    std::fs::write(&path, text).unwrap();
    match Config::load(&path) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

/// Asserts the message reads `.../sngate.toml:<line>:<column>: <key>: ...<fragment>...`.
fn assert_error(text: &str, line: usize, column: usize, key: &str, fragment: &str) {
    let error = load_error(text);
    let message = error.to_string();
    let position = format!("sngate.toml:{line}:{column}: {key}: ");
    assert!(
        message.contains(&position),
        "{message:?} lacks {position:?}"
    );
    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    let diagnostic = error.diagnostic().unwrap();
    assert_eq!(
        (diagnostic.line, diagnostic.column),
        (line, column),
        "{message}"
    );
    assert_eq!(diagnostic.key, key);
}

#[test]
fn unknown_key_is_named_with_the_keys_that_are_allowed() {
    let text = "[broker]\nmax_keepalive = 60\nmax_keepalve = 60\n";
    assert_error(
        text,
        3,
        1,
        "broker.max_keepalve",
        "unknown field `max_keepalve`, expected one of `max_keepalive`",
    );
}

#[test]
fn unknown_section_is_named() {
    assert_error(
        "\n[brokers]\nx = 1\n",
        2,
        2,
        "brokers",
        "unknown field `brokers`",
    );
}

#[test]
fn wrong_type_names_the_expected_type() {
    let text = "[broker]\nsys_interval = \"ten\"\n";
    assert_error(
        text,
        2,
        16,
        "broker.sys_interval",
        "invalid type: string \"ten\"",
    );
}

#[test]
fn bad_socket_address_quotes_the_value() {
    let text = "\n\n[[listener]]\nprotocol = \"mqtt\"\n\n\nbind = \"0.0.0.0:99999\"\n";
    assert_error(
        text,
        7,
        8,
        "listener[0].bind",
        "invalid socket address \"0.0.0.0:99999\"",
    );
}

#[test]
fn out_of_range_number_states_the_range() {
    let text = "[gateway]\ngateway_id = 300\n";
    assert_error(
        text,
        2,
        14,
        "gateway.gateway_id",
        "300 is out of range 0..=255",
    );
}

#[test]
fn zero_keepalive_maximum_is_out_of_range() {
    let text = "[broker]\nmax_keepalive = 0\n";
    assert_error(
        text,
        2,
        17,
        "broker.max_keepalive",
        "0 is out of range 1..=65535",
    );
}

#[test]
fn unknown_enum_value_lists_the_accepted_ones() {
    let text = "[gateway]\nmode = \"bridge\"\n";
    assert_error(
        text,
        2,
        8,
        "gateway.mode",
        "unknown variant `bridge`, expected one of `broker`, `transparent`, `aggregating`",
    );
}

#[test]
fn missing_required_key_names_it_at_its_table() {
    let text = "[gateway]\n\n[[gateway.serial]]\nbaud = 9600\n";
    assert_error(
        text,
        3,
        1,
        "gateway.serial[0].device",
        "missing field `device`",
    );
}

#[test]
fn mqtts_listener_without_certfile_is_reported_at_its_table() {
    let text = "[[listener]]\nbind = \"0.0.0.0:1883\"\n\n\
                [[listener]]\nprotocol = \"mqtts\"\nkeyfile = \"k.pem\"\n";
    assert_error(text, 4, 1, "listener[1].certfile", "needs `certfile`");
}

#[test]
fn duplicate_predefined_topic_id_for_one_client_is_reported_at_the_second() {
    let text = "[[gateway.predefined]]\ntopic_id = 1\ntopic = \"a\"\n\n\
                [[gateway.predefined]]\ntopic_id = 1\ntopic = \"b\"\n";
    assert_error(
        text,
        6,
        12,
        "gateway.predefined[1].topic_id",
        "topic id 1 is already predefined for client \"*\"",
    );
}

#[test]
fn same_predefined_topic_id_for_different_clients_is_accepted() {
    let text = "[[gateway.predefined]]\ntopic_id = 1\ntopic = \"a\"\n\
                [[gateway.predefined]]\ntopic_id = 1\ntopic = \"b\"\nclient_id = \"s1\"\n";
    Config::from_toml_str(text, "sngate.toml").unwrap();
}

#[test]
fn predefined_topic_with_wildcard_is_rejected() {
    let text = "[[gateway.predefined]]\ntopic_id = 1\ntopic = \"a/+\"\n";
    assert_error(text, 3, 9, "gateway.predefined[0].topic", "wildcard");
}

#[test]
fn invalid_toml_syntax_names_the_key_being_written() {
    let text = "[broker]\nsys_interval = 10\n\n[[listener]]\nbind = 0.0.0.0:1883\n";
    let error = load_error(text);
    assert!(matches!(error, ConfigError::Syntax(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("sngate.toml:5:"), "{message}");
    assert!(
        message.contains(": listener[0].bind: invalid TOML: "),
        "{message}"
    );
}

#[test]
fn duplicate_listener_bind_is_reported_at_the_second() {
    let text = "[[listener]]\nbind = \"0.0.0.0:1883\"\n\
                [[listener]]\nprotocol = \"ws\"\nbind = \"0.0.0.0:1883\"\n";
    assert_error(
        text,
        5,
        8,
        "listener[1].bind",
        "0.0.0.0:1883 is bound by an earlier listener",
    );
}

#[test]
fn duplicate_udp_bind_is_reported() {
    let text =
        "[[gateway.udp]]\nbind = \"0.0.0.0:1884\"\n[[gateway.udp]]\nbind = \"0.0.0.0:1884\"\n";
    assert_error(
        text,
        4,
        8,
        "gateway.udp[1].bind",
        "bound by an earlier [[gateway.udp]]",
    );
}

#[test]
fn crc_without_slip_framing_is_rejected() {
    let text = "[[gateway.serial]]\ndevice = \"/dev/ttyUSB0\"\nframing = \"xbee\"\ncrc = true\n";
    assert_error(
        text,
        4,
        7,
        "gateway.serial[0].crc",
        "needs framing = \"slip\"",
    );
}

#[test]
fn unicast_multicast_group_is_rejected() {
    let text = "[[gateway.udp]]\nbind = \"0.0.0.0:1884\"\nmulticast_group = \"10.0.0.1:1884\"\n";
    assert_error(
        text,
        3,
        19,
        "gateway.udp[0].multicast_group",
        "not a multicast address",
    );
}

#[test]
fn transparent_mode_without_upstream_address_is_rejected() {
    let text = "[gateway]\nmode = \"transparent\"\n";
    assert_error(
        text,
        1,
        1,
        "gateway.upstream.addresses",
        "at least one upstream address",
    );
}

#[test]
fn bridge_without_topics_is_rejected() {
    let text = "[[bridge]]\nname = \"cloud\"\naddresses = [\"broker.example.com:8883\"]\n";
    assert_error(text, 1, 1, "bridge[0].topics", "at least one topic");
}

#[test]
fn bridge_address_without_port_is_rejected() {
    let text = "[[bridge]]\nname = \"cloud\"\naddresses = [\"a:1\", \"broker.example.com\"]\n\
                topics = [{ pattern = \"#\" }]\n";
    assert_error(
        text,
        3,
        21,
        "bridge[0].addresses[1]",
        "expected \"host:port\"",
    );
}

#[test]
fn bridge_address_with_an_unknown_scheme_is_rejected() {
    let text = "[[bridge]]\nname = \"cloud\"\naddresses = [\"http://broker.example.com/mqtt\"]\n\
                topics = [{ pattern = \"#\" }]\n";
    assert_error(text, 3, 14, "bridge[0].addresses[0]", "\"wss://host/mqtt\"");
}

#[test]
fn unreadable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sngate.toml");
    let message = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("cannot read {}: No such file or directory", path.display())
    );
}

//! Defaults and the accepted values of every enum.

use super::*;

fn parse(text: &str) -> Config {
    Config::from_toml_str(text, "test.toml").unwrap()
}

#[test]
fn builtin_file_parses() {
    Config::from_toml_str(BUILTIN_TOML, "sngate.toml").unwrap();
}

#[test]
fn scratch_print_errors() {
    for text in [
        "[broker]\nmax_keepalive = 10\nmax_keepalve = 3\n",
        "[broker]\nmax_keepalive = \"x\"\n",
        "[broker]\nmax_keepalive = 0\n",
        "\n\n[[listener]]\nprotocol = \"mqtt\"\n\n\nbind = \"0.0.0.0:99999\"\n",
        "[[listener]]\nprotocol = \"mqtts\"\nbind = \"0.0.0.0:8883\"\n",
        "[[listener]]\nprotocol = \"mqtx\"\n",
        "[gateway]\ngateway_id = 300\n",
        "[[gateway.serial]]\nbaud = 9600\n",
        "[[gateway.predefined]]\ntopic_id = 1\ntopic = \"a\"\n[[gateway.predefined]]\ntopic_id = 1\ntopic = \"b\"\n",
        "[[listener]]\nbind = 0.0.0.0:1883\n",
        "[gateway.upstream]\nprotocol_version = 3\n",
        "[[bridge]]\nname = \"x\"\naddresses = [\"a:1\"]\ntopics = [ { pattern = \"a\", qos = 3 } ]\n",
        "[[bridge]]\nname = \"x\"\naddresses = [\"a:1\"]\ntopics = [ { pattern = \"a\", dir = 1 } ]\n",
        "[auth]\npassword_file = 3\n",
        "nonsense = 1\n",
    ] {
        match Config::from_toml_str(text, "t.toml") {
            Ok(_) => println!("OK?? {text:?}"),
            Err(e) => println!("{e}"),
        }
    }
}

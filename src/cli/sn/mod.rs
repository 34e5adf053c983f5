//! `sngate sn`: MQTT-SN test clients (`pub`, `sub`, `search`), the MQTT-SN
//! counterparts of mosquitto_pub and mosquitto_sub, over UDP or a serial radio.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand, ValueEnum};

pub mod client;
mod commands;
pub mod link;

pub use commands::run;

/// The `sn` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SnCommand {
    /// Publish one message
    Pub(Box<PubArgs>),
    /// Subscribe and print messages
    Sub(Box<SubArgs>),
    /// Look for gateways with SEARCHGW
    Search(Box<SearchArgs>),
}

/// Framing on a serial device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FramingArg {
    /// Bare MQTT-SN messages
    Raw,
    /// RFC 1055 SLIP
    Slip,
    /// XBee API frames (API mode 2)
    Xbee,
}

/// Where the gateway is; shared by every `sn` subcommand.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LinkArgs {
    /// Gateway host or address (IPv4 or IPv6); for `search` also a multicast group
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Gateway UDP port
    #[arg(short = 'p', long, default_value_t = 1884)]
    pub port: u16,
    /// Talk over this serial device instead of UDP
    #[arg(long, value_name = "DEVICE")]
    pub serial: Option<PathBuf>,
    /// Serial line speed
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Serial framing
    #[arg(long, value_enum, default_value = "raw")]
    pub framing: FramingArg,
    /// SLIP frames carry a CRC-16 trailer
    #[arg(long)]
    pub crc: bool,
    /// XBee: 64-bit address of the gateway's radio in hex (default: the coordinator, 0)
    #[arg(long, value_name = "HEX64", value_parser = parse_hex64)]
    pub xbee_dest: Option<u64>,
    /// DTLS PSK identity: talk DTLS 1.2 to a [[gateway.dtls]] socket (with --psk)
    #[arg(long, value_name = "ID", requires = "psk")]
    pub psk_identity: Option<String>,
    /// DTLS pre-shared key in hex (with --psk-identity)
    #[arg(long, value_name = "HEX", requires = "psk_identity")]
    pub psk: Option<String>,
    /// DTLS with certificates: the CA (PEM) the gateway's certificate must chain
    /// to and name --host (with --cert and --key)
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"], conflicts_with = "psk_identity")]
    pub cafile: Option<PathBuf>,
    /// DTLS client certificate (PEM, ECDSA P-256/P-384; with --cafile and --key)
    #[arg(long, value_name = "FILE", requires_all = ["cafile", "key"])]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM)
    #[arg(long, value_name = "FILE", requires_all = ["cafile", "cert"])]
    pub key: Option<PathBuf>,
    /// Print every packet sent and received on stderr
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

fn parse_hex64(s: &str) -> Result<u64, String> {
    let digits = s.trim_start_matches("0x").trim_start_matches("0X");
    u64::from_str_radix(digits, 16).map_err(|e| format!("not a 64-bit hex address: {e}"))
}

/// `sngate sn pub`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(disable_help_flag = true)]
#[command(group(clap::ArgGroup::new("topic_choice").required(true).args(["topic", "topic_id", "short_topic"])))]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["message", "stdin"])))]
pub struct PubArgs {
    /// Gateway and transport
    #[command(flatten)]
    pub link: LinkArgs,
    /// Client id
    #[arg(short = 'i', long = "id", default_value = "sngate-pub")]
    pub client_id: String,
    /// Topic name (REGISTERed before publishing)
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// Predefined topic id
    #[arg(long)]
    pub topic_id: Option<u16>,
    /// Two-character short topic name
    #[arg(short = 'T', long = "short-topic", value_name = "XY")]
    pub short_topic: Option<String>,
    /// Payload
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Read the payload from stdin
    #[arg(short = 's', long)]
    pub stdin: bool,
    /// QoS: -1 (no connection; predefined or short topic only), 0, 1 or 2
    #[arg(short = 'q', long, default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i8).range(-1..=2))]
    pub qos: i8,
    /// Retain
    #[arg(short = 'r', long)]
    pub retain: bool,
    /// Keep-alive in seconds
    #[arg(short = 'k', long, default_value_t = 60)]
    pub keepalive: u16,
    /// Will topic
    #[arg(long, requires = "will_message")]
    pub will_topic: Option<String>,
    /// Will payload
    #[arg(long, requires = "will_topic")]
    pub will_message: Option<String>,
    /// Will QoS
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub will_qos: u8,
    /// Will retain
    #[arg(long)]
    pub will_retain: bool,
}

/// `sngate sn sub`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(disable_help_flag = true)]
pub struct SubArgs {
    /// Gateway and transport
    #[command(flatten)]
    pub link: LinkArgs,
    /// Client id (needed with -c)
    #[arg(short = 'i', long = "id", default_value = "sngate-sub")]
    pub client_id: String,
    /// Topic filter; repeatable
    #[arg(short = 't', long, required = true)]
    pub topic: Vec<String>,
    /// Requested QoS
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Print "topic payload" instead of the payload alone
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Exit after this many messages
    #[arg(short = 'C', long)]
    pub count: Option<u64>,
    /// Give up after this many seconds
    #[arg(short = 'W', long)]
    pub timeout: Option<u64>,
    /// Sleep between wake-ups of this many seconds, as a sleeping client
    #[arg(long, value_name = "SECONDS")]
    pub sleep: Option<u16>,
    /// Clean session off (keep the session across runs)
    #[arg(short = 'c', long = "disable-clean-session")]
    pub keep_session: bool,
    /// Keep-alive in seconds
    #[arg(short = 'k', long, default_value_t = 60)]
    pub keepalive: u16,
}

/// `sngate sn search`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(disable_help_flag = true)]
pub struct SearchArgs {
    /// Where to send SEARCHGW: a gateway, a broadcast address or a multicast group
    #[command(flatten)]
    pub link: LinkArgs,
    /// Seconds to wait for answers
    #[arg(short = 'W', long, default_value_t = 5)]
    pub timeout: u64,
    /// Stop after this many gateways
    #[arg(short = 'C', long, default_value_t = 1)]
    pub count: usize,
    /// SEARCHGW broadcast radius
    #[arg(long, default_value_t = 1)]
    pub radius: u8,
}

#[cfg(test)]
mod tests;

//! `[[gateway.serial]]`: serial radios and how frames are delimited on them.

use std::path::PathBuf;

use serde::Deserialize;

use super::de::ranged;

/// One `[[gateway.serial]]` port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Device path; prefer the stable `/dev/serial/by-id/...` link, which survives replugging.
    pub device: PathBuf,
    /// Line speed in bits per second.
    #[serde(
        default = "default_baud",
        deserialize_with = "ranged::<_, _, 1, 4294967295>"
    )]
    pub baud: u32,
    /// Data bits per character.
    #[serde(default)]
    pub data_bits: DataBits,
    /// Parity bit.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits.
    #[serde(default)]
    pub stop_bits: StopBits,
    /// Flow control.
    #[serde(default)]
    pub flow_control: FlowControl,
    /// How MQTT-SN messages are delimited on the byte stream.
    #[serde(default)]
    pub framing: Framing,
    /// Whether each SLIP frame carries a CRC-16 trailer (slip only).
    #[serde(default)]
    pub crc: bool,
    /// XBee API mode: 1 (unescaped) or 2 (escaped) (xbee only).
    #[serde(default)]
    pub api_mode: XbeeApiMode,
    /// Discarded garbage, in bytes per second, above which the line is reported
    /// (logged once per episode, counted in `$SYS/broker/limits/max_garbage_rate`); 0 = never.
    #[serde(default = "default_garbage_rate")]
    pub max_garbage_rate: u32,
}

fn default_baud() -> u32 {
    115_200
}

fn default_garbage_rate() -> u32 {
    1024
}

/// Data bits per character: 5, 6, 7 or 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "i64")]
pub enum DataBits {
    /// 5 bits.
    Five,
    /// 6 bits.
    Six,
    /// 7 bits.
    Seven,
    /// 8 bits.
    #[default]
    Eight,
}

impl DataBits {
    /// The number of bits.
    pub fn bits(self) -> u8 {
        match self {
            DataBits::Five => 5,
            DataBits::Six => 6,
            DataBits::Seven => 7,
            DataBits::Eight => 8,
        }
    }
}

impl TryFrom<i64> for DataBits {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, String> {
        match value {
            5 => Ok(DataBits::Five),
            6 => Ok(DataBits::Six),
            7 => Ok(DataBits::Seven),
            8 => Ok(DataBits::Eight),
            other => Err(format!("invalid data bits {other}, expected 5, 6, 7 or 8")),
        }
    }
}

/// Parity bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Stop bits: 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "i64")]
pub enum StopBits {
    /// One stop bit.
    #[default]
    One,
    /// Two stop bits.
    Two,
}

impl TryFrom<i64> for StopBits {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, String> {
        match value {
            1 => Ok(StopBits::One),
            2 => Ok(StopBits::Two),
            other => Err(format!("invalid stop bits {other}, expected 1 or 2")),
        }
    }
}

/// Flow control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    /// None.
    #[default]
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// Framing of MQTT-SN messages on a serial byte stream; MQTT-SN 1.2 defines none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Messages back to back, delimited by their own MQTT-SN length field.
    #[default]
    Raw,
    /// RFC 1055 SLIP, optionally with a CRC-16 trailer.
    Slip,
    /// Digi XBee API frames; the 64-bit source address identifies the sensor.
    Xbee,
}

/// XBee API mode (the radio's `AP` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "i64")]
pub enum XbeeApiMode {
    /// AP=1: frames without escaping.
    Unescaped,
    /// AP=2: 0x7E, 0x7D, 0x11 and 0x13 escaped inside frames.
    #[default]
    Escaped,
}

impl TryFrom<i64> for XbeeApiMode {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, String> {
        match value {
            1 => Ok(XbeeApiMode::Unescaped),
            2 => Ok(XbeeApiMode::Escaped),
            other => Err(format!("invalid XBee API mode {other}, expected 1 or 2")),
        }
    }
}

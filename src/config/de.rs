//! Deserialization helpers that turn a bad value into a message naming the rule it broke.

use std::net::SocketAddr;

use std::fmt;

use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer};

use crate::qos::QoS;

/// Parses `"ip:port"`; serde's own message ("invalid socket address syntax") hides the value.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_socket_addr(&text).map_err(D::Error::custom)
}

/// Like [`socket_addr`], for keys that may be left out.
pub(super) fn opt_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(text) => parse_socket_addr(&text).map(Some).map_err(D::Error::custom),
        None => Ok(None),
    }
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "invalid socket address {text:?} (expected \"ip:port\", e.g. \"0.0.0.0:1883\" or \"[::]:1883\")"
        )
    })
}

/// An integer that must lie in `MIN..=MAX`, converted to the field's type.
pub(super) fn ranged<'de, D, T, const MIN: i64, const MAX: i64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let value = d.deserialize_i64(Integer)?;
    let out_of_range = || D::Error::custom(format!("{value} is out of range {MIN}..={MAX}"));
    if !(MIN..=MAX).contains(&value) {
        return Err(out_of_range());
    }
    T::try_from(value).map_err(|_| out_of_range())
}

/// A QoS level written as 0, 1 or 2.
pub(super) fn qos<'de, D: Deserializer<'de>>(d: D) -> Result<QoS, D::Error> {
    let value = d.deserialize_i64(Integer)?;
    u8::try_from(value)
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| D::Error::custom(format!("invalid QoS {value}, expected 0, 1 or 2")))
}

/// Accepts any TOML integer; says "an integer" rather than "i64" when given something else.
struct Integer;

impl Visitor<'_> for Integer {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }
}

//! DTLS for MQTT-SN sensors (docs/dtls.md): DTLS 1.2 with pre-shared keys,
//! DTLS 1.2 and 1.3 with certificates.
//!
//! [`server::DtlsServer`] is sans-IO: it multiplexes one DTLS session per peer
//! address on one UDP socket, built on the `dimpl` state machine, and hands
//! decrypted datagrams out with the identity (PSK identity or client
//! certificate, checked by [`certs`]) that authenticated them.
//! [`listener`] runs it on a tokio socket; [`client`] is the sensor side used
//! by `sngate sn`. The channel types in [`link`] and the PSK file parser in
//! [`psk`] do not depend on the `dtls` feature.

pub mod link;
pub mod psk;

#[cfg(feature = "dtls")]
pub mod certs;
#[cfg(feature = "dtls")]
pub mod client;
#[cfg(feature = "dtls")]
mod engine;
#[cfg(feature = "dtls")]
pub mod listener;
#[cfg(feature = "dtls")]
mod record;
#[cfg(feature = "dtls")]
pub mod server;
#[cfg(feature = "dtls")]
mod settings;

#[cfg(all(test, feature = "dtls"))]
mod tests;
#[cfg(all(test, feature = "dtls"))]
mod tests_certs;

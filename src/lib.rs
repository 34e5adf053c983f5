//! sngate: an MQTT-SN 1.2 gateway with a built-in MQTT 3.1.1/5.0 broker.
//!
//! Layers (see ARCHITECTURE.md): sans-IO codecs (`mqtt::codec`, `mqttsn::codec`),
//! sans-IO protocol state (`mqtt::session`, `gateway`), the protocol-agnostic
//! broker core (`broker`), and transports that only move frames (`transport`).
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mqtt;
pub mod mqttsn;
pub mod qos;
pub mod store;
pub mod transport;
pub mod upstream;

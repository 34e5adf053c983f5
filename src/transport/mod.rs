//! Transports: they move frames and know nothing of what a packet means.

pub mod dtls;
pub mod serial;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod websocket;

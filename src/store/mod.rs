//! Durable storage (see the durability work); in-memory only for now.

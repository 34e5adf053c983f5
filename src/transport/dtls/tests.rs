//! The sans-IO server against dimpl clients, datagrams carried by hand.

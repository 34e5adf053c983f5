//! Unit tests of the sans-IO gateway.

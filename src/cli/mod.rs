//! Command-line interface definitions.

//! Configuration: the TOML schema, defaults and validation.

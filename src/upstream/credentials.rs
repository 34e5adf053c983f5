//! Per-sensor upstream credentials: a TOML file with one table per sensor
//! client id, giving the username/password (or client certificate and key)
//! that sensor uses at the upstream broker.
//!
//! ```toml
//! ["boiler-7"]
//! username = "site-a-boiler-7"
//! password = "secret"
//!
//! ["meter-2"]
//! certfile = "/etc/sngate/meter-2.crt"
//! keyfile = "/etc/sngate/meter-2.key"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One sensor's upstream identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorCredentials {
    /// Upstream username.
    pub username: Option<String>,
    /// Upstream password.
    pub password: Option<String>,
    /// PEM client certificate chain (TLS upstream only).
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile`.
    pub keyfile: Option<PathBuf>,
}

/// The credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("credentials_file {path}: {source}")]
    Read {
        /// Its path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("credentials_file {path}: {why}")]
    Parse {
        /// Its path.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Client id → credentials.
#[derive(Debug, Clone, Default)]
pub struct CredentialsMap {
    by_client: HashMap<String, SensorCredentials>,
}

impl CredentialsMap {
    /// Parses the file's text.
    pub fn parse(text: &str, path: &Path) -> Result<CredentialsMap, CredentialsError> {
        let by_client: HashMap<String, SensorCredentials> =
            toml::from_str(text).map_err(|e| CredentialsError::Parse {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        for (id, c) in &by_client {
            if c.certfile.is_some() != c.keyfile.is_some() {
                return Err(CredentialsError::Parse {
                    path: path.display().to_string(),
                    why: format!("[\"{id}\"]: certfile and keyfile go together"),
                });
            }
        }
        Ok(CredentialsMap { by_client })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<CredentialsMap, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        CredentialsMap::parse(&text, path)
    }

    /// The credentials of the sensor with this client id.
    pub fn get(&self, client_id: &str) -> Option<&SensorCredentials> {
        self.by_client.get(client_id)
    }

    /// How many sensors the file names.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// True when the file names no sensor.
    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_id_maps_to_its_own_identity() {
        let text = "[\"s1\"]\nusername = \"u1\"\npassword = \"p1\"\n[\"s2\"]\ncertfile = \"c\"\nkeyfile = \"k\"\n";
        let m = CredentialsMap::parse(text, Path::new("f")).unwrap();
        assert_eq!(m.get("s1").unwrap().username.as_deref(), Some("u1"));
        assert_eq!(m.get("s2").unwrap().certfile, Some(PathBuf::from("c")));
        assert!(m.get("s3").is_none());
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let text = "[\"s1\"]\ncertfile = \"c\"\n";
        assert!(CredentialsMap::parse(text, Path::new("f")).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "[\"s1\"]\nuser = \"u1\"\n";
        assert!(CredentialsMap::parse(text, Path::new("f")).is_err());
    }
}

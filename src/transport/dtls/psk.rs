//! The PSK table: Mosquitto's `psk_file` format (`identity:hexkey`), with two
//! optional fields binding the identity to a client id and an ACL username:
//! `identity:hexkey[:client_id[:username]]`. Both default to the identity.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::gateway::PeerIdentity;

/// Why a PSK file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PskFileError {
    /// The file could not be read.
    #[error("cannot read PSK file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("PSK file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One device: its key and what its identity is bound to.
#[derive(Clone, PartialEq, Eq)]
pub struct PskEntry {
    /// The key, decoded from hex.
    pub key: Vec<u8>,
    /// The identity handed to the gateway after a handshake with this key.
    pub identity: Arc<PeerIdentity>,
}

impl fmt::Debug for PskEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PskEntry")
            .field("identity", &self.identity)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

/// The PSK table a listener uses now; a reload (SIGHUP) replaces it while
/// the listener runs. New handshakes look keys up here; established sessions
/// keep the identity they proved.
#[derive(Debug, Default)]
pub struct SharedPskTable(RwLock<Arc<PskTable>>);

impl SharedPskTable {
    /// Starts with `table`.
    pub fn new(table: Arc<PskTable>) -> SharedPskTable {
        SharedPskTable(RwLock::new(table))
    }

    /// The table in force.
    pub fn current(&self) -> Arc<PskTable> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `table` in force for every later lookup.
    pub fn replace(&self, table: Arc<PskTable>) {
        match self.0.write() {
            Ok(mut g) => *g = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }
}

/// Identity → key and binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PskTable {
    entries: HashMap<Vec<u8>, PskEntry>,
}

impl PskTable {
    /// Parses the file text; the error is the 1-based line and the reason.
    pub fn parse(text: &str) -> Result<PskTable, (usize, String)> {
        let mut entries = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: &str| (i + 1, reason.to_owned());
            let mut fields = line.split(':');
            let identity = fields.next().unwrap_or_default();
            let Some(hex) = fields.next() else {
                return Err(fail("expected identity:hexkey"));
            };
            let client_id = fields.next().filter(|c| !c.is_empty()).unwrap_or(identity);
            let username = fields.next().filter(|u| !u.is_empty()).unwrap_or(identity);
            if fields.next().is_some() {
                return Err(fail(
                    "too many fields; expected identity:hexkey[:client_id[:username]]",
                ));
            }
            if identity.is_empty() {
                return Err(fail("empty identity"));
            }
            let key = decode_hex(hex)
                .ok_or_else(|| fail("the key is not an even number of hex digits"))?;
            if key.is_empty() {
                return Err(fail("empty key"));
            }
            let entry = PskEntry {
                key,
                identity: Arc::new(PeerIdentity {
                    name: identity.into(),
                    client_id: client_id.into(),
                    username: Some(username.into()),
                }),
            };
            if entries
                .insert(identity.as_bytes().to_vec(), entry)
                .is_some()
            {
                return Err(fail("identity listed twice"));
            }
        }
        Ok(PskTable { entries })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<PskTable, PskFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PskFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        PskTable::parse(&text).map_err(|(line, reason)| PskFileError::Line {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// The entry for a PSK identity as sent in ClientKeyExchange.
    pub fn get(&self, identity: &[u8]) -> Option<&PskEntry> {
        self.entries.get(identity)
    }

    /// Every identity listed, with its bindings.
    pub fn identities(&self) -> impl Iterator<Item = &Arc<PeerIdentity>> {
        self.entries.values().map(|e| &e.identity)
    }

    /// Identities listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no identity is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Decodes hex digits (either case); `None` for odd length or a non-hex digit.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_lines_bind_the_identity_as_client_id_and_username() {
        let t = PskTable::parse("# sensors\n\ndev1:00ff10\n").unwrap();
        let e = t.get(b"dev1").unwrap();
        assert_eq!(e.key, vec![0x00, 0xff, 0x10]);
        assert_eq!(&*e.identity.client_id, "dev1");
        assert_eq!(e.identity.username.as_deref(), Some("dev1"));
    }

    #[test]
    fn third_and_fourth_fields_bind_client_id_and_username() {
        let t = PskTable::parse("dev1:AB12:sensor-7:kitchen\ndev2:ab12::\n").unwrap();
        let e = t.get(b"dev1").unwrap();
        assert_eq!(&*e.identity.client_id, "sensor-7");
        assert_eq!(e.identity.username.as_deref(), Some("kitchen"));
        assert_eq!(&*t.get(b"dev2").unwrap().identity.client_id, "dev2");
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        assert_eq!(PskTable::parse("a:00\nb\n").unwrap_err().0, 2);
        assert_eq!(PskTable::parse("a:0g").unwrap_err().0, 1);
        assert_eq!(PskTable::parse("a:000").unwrap_err().0, 1);
        assert_eq!(PskTable::parse("a:").unwrap_err().0, 1);
        assert_eq!(PskTable::parse(":00").unwrap_err().0, 1);
        assert_eq!(PskTable::parse("a:00:c:u:x").unwrap_err().0, 1);
        assert_eq!(PskTable::parse("a:00\na:01").unwrap_err().0, 2);
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let t = PskTable::parse("dev1:deadbeef").unwrap();
        assert!(!format!("{t:?}").contains("deadbeef"));
    }
}

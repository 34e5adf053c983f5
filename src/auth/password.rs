//! Password files in Mosquitto's `mosquitto_passwd` format, so one file serves
//! both brokers: `username:$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, the
//! Mosquitto 2.0 default) and the older `username:$6$SALT$HASH` (one SHA-512
//! over password‖salt). Salt and hash are standard base64 with padding.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Iterations `mosquitto_passwd` 2.0 uses (`PW_DEFAULT_ITERATIONS`).
pub const DEFAULT_ITERATIONS: u32 = 101;
/// Salt length Mosquitto writes and requires (`SALT_LEN`).
const SALT_LEN: usize = 12;
/// SHA-512 output length; Mosquitto requires exactly this.
const HASH_LEN: usize = 64;
/// Refuse iteration counts that would let a file stall the broker on every CONNECT.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A password file line that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    /// The line has no `:` separating user and hash.
    #[error("line {line}: expected `username:hash`")]
    NoSeparator {
        /// 1-based line number.
        line: usize,
    },
    /// The hash is not a `$6$` or `$7$` Mosquitto hash.
    #[error("line {line}: {why}")]
    BadHash {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The same user appears twice.
    #[error("line {line}: user {user:?} appears more than once")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// The user.
        user: String,
    },
}

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 {
        /// Salt bytes.
        salt: Vec<u8>,
        /// Hash bytes.
        hash: Vec<u8>,
    },
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// Iteration count.
        iterations: u32,
        /// Salt bytes.
        salt: Vec<u8>,
        /// Hash bytes.
        hash: Vec<u8>,
    },
}

impl fmt::Debug for PasswordHash {
    // Hashes stay out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { .. } => f.write_str("PasswordHash($6$)"),
            PasswordHash::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "PasswordHash($7$, {iterations} iterations)")
            }
        }
    }
}

impl PasswordHash {
    /// A new `$7$` hash of `password` with a random salt.
    pub fn new(password: &[u8], iterations: u32) -> PasswordHash {
        let mut salt = vec![0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        let hash = pbkdf2_sha512(password, &salt, iterations);
        PasswordHash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        }
    }

    /// Parses the part after `username:`.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "6", salt, hash] => Ok(PasswordHash::Sha512 {
                salt: decode(salt, SALT_LEN, "salt")?,
                hash: decode(hash, HASH_LEN, "hash")?,
            }),
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .map_err(|_| format!("bad iteration count {iterations:?}"))?;
                if iterations == 0 || iterations > MAX_ITERATIONS {
                    return Err(format!("iteration count {iterations} out of range"));
                }
                Ok(PasswordHash::Pbkdf2Sha512 {
                    iterations,
                    salt: decode(salt, SALT_LEN, "salt")?,
                    hash: decode(hash, HASH_LEN, "hash")?,
                })
            }
            ["", kind, ..] if kind.starts_with("argon2") => {
                Err("argon2 hashes (Mosquitto 2.1) are not supported; use `sngate passwd`".into())
            }
            _ => Err(
                "not a mosquitto_passwd hash ($6$ or $7$); plain-text passwords are not accepted"
                    .into(),
            ),
        }
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            PasswordHash::Sha512 { salt, hash } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                (h.finalize().to_vec(), hash)
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => (pbkdf2_sha512(password, salt, *iterations), hash),
        };
        computed.ct_eq(stored).into()
    }
}

impl fmt::Display for PasswordHash {
    /// The Mosquitto text form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
            PasswordHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                STANDARD.encode(salt),
                STANDARD.encode(hash)
            ),
        }
    }
}

fn decode(text: &str, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("{what} is not base64: {e}"))?;
    // Mosquitto 2.0 refuses other lengths too (security_default.c).
    if bytes.len() != len {
        return Err(format!("{what} must be {len} bytes, not {}", bytes.len()));
    }
    Ok(bytes)
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

/// A parsed password file: user name → hash (written back sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    users: BTreeMap<String, PasswordHash>,
}

impl PasswordFile {
    /// Parses the file text; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<PasswordFile, PasswordError> {
        let mut users = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_end_matches('\r');
            if l.trim().is_empty() || l.starts_with('#') {
                continue;
            }
            let (user, hash) = l
                .split_once(':')
                .ok_or(PasswordError::NoSeparator { line })?;
            let hash = PasswordHash::parse(hash.trim())
                .map_err(|why| PasswordError::BadHash { line, why })?;
            if users.insert(user.to_string(), hash).is_some() {
                return Err(PasswordError::Duplicate {
                    line,
                    user: user.to_string(),
                });
            }
        }
        Ok(PasswordFile { users })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        PasswordFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether `user` exists and `password` is theirs. An unknown user still
    /// costs one hash so timing does not reveal which names exist.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(h) => h.verify(password),
            None => {
                let _ = pbkdf2_sha512(password, &[0u8; SALT_LEN], DEFAULT_ITERATIONS);
                false
            }
        }
    }

    /// Sets (adds or replaces) a user's hash.
    pub fn set(&mut self, user: &str, hash: PasswordHash) {
        self.users.insert(user.to_string(), hash);
    }

    /// Removes a user; false if there was none.
    pub fn remove(&mut self, user: &str) -> bool {
        self.users.remove(user).is_some()
    }

    /// Whether the file has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The file text, one `user:hash` line per user.
    pub fn to_text(&self) -> String {
        self.users
            .iter()
            .map(|(u, h)| format!("{u}:{h}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hash_verifies_its_password_only() {
        let h = PasswordHash::new(b"secret", DEFAULT_ITERATIONS);
        assert!(h.verify(b"secret"));
        assert!(!h.verify(b"Secret"));
    }

    #[test]
    fn text_form_round_trips_for_both_kinds() {
        let h7 = PasswordHash::new(b"pw", 5);
        assert_eq!(PasswordHash::parse(&h7.to_string()), Ok(h7.clone()));
        let h6 = PasswordHash::Sha512 {
            salt: vec![1; 12],
            hash: vec![2; 64],
        };
        let text = h6.to_string();
        assert!(
            text.starts_with("$6$") && text.len() == 3 + 16 + 1 + 88,
            "{text}"
        );
        assert_eq!(PasswordHash::parse(&text), Ok(h6));
    }

    #[test]
    fn sha512_form_is_one_digest_over_password_then_salt() {
        let salt = vec![7u8; 12];
        let mut d = Sha512::new();
        d.update(b"hunter2");
        d.update(&salt);
        let h = PasswordHash::Sha512 {
            salt,
            hash: d.finalize().to_vec(),
        };
        assert!(h.verify(b"hunter2"));
        assert!(!h.verify(b"hunter3"));
    }

    #[test]
    fn new_hashes_have_mosquitto_lengths() {
        let text = PasswordHash::new(b"x", DEFAULT_ITERATIONS).to_string();
        let parts: Vec<&str> = text.split('$').collect();
        assert_eq!(parts[1..3], ["7", "101"]);
        assert_eq!((parts[3].len(), parts[4].len()), (16, 88));
    }

    #[test]
    fn file_skips_comments_and_blank_lines() {
        let line = format!("carol:{}", PasswordHash::new(b"pw", 3));
        let f = PasswordFile::parse(&format!("# users\n\n{line}\n")).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f.check("carol", b"pw"));
        assert!(!f.check("carol", b"wrong"));
        assert!(!f.check("nobody", b"pw"));
    }

    #[test]
    fn plain_text_and_argon2_lines_are_refused_with_the_line_number() {
        let e = PasswordFile::parse("a:$7$1$AAAAAAAAAAAAAAAA$x\nb:plain").unwrap_err();
        assert!(matches!(e, PasswordError::BadHash { line: 1, .. }), "{e}");
        let e = PasswordFile::parse("b:plain").unwrap_err();
        assert!(e.to_string().contains("plain-text"), "{e}");
        let e = PasswordFile::parse("c:$argon2id$v=19$m=47104,t=1,p=1$x$y").unwrap_err();
        assert!(e.to_string().contains("argon2"), "{e}");
    }

    #[test]
    fn a_line_without_separator_is_refused() {
        assert_eq!(
            PasswordFile::parse("justaname"),
            Err(PasswordError::NoSeparator { line: 1 })
        );
    }

    #[test]
    fn wrong_salt_length_is_refused() {
        assert!(PasswordHash::parse("$6$AAAA$AAAA").is_err());
    }
}

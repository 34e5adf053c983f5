//! Authentication and authorisation: password file, ACL.
//!
//! [`Authorizer`] is what protocol layers ask (MQTT sessions, the MQTT-SN
//! gateway): it holds the current password file and ACL behind a lock that
//! [`Authorizer::reload`] swaps, so a SIGHUP changes the rules for every
//! later check without touching connected clients.

mod acl;
mod password;

use std::sync::{Arc, RwLock};

use thiserror::Error;

pub use self::acl::{Access, AclError, AclFile};
pub use self::password::{DEFAULT_ITERATIONS, PasswordError, PasswordFile, PasswordHash};
use crate::config::AuthConfig;

/// A password or ACL file that could not be loaded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown user or wrong password (CONNACK 4 / 0x86).
    BadCredentials,
    /// No user name while anonymous clients are not allowed (CONNACK 5 / 0x87).
    NotAuthorized,
}

#[derive(Debug)]
struct Rules {
    allow_anonymous: bool,
    passwords: Option<PasswordFile>,
    acl: Option<AclFile>,
}

/// The access rules of the running broker; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Authorizer {
    /// Which files to read; replaced by [`Authorizer::reconfigure`].
    files: RwLock<AuthConfig>,
    rules: RwLock<Arc<Rules>>,
}

impl Default for Authorizer {
    fn default() -> Authorizer {
        Authorizer::open()
    }
}

impl Authorizer {
    /// Everyone may connect and do anything (no `[auth]` files).
    pub fn open() -> Authorizer {
        Authorizer::with_rules(true, None, None)
    }

    /// Loads the files `[auth]` names; an unreadable or malformed file is an error.
    pub fn from_config(config: &AuthConfig) -> Result<Authorizer, AuthError> {
        let a = Authorizer::open();
        a.reconfigure(config)?;
        Ok(a)
    }

    /// An authorizer from already parsed rules (tests, embedding).
    pub fn with_rules(
        allow_anonymous: bool,
        passwords: Option<PasswordFile>,
        acl: Option<AclFile>,
    ) -> Authorizer {
        Authorizer {
            files: RwLock::new(AuthConfig {
                allow_anonymous,
                password_file: None,
                acl_file: None,
            }),
            rules: RwLock::new(Arc::new(Rules {
                allow_anonymous,
                passwords,
                acl,
            })),
        }
    }

    /// Re-reads the password and ACL files. On error the rules in force stay
    /// as they were (both files are read before either is swapped in).
    pub fn reload(&self) -> Result<(), AuthError> {
        let files = match self.files.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        self.reconfigure(&files)
    }

    /// Switches to the files and `allow_anonymous` of `config` (a reloaded
    /// `[auth]`), reading both files first: on error nothing changes.
    pub fn reconfigure(&self, config: &AuthConfig) -> Result<(), AuthError> {
        let passwords = match &config.password_file {
            Some(p) => Some(PasswordFile::load(p).map_err(AuthError)?),
            None => None,
        };
        let acl = match &config.acl_file {
            Some(p) => Some(AclFile::load(p).map_err(AuthError)?),
            None => None,
        };
        let new = Arc::new(Rules {
            allow_anonymous: config.allow_anonymous,
            passwords,
            acl,
        });
        match self.files.write() {
            Ok(mut guard) => *guard = config.clone(),
            Err(poisoned) => *poisoned.into_inner() = config.clone(),
        }
        match self.rules.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }

    fn rules(&self) -> Arc<Rules> {
        match self.rules.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether any check can refuse something; lets callers skip work.
    pub fn is_open(&self) -> bool {
        let r = self.rules();
        r.allow_anonymous && r.passwords.is_none() && r.acl.is_none()
    }

    /// Checks CONNECT credentials. With a password file a user name must be
    /// in it with this password; without one any user name is accepted (as
    /// Mosquitto does). No user name is accepted only with `allow_anonymous`.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), AuthFailure> {
        let rules = self.rules();
        let Some(user) = username else {
            return if rules.allow_anonymous {
                Ok(())
            } else {
                Err(AuthFailure::NotAuthorized)
            };
        };
        match &rules.passwords {
            None => Ok(()),
            Some(file) => match password {
                Some(pw) if file.check(user, pw) => Ok(()),
                _ => Err(AuthFailure::BadCredentials),
            },
        }
    }

    /// Whether the client may publish to the topic name `topic`.
    pub fn can_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.rules()
            .acl
            .as_ref()
            .is_none_or(|a| a.allows_topic(client_id, username, topic, Access::Write))
    }

    /// Whether a message on `topic` may be delivered to the client.
    pub fn can_read(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.rules()
            .acl
            .as_ref()
            .is_none_or(|a| a.allows_topic(client_id, username, topic, Access::Read))
    }

    /// Whether the client may subscribe to `filter`.
    pub fn can_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        self.rules()
            .acl
            .as_ref()
            .is_none_or(|a| a.allows_subscribe(client_id, username, filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> PasswordFile {
        let mut f = PasswordFile::default();
        f.set("ann", PasswordHash::new(b"pw", 2));
        f
    }

    #[test]
    fn wrong_password_and_unknown_user_are_bad_credentials() {
        let a = Authorizer::with_rules(false, Some(passwords()), None);
        assert_eq!(a.authenticate(Some("ann"), Some(b"pw")), Ok(()));
        assert_eq!(
            a.authenticate(Some("ann"), Some(b"px")),
            Err(AuthFailure::BadCredentials)
        );
        assert_eq!(
            a.authenticate(Some("bob"), Some(b"pw")),
            Err(AuthFailure::BadCredentials)
        );
        assert_eq!(
            a.authenticate(Some("ann"), None),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn missing_user_name_is_not_authorized_unless_anonymous_is_allowed() {
        let closed = Authorizer::with_rules(false, Some(passwords()), None);
        assert_eq!(
            closed.authenticate(None, None),
            Err(AuthFailure::NotAuthorized)
        );
        let open = Authorizer::with_rules(true, Some(passwords()), None);
        assert_eq!(open.authenticate(None, None), Ok(()));
    }

    #[test]
    fn without_an_acl_everything_is_allowed() {
        let a = Authorizer::open();
        assert!(a.is_open());
        assert!(a.can_publish("c", None, "x"));
        assert!(a.can_subscribe("c", None, "#"));
    }

    #[test]
    fn reload_keeps_the_old_rules_when_a_file_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let acl_path = dir.path().join("acl");
        std::fs::write(&acl_path, "user u\ntopic read a/#\n").unwrap();
        let config = AuthConfig {
            allow_anonymous: true,
            password_file: None,
            acl_file: Some(acl_path.clone()),
        };
        let a = Authorizer::from_config(&config).unwrap();
        assert!(a.can_read("c", Some("u"), "a/1"));
        std::fs::write(&acl_path, "user u\nbogus line\n").unwrap();
        assert!(a.reload().is_err());
        assert!(a.can_read("c", Some("u"), "a/1"));
        std::fs::write(&acl_path, "user u\ntopic read b/#\n").unwrap();
        a.reload().unwrap();
        assert!(!a.can_read("c", Some("u"), "a/1"));
        assert!(a.can_read("c", Some("u"), "b/1"));
    }

    #[test]
    fn reconfigure_switches_to_new_files_and_keeps_the_old_ones_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a_path, b_path) = (dir.path().join("a.acl"), dir.path().join("b.acl"));
        std::fs::write(&a_path, "user u\ntopic read a/#\n").unwrap();
        std::fs::write(&b_path, "user u\ntopic read b/#\n").unwrap();
        let config = |acl: &std::path::Path, anonymous| AuthConfig {
            allow_anonymous: anonymous,
            password_file: None,
            acl_file: Some(acl.to_owned()),
        };
        let a = Authorizer::from_config(&config(&a_path, true)).unwrap();
        a.reconfigure(&config(&b_path, false)).unwrap();
        assert!(a.can_read("c", Some("u"), "b/1") && !a.can_read("c", Some("u"), "a/1"));
        assert_eq!(a.authenticate(None, None), Err(AuthFailure::NotAuthorized));
        let missing = dir.path().join("missing.acl");
        assert!(a.reconfigure(&config(&missing, true)).is_err());
        assert!(a.can_read("c", Some("u"), "b/1"));
        assert_eq!(a.authenticate(None, None), Err(AuthFailure::NotAuthorized));
        // A later plain reload re-reads the files now in force.
        std::fs::write(&b_path, "user u\ntopic read c/#\n").unwrap();
        a.reload().unwrap();
        assert!(a.can_read("c", Some("u"), "c/1"));
    }
}

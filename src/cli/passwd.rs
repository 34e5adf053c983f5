//! `sngate passwd`: manage a password file in `mosquitto_passwd` format, so
//! the same file works with sngate and Mosquitto.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::auth::{DEFAULT_ITERATIONS, PasswordFile, PasswordHash};

/// Arguments of `sngate passwd` (the flags of `mosquitto_passwd`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PasswdArgs {
    /// Create a new password file, replacing any existing one
    #[arg(short = 'c', conflicts_with = "delete")]
    pub create: bool,
    /// Batch mode: take the password from the command line
    #[arg(short = 'b', requires = "password")]
    pub batch: bool,
    /// Delete the user from the file
    #[arg(short = 'D', conflicts_with = "batch")]
    pub delete: bool,
    /// PBKDF2 iterations for the new hash
    #[arg(short = 'I', value_name = "N", default_value_t = DEFAULT_ITERATIONS,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub iterations: u32,
    /// The password file
    pub file: PathBuf,
    /// The user to add, update or delete
    pub username: String,
    /// The password (only with -b; it shows in the process list and shell history)
    pub password: Option<String>,
}

/// Why `sngate passwd` failed.
#[derive(Debug, Error)]
pub enum PasswdError {
    /// The user name cannot be stored.
    #[error("user name must be non-empty and contain no ':' or control characters")]
    BadUsername,
    /// A password was given without `-b`.
    #[error("a password on the command line needs -b")]
    PasswordWithoutBatch,
    /// The two passwords typed differ.
    #[error("passwords do not match")]
    Mismatch,
    /// An empty password was entered.
    #[error("empty password")]
    EmptyPassword,
    /// `-D` for a user not in the file.
    #[error("user {0:?} not found")]
    NoSuchUser(String),
    /// The existing file is malformed.
    #[error("{0}")]
    BadFile(String),
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PasswdError {
    let what = what.into();
    move |source| PasswdError::Io { what, source }
}

/// Runs the subcommand; returns the process exit code after printing any error.
pub fn run_passwd(args: &PasswdArgs) -> i32 {
    match passwd(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sngate passwd: {e}");
            1
        }
    }
}

/// Applies `args` to the password file.
pub fn passwd(args: &PasswdArgs) -> Result<(), PasswdError> {
    let user = args.username.as_str();
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(PasswdError::BadUsername);
    }
    if args.password.is_some() && !args.batch {
        return Err(PasswdError::PasswordWithoutBatch);
    }
    let mut file = if args.create {
        PasswordFile::default()
    } else {
        let text = std::fs::read_to_string(&args.file)
            .map_err(io_err(format!("cannot read {}", args.file.display())))?;
        PasswordFile::parse(&text)
            .map_err(|e| PasswdError::BadFile(format!("{}: {e}", args.file.display())))?
    };
    if args.delete {
        if !file.remove(user) {
            return Err(PasswdError::NoSuchUser(user.to_string()));
        }
    } else {
        let password = match &args.password {
            Some(p) => p.clone(),
            None => read_password()?,
        };
        if password.is_empty() {
            return Err(PasswdError::EmptyPassword);
        }
        file.set(
            user,
            PasswordHash::new(password.as_bytes(), args.iterations),
        );
    }
    write_file(&args.file, &file.to_text())
}

/// Asks twice without echo on a terminal; from a pipe, the first line is the
/// password and a second line, if present, must repeat it.
fn read_password() -> Result<String, PasswdError> {
    if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password("Password: ").map_err(io_err("cannot read password"))?;
        let again = rpassword::prompt_password("Reenter password: ")
            .map_err(io_err("cannot read password"))?;
        if first != again {
            return Err(PasswdError::Mismatch);
        }
        return Ok(first);
    }
    let mut lines = std::io::stdin().lock().lines();
    let first = lines
        .next()
        .transpose()
        .map_err(io_err("cannot read password from stdin"))?
        .unwrap_or_default();
    if let Some(again) = lines
        .next()
        .transpose()
        .map_err(io_err("cannot read password from stdin"))?
        && again != first
    {
        return Err(PasswdError::Mismatch);
    }
    Ok(first)
}

/// Replaces the file atomically (temp file + rename), readable by its owner only.
fn write_file(path: &Path, text: &str) -> Result<(), PasswdError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "passwd".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let what = format!("cannot write {}", tmp.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(what.clone()))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io_err(format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: &Path, flags: &str, user: &str, pw: Option<&str>) -> PasswdArgs {
        PasswdArgs {
            create: flags.contains('c'),
            batch: flags.contains('b'),
            delete: flags.contains('D'),
            iterations: 3,
            file: file.to_path_buf(),
            username: user.into(),
            password: pw.map(str::to_string),
        }
    }

    fn load(path: &Path) -> PasswordFile {
        PasswordFile::load(path).unwrap()
    }

    #[test]
    fn create_update_and_delete_users() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        passwd(&args(&f, "cb", "ann", Some("one"))).unwrap();
        passwd(&args(&f, "b", "bob", Some("two"))).unwrap();
        passwd(&args(&f, "b", "ann", Some("three"))).unwrap();
        let file = load(&f);
        assert!(file.check("ann", b"three") && file.check("bob", b"two"));
        passwd(&args(&f, "D", "bob", None)).unwrap();
        assert!(!load(&f).contains("bob"));
        assert!(matches!(
            passwd(&args(&f, "D", "bob", None)),
            Err(PasswdError::NoSuchUser(_))
        ));
    }

    #[test]
    fn create_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        passwd(&args(&f, "cb", "ann", Some("one"))).unwrap();
        passwd(&args(&f, "cb", "bob", Some("two"))).unwrap();
        assert_eq!(load(&f).len(), 1);
    }

    #[test]
    fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        passwd(&args(&f, "cb", "ann", Some("one"))).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn user_names_with_a_colon_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        assert!(matches!(
            passwd(&args(&f, "cb", "a:b", Some("x"))),
            Err(PasswdError::BadUsername)
        ));
    }

    #[test]
    fn updating_a_missing_file_without_c_fails() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("absent");
        assert!(matches!(
            passwd(&args(&f, "b", "ann", Some("x"))),
            Err(PasswdError::Io { .. })
        ));
    }
}

//! Command-line interface definitions.

mod passwd;

use std::path::{Path, PathBuf};

pub use self::passwd::{PasswdArgs, PasswdError, passwd, run_passwd};
use crate::config::Config;

pub mod sn;

/// Command line of the `sngate` binary.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sngate",
    version,
    about = "MQTT-SN 1.2 gateway with a built-in MQTT 3.1.1/5.0 broker"
)]
pub struct Cli {
    /// Configuration file (TOML); without it the built-in defaults apply
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Move a damaged or unreadable store aside (kept as sngate.redb.damaged-TIME) and start with an empty one
    #[arg(long = "reset-store")]
    pub reset_store: bool,
    /// What to do; `run` when left out
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Run the broker and gateway (the default)
    Run,
    /// Validate a config file and exit 0 if it is valid, 1 otherwise
    CheckConfig {
        /// The TOML file to check
        file: PathBuf,
    },
    /// MQTT-SN test clients: pub, sub, search
    #[command(subcommand)]
    Sn(sn::SnCommand),
    /// Create, update or delete users of a password file (mosquitto_passwd format)
    Passwd(PasswdArgs),
}

/// Checks `file` as `sngate check-config` does: returns the exit code (0 valid,
/// 1 not) and the line to show, `"<file>: OK"` or the error naming file, line and key.
pub fn check_config(file: &Path) -> (i32, String) {
    match Config::load(file) {
        Ok(_) => (0, format!("{}: OK", file.display())),
        Err(e) => (1, e.to_string()),
    }
}

/// Runs [`check_config`] and prints its message: to stdout when valid, to stderr otherwise.
pub fn run_check_config(file: &Path) -> i32 {
    let (code, message) = check_config(file);
    if code == 0 {
        println!("{message}");
    } else {
        eprintln!("{message}");
    }
    code
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_means_run_with_builtin_config() {
        let cli = Cli::try_parse_from(["sngate"]).unwrap();
        assert_eq!((cli.config, cli.command), (None, None));
    }

    #[test]
    fn config_flag_takes_a_path() {
        let cli = Cli::try_parse_from(["sngate", "-c", "/etc/sngate/sngate.toml", "run"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/sngate/sngate.toml")));
        assert_eq!(cli.command, Some(Command::Run));
    }

    #[test]
    fn check_config_subcommand_takes_a_file() {
        let cli = Cli::try_parse_from(["sngate", "check-config", "x.toml"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::CheckConfig {
                file: PathBuf::from("x.toml")
            })
        );
    }

    #[test]
    fn passwd_subcommand_takes_mosquitto_passwd_flags() {
        let cli = Cli::try_parse_from(["sngate", "passwd", "-c", "-b", "f", "u", "p"]).unwrap();
        let Some(Command::Passwd(a)) = cli.command else {
            panic!("not passwd");
        };
        assert!(a.create && a.batch && !a.delete);
        assert_eq!(
            (a.username.as_str(), a.password.as_deref()),
            ("u", Some("p"))
        );
        assert!(Cli::try_parse_from(["sngate", "passwd", "-D", "-c", "f", "u"]).is_err());
    }

    #[test]
    fn check_config_reports_ok_for_a_valid_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[broker]\nsys_interval = 0\n").unwrap();
        let (code, message) = check_config(file.path());
        assert_eq!(code, 0);
        assert_eq!(message, format!("{}: OK", file.path().display()));
    }

    #[test]
    fn check_config_reports_the_error_and_exit_code_1_for_an_invalid_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"[broker]\nsys_intervall = 0\n").unwrap();
        let (code, message) = check_config(file.path());
        assert_eq!(code, 1);
        assert!(
            message.contains(":2:1: broker.sys_intervall: unknown field"),
            "{message}"
        );
    }

    #[test]
    fn check_config_reports_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let (code, message) = check_config(&path);
        assert_eq!(code, 1);
        assert_eq!(
            message,
            format!("cannot read {}: No such file or directory", path.display())
        );
    }
}

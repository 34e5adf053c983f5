//! The process's log output: a level from `[log]` that a reload can change,
//! unless `RUST_LOG` set the filter.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::LogLevel;

/// Changes the level of the log installed by [`init_logging`].
#[derive(Debug)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` chose the filter; the config's level is then not used.
    from_env: bool,
}

/// What [`LogControl::set_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// The new level is in force.
    Applied,
    /// `RUST_LOG` is set and wins over the config, so nothing changed.
    OverriddenByEnv,
}

/// Installs the global log writer (stderr) at `level`, or with the `RUST_LOG`
/// filter when that is set (users of `tracing` expect it to win).
pub fn init_logging(level: LogLevel) -> LogControl {
    let env = EnvFilter::try_from_default_env().ok();
    let from_env = env.is_some();
    let filter = env.unwrap_or_else(|| EnvFilter::new(level.as_str()));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second install (a test calling this twice) keeps the first writer.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    LogControl { handle, from_env }
}

impl LogControl {
    /// Whether `RUST_LOG` chose the filter, so the config's level is unused.
    pub fn is_overridden(&self) -> bool {
        self.from_env
    }

    /// Puts `level` in force for every later event.
    pub fn set_level(&self, level: LogLevel) -> Result<LevelChange, reload::Error> {
        if self.from_env {
            return Ok(LevelChange::OverriddenByEnv);
        }
        self.handle.reload(EnvFilter::new(level.as_str()))?;
        Ok(LevelChange::Applied)
    }
}

//! SIGHUP: re-reads the config file sngate started with and applies what can
//! change without dropping a connection (docs/operations.md): log level,
//! password/ACL files, TLS certificates, DTLS PSK files, predefined topics,
//! sensor user names and the bridge list. A config that `sngate check-config`
//! would refuse is reported and changes nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Table;
use tracing::{error, info, warn};

use super::logging::LogControl;
use super::restart_keys::{changed_keys, is_reloadable, needs_restart};
use super::settings::{predefined_topics, sensor_usernames};
use super::{ReloadError, Sngate};
use crate::config::{Config, LogLevel};
use crate::gateway::{GatewayReload, PeerIdentity, SensorAccess};
use crate::transport::dtls::psk::PskTable;

/// How long a removed or changed bridge may take to say goodbye.
const BRIDGE_STOP_WAIT: Duration = Duration::from_secs(5);

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// What was re-read or changed, one short phrase each.
    pub applied: Vec<String>,
    /// Changed keys that only a restart applies; their running values stay.
    pub needs_restart: Vec<String>,
    /// Parts that failed to load; their previous state stays.
    pub problems: Vec<String>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            f.write_str("nothing changed")?;
        } else {
            f.write_str(&self.applied.join(", "))?;
        }
        if !self.needs_restart.is_empty() {
            write!(f, "; needs a restart: {}", self.needs_restart.join(", "))?;
        }
        if !self.problems.is_empty() {
            write!(f, "; failed: {}", self.problems.len())?;
        }
        Ok(())
    }
}

/// Re-reads the config file sngate was started with (`-c FILE`).
#[derive(Debug)]
pub struct ConfigReloader {
    path: PathBuf,
    /// The file as it was at start: listeners and the like still run from it.
    started: Table,
    log: Option<LogControl>,
}

impl ConfigReloader {
    /// Reloads of `path`, whose text at start was `started_text`; `log`
    /// changes the log level.
    pub fn new(path: PathBuf, started_text: &str, log: Option<LogControl>) -> ConfigReloader {
        ConfigReloader {
            path,
            started: started_text.parse().unwrap_or_default(),
            log,
        }
    }

    /// The file a reload reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and checks the file as `sngate check-config` does; when it is
    /// valid applies what can change at run time, logs what needs a restart
    /// and one line summing up. A broken file is logged (file, line, key)
    /// and nothing changes.
    pub async fn reload(&self, app: &mut Sngate) -> Result<ReloadSummary, ReloadError> {
        let origin = self.path.display().to_string();
        let refuse = |message: String| {
            error!("Reload refused, the running configuration stays: {message}");
            Err(ReloadError {
                problems: vec![message],
            })
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => return refuse(format!("cannot read {origin}: {e}")),
        };
        let new = match Config::from_toml_str(&text, &origin) {
            Ok(c) => c,
            Err(e) => return refuse(e.to_string()),
        };
        // What `start` would refuse (bridge topic rules, TLS files) is refused here too.
        if let Err(e) = crate::bridge::check(&new.bridge) {
            return refuse(format!("{origin}: {e}"));
        }
        let mut restart = Vec::new();
        if needs_restart(&app.config, &new) {
            let doc: Table = text.parse().unwrap_or_default();
            restart = changed_keys(&self.started, &doc)
                .into_iter()
                .filter(|k| !is_reloadable(k))
                .collect();
            if restart.is_empty() {
                restart.push("settings other than the reloadable ones".to_owned());
            }
            for key in &restart {
                warn!("{origin}: {key} changed; it needs a restart, the running value stays.");
            }
        }
        // The summary is written at the more verbose of the two levels, so
        // that turning the log down still shows what the reload did.
        let (old_level, new_level) = (app.config.log.level, new.log.level);
        let settable =
            new_level != old_level && self.log.as_ref().is_some_and(|l| !l.is_overridden());
        if new_level != old_level && !settable && self.log.is_some() {
            info!("[log] level changed, but RUST_LOG is set and stays in force.");
        }
        let louder = verbosity(new_level) > verbosity(old_level);
        if settable && louder {
            self.set_level(new_level);
        }
        let mut summary = app.apply_config(&new).await;
        if settable {
            summary
                .applied
                .insert(0, format!("log level {}", new_level.as_str()));
        }
        summary.needs_restart = restart;
        info!("Reloaded {origin}: {summary}.");
        if settable && !louder {
            self.set_level(new_level);
        }
        if summary.problems.is_empty() {
            Ok(summary)
        } else {
            Err(ReloadError {
                problems: summary.problems,
            })
        }
    }
}

impl ConfigReloader {
    /// Puts `level` in force (the filter swap cannot fail while the log runs).
    fn set_level(&self, level: LogLevel) {
        if let Some(Err(e)) = self.log.as_ref().map(|l| l.set_level(level)) {
            warn!("[log] level could not be changed: {e}");
        }
    }
}

/// Orders levels from quiet to verbose.
fn verbosity(level: LogLevel) -> u8 {
    match level {
        LogLevel::Error => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
        LogLevel::Debug => 3,
        LogLevel::Trace => 4,
    }
}

impl Sngate {
    /// Re-reads TLS certificates, the password file and the ACL (SIGHUP
    /// without a config file). Connected clients stay; new connections and
    /// later checks use the new files. A file that fails to load is reported
    /// and its old version kept.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut problems = self.reload_tls();
        if self.tls.len() > problems.len() {
            info!("Reloaded TLS certificates.");
        }
        match self.authorizer.reload() {
            Ok(()) => info!("Reloaded password and ACL files."),
            Err(e) => problems.push(format!("[auth]: {e}")),
        }
        for p in &problems {
            warn!("Reload failed, keeping the previous version: {p}");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ReloadError { problems })
        }
    }

    /// Re-reads every TLS listener's files; one line per listener that failed.
    fn reload_tls(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (addr, t) in &self.tls {
            if let Err(e) = t.reload() {
                problems.push(format!("listener {addr}: {e}"));
            }
        }
        problems
    }

    /// The config in force: the one started with, plus what reloads applied.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies the run-time parts of `new` (an already validated config):
    /// everything [`ConfigReloader::reload`] describes except the restart
    /// check and the log level. Parts that fail keep their previous state
    /// and are listed in the summary's `problems`.
    pub async fn apply_config(&mut self, new: &Config) -> ReloadSummary {
        let mut s = ReloadSummary::default();
        // The level itself is the caller's: only it holds the log handle.
        self.config.log.level = new.log.level;
        let auth_changed = new.auth != self.config.auth;
        match self.authorizer.reconfigure(&new.auth) {
            Ok(()) if auth_changed => s.applied.push("[auth] settings and files".to_owned()),
            Ok(()) if new.auth.password_file.is_some() || new.auth.acl_file.is_some() => {
                s.applied.push("password/ACL files".to_owned());
            }
            Ok(()) => {}
            Err(e) => s.problems.push(format!("[auth]: {e}")),
        }
        if s.problems.is_empty() {
            self.config.auth = new.auth.clone();
        }
        let tls_failed = self.reload_tls();
        if self.tls.len() > tls_failed.len() {
            let n = self.tls.len() - tls_failed.len();
            s.applied
                .push(format!("TLS certificates ({n} listener(s))"));
        }
        s.problems.extend(tls_failed);
        let identities = self.reload_psk(new, &mut s);
        self.reload_gateway(new, identities, &mut s).await;
        self.reload_bridges(new, &mut s).await;
        for p in &s.problems {
            warn!("Reload failed, keeping the previous version: {p}");
        }
        s
    }

    /// Re-reads each DTLS listener's PSK file (its new path if that changed);
    /// returns every identity now accepted. Established DTLS sessions stay,
    /// even of an identity no longer listed, until they end.
    fn reload_psk(&mut self, new: &Config, s: &mut ReloadSummary) -> Vec<Arc<PeerIdentity>> {
        let mut reloaded = 0;
        for (i, shared) in self.psk.iter().enumerate() {
            let (Some(running), Some(wanted)) =
                (self.config.gateway.dtls.get_mut(i), new.gateway.dtls.get(i))
            else {
                continue;
            };
            let table = match &wanted.psk_file {
                Some(path) => PskTable::load(path),
                None => Ok(PskTable::default()),
            };
            match table {
                Ok(t) => {
                    shared.replace(Arc::new(t));
                    running.psk_file = wanted.psk_file.clone();
                    reloaded += 1;
                }
                Err(e) => s.problems.push(format!("gateway.dtls[{i}]: {e}")),
            }
        }
        let identities: Vec<Arc<PeerIdentity>> = self
            .psk
            .iter()
            .flat_map(|t| t.current().identities().cloned().collect::<Vec<_>>())
            .collect();
        if reloaded > 0 {
            s.applied.push(format!(
                "PSK files ({reloaded} DTLS listener(s), {} identities)",
                identities.len()
            ));
        }
        identities
    }

    /// Hands the running gateway its new predefined topics, sensor user
    /// names and identity bindings.
    async fn reload_gateway(
        &mut self,
        new: &Config,
        identities: Vec<Arc<PeerIdentity>>,
        s: &mut ReloadSummary,
    ) {
        let predefined_changed = new.gateway.predefined != self.config.gateway.predefined;
        let usernames_changed = new.gateway.usernames != self.config.gateway.usernames;
        self.config.gateway.predefined = new.gateway.predefined.clone();
        self.config.gateway.usernames = new.gateway.usernames.clone();
        let Some(tx) = &self.gateway_reload else {
            return;
        };
        let usernames = sensor_usernames(&self.config, identities.iter());
        let change = GatewayReload {
            predefined: predefined_changed.then(|| predefined_topics(&self.config)),
            access: Some(Arc::new(SensorAccess::new(
                self.authorizer.clone(),
                usernames,
            ))),
            identities: (!self.psk.is_empty()).then_some(identities),
        };
        if tx.send(change).await.is_err() {
            s.problems
                .push("the MQTT-SN gateway has stopped".to_owned());
            return;
        }
        if predefined_changed {
            let n = self.config.gateway.predefined.len();
            s.applied.push(format!("predefined topics ({n})"));
        }
        if usernames_changed {
            s.applied.push("sensor user names".to_owned());
        }
    }

    /// Stops removed bridges, restarts changed ones and starts new ones;
    /// unchanged bridges keep running untouched (and keep their link).
    async fn reload_bridges(&mut self, new: &Config, s: &mut ReloadSummary) {
        let (mut removed, mut restarted, mut added) = (0, 0, 0);
        let mut kept = Vec::new();
        let mut to_start = Vec::new();
        for h in std::mem::take(&mut self.bridges) {
            match new.bridge.iter().find(|c| c.name == h.name()) {
                Some(c) if *c == h.config => kept.push(h),
                Some(c) => {
                    info!("bridge {}: changed; restarting it", c.name);
                    h.stop(BRIDGE_STOP_WAIT).await;
                    to_start.push((c.clone(), true));
                }
                None => {
                    info!("bridge {}: removed from the config; stopping it", h.name());
                    h.remove(BRIDGE_STOP_WAIT).await;
                    removed += 1;
                }
            }
        }
        for c in &new.bridge {
            let known = kept.iter().any(|h| h.name() == c.name)
                || to_start.iter().any(|(t, _)| t.name == c.name);
            if !known {
                to_start.push((c.clone(), false));
            }
        }
        let unchanged = kept.len();
        for (c, restart) in to_start {
            let started =
                crate::bridge::spawn_bridge(&c, &self.broker, &self.shutdown, &self.tasks).await;
            match started {
                Ok(h) => {
                    kept.push(h);
                    if restart {
                        restarted += 1;
                    } else {
                        added += 1;
                    }
                }
                Err(e) => s.problems.push(e.to_string()),
            }
        }
        // Keep the config's order, so the next comparison and `config()` read naturally.
        kept.sort_by_key(|h| new.bridge.iter().position(|c| c.name == h.name()));
        self.config.bridge = kept.iter().map(|h| h.config.clone()).collect();
        self.bridges = kept;
        if removed + restarted + added > 0 {
            s.applied.push(format!(
                "bridges: {added} started, {removed} stopped, {restarted} restarted, {unchanged} unchanged"
            ));
        }
    }
}

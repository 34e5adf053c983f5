//! The `sngate` command: parse arguments, load the config, run until a signal.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sngate::app::{ConfigReloader, Sngate, init_logging};
use sngate::cli::{Cli, Command, run_check_config, run_passwd};
use sngate::config::Config;
use tracing::info;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return ExitCode::from(u8::try_from(run_check_config(file)).unwrap_or(1));
    }
    if let Some(Command::Sn(command)) = &cli.command {
        return ExitCode::from(u8::try_from(sngate::cli::sn::run(command)).unwrap_or(1));
    }
    if let Some(Command::Passwd(args)) = &cli.command {
        return ExitCode::from(u8::try_from(run_passwd(args)).unwrap_or(1));
    }
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("sngate: {e}");
                return ExitCode::from(1);
            }
        },
        None => Config::builtin(),
    };
    let log = init_logging(config.log.level);
    sngate::app::raise_open_files_limit();
    // SIGHUP re-reads the file started with; the built-in config has none.
    let reloader = cli.config.map(|path| {
        let started = std::fs::read_to_string(&path).unwrap_or_default();
        ConfigReloader::new(path, &started, Some(log))
    });
    if cli.reset_store
        && let Err(code) = reset_store(&config)
    {
        return code;
    }
    match run(config, reloader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sngate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--reset-store`: moves the store file aside so that a fresh one is created.
fn reset_store(config: &Config) -> Result<(), ExitCode> {
    let p = &config.persistence;
    if !p.enabled {
        eprintln!(
            "sngate: --reset-store: persistence is not enabled in this config; nothing to reset"
        );
        return Ok(());
    }
    if !p.path.join(sngate::store::STORE_FILE).exists() {
        info!(
            "--reset-store: no store in {}; starting fresh",
            p.path.display()
        );
        return Ok(());
    }
    match sngate::store::move_aside(&p.path) {
        Ok(to) => {
            eprintln!(
                "sngate: store moved aside to {}; starting with an empty store",
                to.display()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("sngate: --reset-store: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn run(config: Config, reloader: Option<ConfigReloader>) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // Sockets that became readable together are served in the order the
    // kernel reports them, as a single-threaded broker does: with tokio's
    // LIFO slot the last-woken connection runs first, so a PUBLISH could
    // overtake another client's SUBSCRIBE that arrived before it.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let runtime = builder.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        info!("sngate version {} starting", env!("CARGO_PKG_VERSION"));
        // Watched before anything starts: a SIGHUP or SIGTERM arriving while
        // listeners open must not kill the process with the default action.
        let signals = Signals::watch()?;
        let mut app = sngate::app::start(&config).await?;
        drop(config);
        signals.wait(&mut app, reloader.as_ref()).await;
        info!("shutting down");
        app.stop().await;
        info!("sngate stopped");
        Ok(())
    })
}

/// The signals sngate acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP reloads the config file (or, with
    /// the built-in config, certificates, passwords and ACL).
    async fn wait(mut self, app: &mut Sngate, reloader: Option<&ConfigReloader>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    info!("SIGHUP received: reloading");
                    // Failures are logged by reload itself; the old settings stay in force.
                    match reloader {
                        Some(r) => { let _ = r.reload(app).await; }
                        None => { let _ = app.reload(); }
                    }
                }
            }
        }
    }
}

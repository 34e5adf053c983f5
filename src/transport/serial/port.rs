//! An async serial link that survives unplugging: open, read frames, write
//! frames, and when the device goes away, say so once and reopen it.
//!
//! The port is a `tokio_serial::SerialStream` driven from one task, not a
//! blocking reader thread. The stream registers the tty fd with tokio's
//! reactor, so reading, writing, the inter-byte timer and shutdown all sit in
//! one `select!`, and closing the link is just dropping the stream: a blocking
//! thread would need read timeouts to notice shutdown (a wake-up every few ms
//! per port) and a second channel hop for every frame. The cost is platform
//! reach: tokio-serial misses unplug wake-ups on FreeBSD (berkowski/tokio-serial#56),
//! which sngate does not target. On Linux an unplugged USB adapter makes every
//! read return 0 octets at once and for ever, so 0 is treated as "gone", never
//! as "no data yet", which would spin at 100 % CPU.

use std::io;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::framing::{self, Decoded, Framing, FramingError, InFrame, OutFrame};
use crate::config::{DataBits, FlowControl, Parity, SerialConfig, StopBits};

/// Outgoing frames waiting for the port.
const OUT_QUEUE: usize = 64;
/// Events waiting for the consumer.
const EVENT_QUEUE: usize = 256;
/// How often the decoder is woken while a partial frame waits, so that it can time out.
const PARTIAL_TICK: Duration = Duration::from_millis(25);

/// What the link reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The device is open.
    Up,
    /// The device could not be opened or went away; the link keeps retrying.
    Down {
        /// Why, in words for a log line.
        reason: String,
    },
    /// A datagram arrived.
    Frame(InFrame),
    /// The local radio could not deliver a frame we sent (XBee Transmit Status).
    DeliveryFailed {
        /// Frame id of the Transmit Request.
        frame_id: u8,
        /// The radio's delivery status code.
        status: u8,
    },
    /// Octets were discarded by the framing (for counters).
    FramingError(FramingError),
}

/// The sending half of a link; drop every clone to stop writing.
#[derive(Debug, Clone)]
pub struct SerialLink {
    /// Frames to write; dropped while the link is down.
    pub tx: mpsc::Sender<OutFrame>,
}

/// Reopen timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub first: Duration,
    /// Cap on the wait; it doubles up to this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }
}

/// Starts a link for `config` with the framing it names.
pub fn spawn_link(
    config: SerialConfig,
    max_message: usize,
    shutdown: CancellationToken,
) -> (SerialLink, mpsc::Receiver<LinkEvent>) {
    let framing = framing::for_config(&config, max_message);
    spawn_link_with(config, framing, Backoff::default(), shutdown)
}

/// Starts a link with an explicit framing and reopen timing.
pub fn spawn_link_with(
    config: SerialConfig,
    framing: Box<dyn Framing>,
    backoff: Backoff,
    shutdown: CancellationToken,
) -> (SerialLink, mpsc::Receiver<LinkEvent>) {
    let (tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
    let task = LinkTask {
        config,
        framing,
        backoff,
        shutdown,
        out_rx: Some(out_rx),
        events: event_tx,
    };
    tokio::spawn(task.run());
    (SerialLink { tx }, events)
}

/// Why a session with the open device ended.
enum Ended {
    /// Shutdown, or nobody listens to events any more.
    Stop,
    /// The device failed; reopen.
    Lost(String),
}

struct LinkTask {
    config: SerialConfig,
    framing: Box<dyn Framing>,
    backoff: Backoff,
    shutdown: CancellationToken,
    out_rx: Option<mpsc::Receiver<OutFrame>>,
    events: mpsc::Sender<LinkEvent>,
}

impl LinkTask {
    async fn run(mut self) {
        let device = self.config.device.display().to_string();
        let mut wait = self.backoff.first;
        // The last reason logged: a device that stays missing is reported once, not every retry.
        let mut reported: Option<String> = None;
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let reason = match open(&self.config) {
                Ok(port) => {
                    info!(device, "serial link up");
                    reported = None;
                    wait = self.backoff.first;
                    if !emit(&self.events, LinkEvent::Up).await {
                        return;
                    }
                    match self.session(port).await {
                        Ended::Stop => return,
                        Ended::Lost(reason) => reason,
                    }
                }
                Err(reason) => reason,
            };
            if reported.as_deref() != Some(reason.as_str()) {
                warn!(device, %reason, "serial link down; retrying every few seconds");
                if !emit(
                    &self.events,
                    LinkEvent::Down {
                        reason: reason.clone(),
                    },
                )
                .await
                {
                    return;
                }
                reported = Some(reason);
            }
            if !self.pause(wait).await {
                return;
            }
            wait = (wait * 2).min(self.backoff.max);
        }
    }

    /// Waits before reopening, dropping frames written meanwhile; false on shutdown.
    async fn pause(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = &mut deadline => return true,
                frame = recv(&mut self.out_rx) => {
                    if frame.is_none() {
                        self.out_rx = None;
                    }
                }
            }
        }
    }

    /// Moves frames both ways until the device fails or the link stops.
    async fn session(&mut self, mut port: SerialStream) -> Ended {
        let mut inbox = BytesMut::with_capacity(4096);
        let mut outbox = BytesMut::new();
        loop {
            inbox.reserve(4096);
            let waiting = !inbox.is_empty();
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ended::Stop,
                read = port.read_buf(&mut inbox) => match read {
                    // Linux after unplug: EOF at once, for ever. Never treat it as "no data yet".
                    Ok(0) => return Ended::Lost("device closed (unplugged?)".into()),
                    Ok(_) => {
                        if !self.drain(&mut inbox).await {
                            return Ended::Stop;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Ended::Lost(format!("read failed: {e}")),
                },
                frame = recv(&mut self.out_rx) => match frame {
                    None => self.out_rx = None,
                    Some(frame) => {
                        outbox.clear();
                        if let Err(e) = self.framing.encode(&frame, &mut outbox) {
                            warn!(error = %e, "serial frame not sent");
                            continue;
                        }
                        if let Err(e) = port.write_all(&outbox).await {
                            return Ended::Lost(format!("write failed: {e}"));
                        }
                    }
                },
                _ = tokio::time::sleep(PARTIAL_TICK), if waiting => {
                    if !self.drain(&mut inbox).await {
                        return Ended::Stop;
                    }
                }
            }
        }
    }

    /// Runs the decoder until it needs more bytes; false when the consumer is gone.
    async fn drain(&mut self, inbox: &mut BytesMut) -> bool {
        let now = Instant::now();
        while let Some(item) = self.framing.decode(inbox, now) {
            let event = match item {
                Ok(Decoded::Frame(frame)) => LinkEvent::Frame(frame),
                Ok(Decoded::DeliveryFailed { frame_id, status }) => {
                    LinkEvent::DeliveryFailed { frame_id, status }
                }
                Err(e) => LinkEvent::FramingError(e),
            };
            if !emit(&self.events, event).await {
                return false;
            }
        }
        true
    }
}

/// Sends an event; false when the consumer is gone.
async fn emit(events: &mpsc::Sender<LinkEvent>, event: LinkEvent) -> bool {
    events.send(event).await.is_ok()
}

/// The next outgoing frame, or never once every sender is gone.
async fn recv(rx: &mut Option<mpsc::Receiver<OutFrame>>) -> Option<OutFrame> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens and configures the device; the error is a reason for a log line.
fn open(config: &SerialConfig) -> Result<SerialStream, String> {
    let builder = tokio_serial::new(config.device.to_string_lossy(), config.baud)
        .data_bits(match config.data_bits {
            DataBits::Five => tokio_serial::DataBits::Five,
            DataBits::Six => tokio_serial::DataBits::Six,
            DataBits::Seven => tokio_serial::DataBits::Seven,
            DataBits::Eight => tokio_serial::DataBits::Eight,
        })
        .parity(match config.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Odd => tokio_serial::Parity::Odd,
            Parity::Even => tokio_serial::Parity::Even,
        })
        .stop_bits(match config.stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })
        .flow_control(match config.flow_control {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Software => tokio_serial::FlowControl::Software,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        });
    builder.open_native_async().map_err(|e| describe(&e))
}

/// Turns an open error into advice an operator can act on.
fn describe(e: &tokio_serial::Error) -> String {
    match e.kind {
        tokio_serial::ErrorKind::Io(io::ErrorKind::NotFound) => {
            "device not found (unplugged, or a wrong path; prefer /dev/serial/by-id/...)".into()
        }
        tokio_serial::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            "permission denied (add the service user to the `dialout` group)".into()
        }
        // serialport reports EBUSY from TIOCEXCL this way: another program holds the port.
        tokio_serial::ErrorKind::NoDevice => {
            format!("device busy or gone ({})", e.description)
        }
        _ => format!("cannot open: {}", e.description),
    }
}

#[cfg(test)]
mod tests;

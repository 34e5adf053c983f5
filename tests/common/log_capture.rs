//! Captures sngate's log output in memory so a test can check that a line was
//! written. Installs the process-wide tracing subscriber, so a test binary that
//! uses it must call [`install`] before anything else logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes all log output at `info` and above into the capture buffer.
pub fn install() {
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("log capture is the first tracing subscriber of this test binary");
        buf
    });
}

fn find(parts: &[&str]) -> Option<String> {
    let buf = LOG
        .get()
        .expect("log_capture::install() was called")
        .lock()
        .unwrap();
    String::from_utf8_lossy(&buf)
        .lines()
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
}

/// Waits (at most `wait`) for a logged line containing every one of `parts`.
pub async fn wait_for_line(parts: &[&str], wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(line) = find(parts) {
            return Some(line);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! A file backend for redb that counts what reaches the disk (write calls,
//! bytes, fsyncs: the numbers that wear an SD card) and can simulate a
//! failing disk in tests.

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Counters and the injected failure, shared by every backend opened on one store.
#[derive(Debug, Default)]
pub(super) struct IoCounters {
    pub(super) write_calls: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) syncs: AtomicU64,
    failure: Mutex<Option<io::ErrorKind>>,
}

impl IoCounters {
    pub(super) fn set_failure(&self, kind: Option<io::ErrorKind>) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = kind;
    }

    fn check(&self) -> io::Result<()> {
        match *self.failure.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(kind) => Err(io::Error::from(kind)),
            None => Ok(()),
        }
    }

    /// (write calls, bytes written, syncs) so far.
    pub(super) fn totals(&self) -> (u64, u64, u64) {
        (
            self.write_calls.load(Ordering::Relaxed),
            self.bytes_written.load(Ordering::Relaxed),
            self.syncs.load(Ordering::Relaxed),
        )
    }
}

/// redb's own file backend with counting in front.
#[derive(Debug)]
pub(super) struct CountingBackend {
    inner: FileBackend,
    counters: std::sync::Arc<IoCounters>,
}

impl CountingBackend {
    pub(super) fn new(
        file: File,
        counters: std::sync::Arc<IoCounters>,
    ) -> Result<Self, redb::DatabaseError> {
        Ok(CountingBackend {
            inner: FileBackend::new(file)?,
            counters,
        })
    }
}

impl StorageBackend for CountingBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.counters.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.counters.check()?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.counters.check()?;
        self.counters.write_calls.fetch_add(1, Ordering::Relaxed);
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.counters
            .bytes_written
            .fetch_add(len, Ordering::Relaxed);
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

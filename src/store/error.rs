//! Store errors: each says which file and what the operator can do.

use std::io;
use std::path::PathBuf;

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is damaged or is not a store; sngate must not start on it.
    #[error(
        "{}: store is damaged ({reason}). Move it aside with `sngate --reset-store` \
         (keeps a copy as sngate.redb.damaged-<time>) or restore a backup.",
        path.display()
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The store was written in a format this build does not read.
    #[error(
        "{}: store format version {found} is not supported (this sngate reads version {expected}). \
         {}",
        path.display(),
        if found > expected {
            "It was written by a newer sngate: run that version, or move the store aside with \
             `sngate --reset-store` to start fresh."
        } else {
            "It is too old to migrate: move it aside with `sngate --reset-store` to start fresh."
        }
    )]
    UnsupportedVersion {
        /// The store file.
        path: PathBuf,
        /// Version found in the file.
        found: u64,
        /// Version this build writes.
        expected: u64,
    },
    /// Another process holds the store open.
    #[error("{}: store is in use by another process (is another sngate running?)", path.display())]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The commit would grow the store beyond `persistence.max_size`; nothing was written.
    #[error(
        "{}: store is full ({size} bytes in use, persistence.max_size = {max_size}); nothing was written",
        path.display()
    )]
    Full {
        /// The store file.
        path: PathBuf,
        /// Bytes the store would use after the refused commit.
        size: u64,
        /// The configured limit.
        max_size: u64,
    },
    /// Reading or writing the file failed (full disk, failing card, permissions).
    #[error("{}: store I/O error: {source}", path.display())]
    Io {
        /// The store file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// True when the error means "no space": the disk is full (ENOSPC, EDQUOT)
    /// or `persistence.max_size` is reached.
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Full { .. } => true,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

//! The process's open-files limit. Every MQTT connection is a file
//! descriptor, and the usual soft limit (1,024) is far below what one broker
//! serves, while the hard limit is usually much higher: sngate raises the
//! soft limit to the hard one at start-up instead of failing `accept` once a
//! thousand clients are connected.

use tracing::{info, warn};

/// Below this many descriptors the log warns that clients will be refused.
const LOW: u64 = 4096;

/// Raises the soft open-files limit to the hard limit and logs the result;
/// returns the limit now in force (`None` if it could not be read).
pub fn raise_open_files_limit() -> Option<u64> {
    let before = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => soft,
        Err(e) => {
            warn!("cannot read the open files limit: {e}");
            return None;
        }
    };
    let now = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => now,
        Err(e) => {
            warn!("cannot raise the open files limit from {before}: {e}");
            before
        }
    };
    if now > before {
        info!("open files limit raised from {before} to {now}");
    }
    if now < LOW {
        warn!(
            "open files limit is {now}: connections beyond about that many will be refused; \
             raise the hard limit (ulimit -Hn, or LimitNOFILE= in a systemd unit)"
        );
    }
    Some(now)
}

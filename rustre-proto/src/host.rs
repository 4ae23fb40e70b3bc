//! What a process reads of its host that a simulation must control: the wall clock and
//! the free space of its disks.
//!
//! File times, session leases and resync claims are wall-clock times, and an OST reports its
//! file system's free space in every heartbeat. A deterministic simulation (`sim/`)
//! installs its simulated clock and a fixed capacity here, so that a run depends on its
//! seed alone and not on how fast the machine ran it or what else filled the disk meanwhile;
//! production installs neither.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::msg::{Capacity, Timestamp};

static CLOCK: OnceLock<fn() -> Duration> = OnceLock::new();
static DISK_SPACE: OnceLock<Capacity> = OnceLock::new();

/// Makes every later [`since_epoch`] of this process call `clock`. Only once per process; a
/// second call is refused.
pub fn install_clock(clock: fn() -> Duration) -> Result<(), Error> {
    CLOCK
        .set(clock)
        .map_err(|_| Error::Invalid("a clock is already installed".into()))
}

/// The time since the Unix epoch (zero if the system clock is set before it).
pub fn since_epoch() -> Duration {
    match CLOCK.get() {
        Some(clock) => clock(),
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

/// The current wall-clock time, as file times carry it.
pub fn now() -> Timestamp {
    Timestamp::since_epoch(since_epoch())
}

/// [`since_epoch`] in milliseconds.
pub fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Makes every OST of this process report `capacity` instead of its file system's. Only once
/// per process; a second call is refused.
pub fn install_disk_space(capacity: Capacity) -> Result<(), Error> {
    DISK_SPACE
        .set(capacity)
        .map_err(|_| Error::Invalid("a disk space is already installed".into()))
}

/// The capacity every OST reports, if one was installed.
pub fn disk_space() -> Option<Capacity> {
    DISK_SPACE.get().copied()
}

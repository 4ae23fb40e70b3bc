//! Where blocking work runs: disk and metadata-store calls are handed to tokio's blocking
//! pool, so they never stall an async worker.
//!
//! A deterministic simulation (the `sim/` workspace) runs every role on one thread; a thread
//! pool's timing would make a simulated run differ from its replay, so the simulation calls
//! [`run_blocking_inline`] once and every later [`unblock`] and [`spawn_blocking_detached`]
//! runs its work in place. Production never calls it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;

static BLOCKING_INLINE: AtomicBool = AtomicBool::new(false);

/// Makes [`unblock`] run its work in place on the calling thread from now on.
pub fn run_blocking_inline() {
    BLOCKING_INLINE.store(true, Ordering::SeqCst);
}

/// Whether [`unblock`] runs work in place.
pub fn blocking_is_inline() -> bool {
    BLOCKING_INLINE.load(Ordering::Relaxed)
}

/// Runs blocking `work` without stalling the async runtime: on tokio's blocking pool (or in
/// place, see [`run_blocking_inline`]). A panic in `work` is an [`Error::Io`].
pub async fn unblock<F, R>(work: F) -> Result<R, Error>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if blocking_is_inline() {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(format!("blocking task failed: {e}")))
}

/// Starts blocking `work` without waiting for it (in place, see [`run_blocking_inline`]).
pub fn spawn_blocking_detached<F: FnOnce() + Send + 'static>(work: F) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if !blocking_is_inline() => drop(rt.spawn_blocking(work)),
        _ => work(),
    }
}

//! A deliberate bug for the simulation suite to catch (feature `sim-bug`, enabled only by
//! the `sim/` workspace, off unless a simulated run switches it on for its thread).
//!
//! With it on, a write that fails on some copies of a replicated stripe is acknowledged
//! without marking those copies stale at the MDS: the very bug the write rule of
//! docs/replication.md exists to prevent. A copy that missed writes then serves reads as if
//! it were up to date.

use std::cell::Cell;

thread_local! {
    static SKIP_MARK_STALE: Cell<bool> = const { Cell::new(false) };
}

/// Switches the bug on or off for this thread (a simulation runs every host on one thread).
pub fn set_skip_mark_stale(on: bool) {
    SKIP_MARK_STALE.with(|c| c.set(on));
}

/// Whether the bug is on for this thread.
pub(crate) fn skip_mark_stale() -> bool {
    SKIP_MARK_STALE.with(|c| c.get())
}

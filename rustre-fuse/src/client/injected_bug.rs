//! Deliberate bugs for the simulation suite to catch (feature `sim-bug`, enabled only by
//! the `sim/` workspace, off unless a simulated run switches one on for its thread).
//!
//! Each [`Bug`] removes one step a rule of docs/replication.md exists for; the suite shows
//! that its checks notice the step missing.

use std::cell::Cell;

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The write rule: a write that fails on some copies of a replicated stripe is
    /// acknowledged without marking those copies stale at the MDS. A copy that missed
    /// writes then serves reads as if it were up to date.
    SkipMarkStale,
    /// The write verifiers: fsync takes every copy's sync as covering the changes it
    /// acknowledged, whichever OST instance answered. A copy whose OSS lost power between
    /// the writes and the fsync then lacks bytes fsync said were durable.
    IgnoreVerifiers,
}

impl Bug {
    /// Every bug, in the order of [`Bug::name`]s shown to users.
    pub const ALL: [Bug; 2] = [Bug::SkipMarkStale, Bug::IgnoreVerifiers];

    /// The bug's name on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipMarkStale => "mark-stale",
            Bug::IgnoreVerifiers => "verifier",
        }
    }

    /// The bug called `name`.
    pub fn named(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

thread_local! {
    static ON: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches `bug` on for this thread (a simulation runs every host on one thread), or every
/// bug off with `None`.
pub fn set(bug: Option<Bug>) {
    ON.with(|c| c.set(bug));
}

/// Whether [`Bug::SkipMarkStale`] is on for this thread.
pub(crate) fn skip_mark_stale() -> bool {
    ON.with(|c| c.get()) == Some(Bug::SkipMarkStale)
}

/// Whether [`Bug::IgnoreVerifiers`] is on for this thread.
pub(crate) fn ignore_verifiers() -> bool {
    ON.with(|c| c.get()) == Some(Bug::IgnoreVerifiers)
}

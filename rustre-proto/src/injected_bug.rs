//! Deliberate bugs for the simulation suite to catch (feature `sim-bug` of rustre-proto,
//! turned on by the `sim-bug` features of rustre-fuse and rustre-server, which only the
//! `sim/` workspace enables; off unless a simulated run switches one on for its thread).
//!
//! Each [`Bug`] removes one step a rule of docs/replication.md exists for; the suite shows
//! that its checks notice the step missing. One definition for the client's bugs and the
//! servers', since a simulation runs them all on one thread.

use std::cell::Cell;

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The write rule (client): a write that fails on some copies of a replicated stripe is
    /// acknowledged without marking those copies stale at the MDS. A copy that missed
    /// writes then serves reads as if it were up to date.
    SkipMarkStale,
    /// The write verifiers (client): fsync takes every copy's sync as covering the changes
    /// it acknowledged, whichever OST instance answered. A copy whose OSS lost power between
    /// the writes and the fsync then lacks bytes fsync said were durable.
    IgnoreVerifiers,
    /// Layout versions at the OSTs (OSS): an object store takes a write, repair or truncate
    /// carrying an older layout version than the object's instead of refusing it. A writer
    /// whose layout went out of date (copies marked stale, resynced since) then changes a
    /// copy behind the MDS's back.
    AcceptOldVersion,
}

impl Bug {
    /// Every bug, in the order of [`Bug::name`]s shown to users.
    pub const ALL: [Bug; 3] = [
        Bug::SkipMarkStale,
        Bug::IgnoreVerifiers,
        Bug::AcceptOldVersion,
    ];

    /// The bug's name on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipMarkStale => "mark-stale",
            Bug::IgnoreVerifiers => "verifier",
            Bug::AcceptOldVersion => "old-version",
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

/// Switches `bug` on for this thread (a simulation runs every host on one thread, its
/// blocking work included), or every bug off with `None`.
pub fn set(bug: Option<Bug>) {
    ON.with(|c| c.set(bug));
}

/// Whether `bug` is on for this thread.
pub fn is_on(bug: Bug) -> bool {
    ON.with(|c| c.get()) == Some(bug)
}

//! [`Progress`]: how a long admin command (fsck, scrub, evacuate) tells its caller how far
//! it has got; the `rustre` binary draws a progress bar from it, tests pass [`NoProgress`].

/// Told how far a long admin command has got.
pub trait Progress: Send + Sync {
    /// A new phase of `total` steps (0 when not known ahead).
    fn phase(&self, what: &str, total: u64);
    /// `n` more steps of the current phase done.
    fn advance(&self, n: u64);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _what: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
}

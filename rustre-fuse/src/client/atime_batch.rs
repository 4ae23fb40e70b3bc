//! Atime updates sent to the MDS together.
//!
//! Under relatime the first read of each file written since its last read moves its atime:
//! reading a tree of small files (`tar c`, a build, a dataset) is one MDS call per file on
//! top of its open, and nobody waits for it (the reader goes on at once, [`super::atime`]
//! shows the new atime until the MDS has it). Here the updates of the moment are queued, and
//! one sender sends them in `AccessedMany` calls of up to [`ACCESSED_MAX_INODES`], each
//! after waiting [`ATIME_GATHER`] for more: a busy reader costs one call per many files.

use std::sync::Mutex;
use std::time::Duration;

use rustre_proto::msg::mds::{AtimeUpdate, ACCESSED_MAX_INODES};
use rustre_proto::msg::Creds;
use rustre_proto::sync::lock;

/// How long a sender waits for more updates before each call: what another client waits
/// longer to see an atime (nobody waits on this client: it shows its own at once).
pub(super) const ATIME_GATHER: Duration = Duration::from_millis(20);

/// The updates waiting for the next call, and whether a sender is running.
#[derive(Default)]
pub(super) struct AtimeQueue {
    inner: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<AtimeUpdate>,
    /// The credentials sent with the next call (the MDS checks none for an atime: the
    /// reader's open was checked).
    creds: Option<Creds>,
    sending: bool,
}

/// What a sender takes from the queue.
pub(super) enum Next {
    /// Send these.
    Send(Creds, Vec<AtimeUpdate>),
    /// The queue is empty: the sender stops (the next update starts another).
    Stop,
}

impl AtimeQueue {
    /// Queues `update` by `creds`; true when the caller must start a sender.
    pub(super) fn push(&self, creds: &Creds, update: AtimeUpdate) -> bool {
        let mut q = lock(&self.inner);
        q.waiting.push(update);
        q.creds.get_or_insert_with(|| creds.clone());
        !std::mem::replace(&mut q.sending, true)
    }

    /// The next call's updates (at most [`ACCESSED_MAX_INODES`]), or [`Next::Stop`] when
    /// none wait.
    pub(super) fn next(&self) -> Next {
        let mut q = lock(&self.inner);
        if q.waiting.is_empty() {
            q.sending = false;
            q.creds = None;
            return Next::Stop;
        }
        let n = q.waiting.len().min(ACCESSED_MAX_INODES);
        let batch = q.waiting.drain(..n).collect();
        let creds = if q.waiting.is_empty() {
            q.creds.take()
        } else {
            q.creds.clone()
        };
        Next::Send(creds.unwrap_or_else(Creds::root), batch)
    }

    /// A sender that ended without emptying the queue (its runtime stopping): the updates
    /// waiting are dropped (an atime is best effort, as for a local file system that
    /// crashes) and the next update starts a new sender.
    pub(super) fn abandon(&self) {
        let mut q = lock(&self.inner);
        q.waiting.clear();
        q.creds = None;
        q.sending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::Timestamp;

    fn update(ino: u64) -> AtimeUpdate {
        AtimeUpdate {
            ino,
            atime: Timestamp { sec: 1, nsec: 0 },
            relative: true,
        }
    }

    #[test]
    fn one_sender_takes_every_update_in_bounded_calls() {
        let q = AtimeQueue::default();
        let user = Creds {
            uid: 1000,
            gid: 1000,
            groups: Vec::new(),
        };
        assert!(q.push(&user, update(1)), "the first update starts a sender");
        for ino in 2..=(ACCESSED_MAX_INODES as u64 + 10) {
            assert!(!q.push(&Creds::root(), update(ino)), "one sender at a time");
        }
        let Next::Send(creds, first) = q.next() else {
            panic!("updates wait")
        };
        assert_eq!(creds, user, "the first caller's credentials");
        assert_eq!(first.len(), ACCESSED_MAX_INODES);
        assert_eq!(first[0].ino, 1);
        let Next::Send(_, rest) = q.next() else {
            panic!("ten more wait")
        };
        assert_eq!(rest.len(), 10);
        assert!(matches!(q.next(), Next::Stop));
        assert!(
            q.push(&user, update(99)),
            "after a stop, the next update starts one"
        );
        q.abandon();
        assert!(q.push(&user, update(100)), "an abandoned queue makes way");
    }
}

//! The kernel's caches follow the MDS change feed: what other clients change is invalidated
//! in the kernel through FUSE notifications, so long kernel TTLs stay coherent.
//!
//! The client's feed watchers report other clients' changes ([`KernelCache::changed`]);
//! they are queued to one thread of their own, which writes the notifications to
//! /dev/fuse. Never from a request handler or the runtime: a notification can wait on
//! locks the kernel holds while it waits for a reply (an entry invalidation takes the
//! directory's lock), and the replies come from the runtime, never from this thread.
//!
//! - a name added, removed or repointed (a create, an unlink, either side of a rename):
//!   `inval_entry(parent, name)`, which also drops a negative entry the kernel kept for it;
//! - an inode's attributes, xattrs or existence: `inval_inode(ino, -1, 0)`, attributes
//!   (and the POSIX ACLs the kernel caches with them) only: cached pages follow
//!   close-to-open (an open that finds the file changed drops them);
//! - everything ([`Change::All`]: a feed gap, an MDS restart): nothing can be named, so
//!   nothing is invalidated; the kernel keeps what it has for at most its TTLs
//!   (docs/mount.md, "What other clients see").
//!
//! A notification for something the kernel does not hold fails with ENOENT, harmlessly.
//!
//! An inode the kernel is asking about again after an open or a lock grant made it drop
//! its attributes has its invalidations held until it did ([`RefreshHolds`]); this thread
//! passes every change through the holds, and sends what they release when they run out.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::INodeNo;
use rustre_proto::msg::mds::Change;

use super::NotifierSlot;
use crate::client::{KernelCache, RefreshHolds};

/// How often the thread looks for holds that ran out while no change comes.
const HOLDS_CHECK: Duration = Duration::from_millis(20);

/// Queues other clients' changes for the notifying thread.
pub(super) struct KernelInval {
    queue: mpsc::Sender<Vec<Change>>,
}

impl KernelInval {
    /// Starts the thread that notifies through `notifier` (once the session has put one
    /// there), through `holds`; it ends when this is dropped.
    pub(super) fn start(
        notifier: NotifierSlot,
        holds: Arc<RefreshHolds>,
    ) -> std::io::Result<KernelInval> {
        let (queue, changes) = mpsc::channel::<Vec<Change>>();
        std::thread::Builder::new()
            .name("rustre-inval".into())
            .spawn(move || loop {
                // Idle without holds: nothing can run out.
                let next = if holds.any() {
                    changes.recv_timeout(HOLDS_CHECK)
                } else {
                    changes.recv().map_err(|_| RecvTimeoutError::Disconnected)
                };
                let batch = match next {
                    Ok(batch) => batch,
                    Err(RecvTimeoutError::Timeout) => Vec::new(),
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let Some(n) = notifier.get() else { continue };
                for c in batch {
                    holds.pass_on(c, |c| notify(n, c));
                }
                holds.expire(Instant::now(), |c| notify(n, c));
            })?;
        Ok(KernelInval { queue })
    }
}

impl KernelCache for KernelInval {
    fn changed(&self, changes: Vec<Change>) {
        // The thread is gone only when the process is going down.
        let _ = self.queue.send(changes);
    }
}

/// Tells the kernel about one change.
fn notify(n: &fuser::Notifier, c: &Change) {
    let r = match c {
        Change::Inode(ino) => n.inval_inode(INodeNo(*ino), -1, 0),
        Change::Entry { parent, name } => n.inval_entry(INodeNo(*parent), &super::raw_name(name)),
        Change::All => {
            tracing::debug!("change feed gap: the kernel keeps its caches up to their TTLs");
            Ok(())
        }
        Change::Recall(_) => Ok(()),
    };
    if let Err(e) = r {
        // ENOENT: the kernel holds nothing of it.
        tracing::trace!(?c, "kernel invalidation: {e}");
    }
}

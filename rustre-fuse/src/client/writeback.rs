//! Write-back: writes are gathered per inode into stripe-sized pieces and sent to the OSTs in
//! the background, so a writer is not held by every round trip.
//!
//! A write that continues the pending buffer is appended to it; one that does not first sends
//! the buffer on its way. A buffer that reaches a stripe boundary after at least one stripe
//! unit of data goes out at once; the rest goes out on flush (close), fsync, a timer
//! ([`WRITEBACK_DELAY`]) or memory pressure. The bytes buffered or in flight over all files
//! are capped ([`Client::set_cache_bytes`]); a writer past the cap waits for sends to finish.
//!
//! An error of a background send is kept and returned by the next write, flush or fsync of
//! that inode (as NFS and Lustre do): close(2) reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use bytes::BytesMut;
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// How long a partial buffer may wait before it is sent anyway.
pub const WRITEBACK_DELAY: Duration = Duration::from_secs(1);
/// How often buffers are checked for [`WRITEBACK_DELAY`].
pub const WRITEBACK_TICK: Duration = Duration::from_millis(250);
/// Sends in flight per inode before a writer waits for the oldest.
pub const WRITEBACK_INFLIGHT_PER_INODE: usize = 16;
/// A buffer is sent once it holds this many stripe rows (one row = one unit on each OST).
pub const WRITEBACK_GATHER_ROWS: u64 = 1;

/// Pending and in-flight writes of one inode.
#[derive(Default)]
pub(super) struct InodeWrites {
    /// Contiguous bytes not yet sent: offset, data, when the first byte arrived, and the
    /// memory reservation that covers them.
    pub(super) pending: Option<Pending>,
    /// Sends on their way, with the byte range each covers.
    pub(super) inflight: Vec<Inflight>,
    /// The first error of a background send, returned by the next call.
    pub(super) error: Option<Error>,
}

pub(super) struct Inflight {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) task: JoinHandle<Result<(), Error>>,
}

pub(super) struct Pending {
    pub(super) offset: u64,
    pub(super) data: BytesMut,
    pub(super) since: Instant,
    pub(super) layout: Layout,
    pub(super) permits: Vec<OwnedSemaphorePermit>,
}

/// Write-back state of one client.
pub struct WriteBack {
    /// By inode, in order: the stale-write timer sends in inode order, so that a run of the
    /// simulation depends on its seed alone.
    pub(super) inodes: Mutex<BTreeMap<Ino, Arc<tokio::sync::Mutex<InodeWrites>>>>,
    /// One permit per KiB buffered or in flight, and the total number of permits.
    pub(super) budget: Mutex<(Arc<Semaphore>, u32)>,
    pub(super) enabled: Mutex<bool>,
}

impl Default for WriteBack {
    fn default() -> Self {
        WriteBack {
            inodes: Mutex::new(BTreeMap::new()),
            budget: Mutex::new(budget_of(super::cache::DEFAULT_CACHE_BYTES)),
            enabled: Mutex::new(true),
        }
    }
}

impl WriteBack {
    pub(super) fn inode(&self, ino: Ino) -> Arc<tokio::sync::Mutex<InodeWrites>> {
        self.inodes.lock().unwrap().entry(ino).or_default().clone()
    }

    pub(super) fn existing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<InodeWrites>>> {
        self.inodes.lock().unwrap().get(&ino).cloned()
    }

    /// True when `ino` has write-back state (buffered, in flight, or a kept error).
    pub(super) fn holds(&self, ino: Ino) -> bool {
        self.inodes.lock().unwrap().contains_key(&ino)
    }

    pub(super) fn budget(&self) -> (Arc<Semaphore>, u32) {
        self.budget.lock().unwrap().clone()
    }

    /// True when writes are buffered at all.
    pub fn enabled(&self) -> bool {
        *self.enabled.lock().unwrap()
    }

    /// Drops the state of `ino` if it is idle: nothing buffered, in flight or failed, and
    /// nobody about to use it. Returns whether it went (or was not there).
    ///
    /// A release only learns that it closed the last handle before it awaits its reports;
    /// by the time it gets here the kernel may have opened the file again (FUSE sends
    /// RELEASE asynchronously) and written through the new handle. That state is the new
    /// handle's: dropping it would lose its buffered data while its flush, finding no state,
    /// reported the size to the MDS anyway (readers then see zeros in place of the data).
    pub(super) fn forget(&self, ino: Ino) -> bool {
        let mut inodes = self.inodes.lock().unwrap();
        let Some(state) = inodes.get(&ino) else {
            return true;
        };
        // Every clone is made under the map lock held here, so a count of one means no
        // writer holds the state between looking it up and locking it.
        let idle = Arc::strong_count(state) == 1
            && state
                .try_lock()
                .is_ok_and(|w| w.pending.is_none() && w.inflight.is_empty() && w.error.is_none());
        if idle {
            inodes.remove(&ino);
        }
        idle
    }
}

pub(super) fn budget_of(bytes: usize) -> (Arc<Semaphore>, u32) {
    let kib = (bytes >> 10).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    (Arc::new(Semaphore::new(kib)), kib as u32)
}

pub(super) fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(wb: &WriteBack, ino: Ino, offset: u64, data: &[u8]) {
        let state = wb.inode(ino);
        let mut w = state.try_lock().unwrap();
        w.pending = Some(Pending {
            offset,
            data: BytesMut::from(data),
            since: Instant::now(),
            layout: Layout::striped(1 << 20, vec![0]),
            permits: Vec::new(),
        });
    }

    /// The sequence that lost appended data: RELEASE of the handle that wrote "one" learns it
    /// is the last, awaits its reports; meanwhile the file is opened again and " two three"
    /// is buffered through the new handle; then the release finishes. The buffer must stay
    /// for the new handle's flush.
    #[test]
    fn a_release_finishing_after_the_next_write_keeps_that_write() {
        let wb = WriteBack::default();
        buffer(&wb, 7, 3, b" two three");
        assert!(!wb.forget(7), "buffered data is not idle");
        let state = wb.existing(7).expect("state kept");
        let w = state.try_lock().unwrap();
        let p = w.pending.as_ref().expect("buffer kept");
        assert_eq!((p.offset, &p.data[..]), (3, &b" two three"[..]));
    }

    #[test]
    fn only_idle_unreferenced_states_are_forgotten() {
        let wb = WriteBack::default();
        assert!(wb.forget(1), "no state: nothing to keep");
        // A writer between looking the state up and locking it.
        let held = wb.inode(2);
        assert!(!wb.forget(2));
        drop(held);
        assert!(wb.forget(2));
        assert!(wb.existing(2).is_none());
        // An error of a background send waits for the next call of that inode.
        wb.inode(3).try_lock().unwrap().error = Some(Error::Io("send failed".into()));
        assert!(!wb.forget(3));
    }
}

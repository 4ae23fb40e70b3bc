//! Write-back: writes are gathered per inode into stripe-sized pieces and sent to the OSTs in
//! the background, so a writer is not held by every round trip.
//!
//! A write that continues the pending buffer is appended to it; one that does not first sends
//! the buffer on its way. A buffer that reaches a stripe boundary after at least one stripe
//! unit of data goes out at once; the rest goes out on flush (close), fsync, a timer
//! ([`WRITEBACK_DELAY`]) or memory pressure. The bytes buffered, in flight, or sent but not
//! yet synced (kept for the write verifiers, `super::unstable`) over all files are capped
//! ([`Client::set_cache_bytes`]); a writer past the cap first syncs the file keeping the
//! most sent bytes, which frees them, and otherwise waits for sends to finish.
//!
//! Gathering copies nothing: a buffer holds the writes' own bytes ([`Gathered`]), so a write
//! that fills a stripe unit on its own reaches the OSTs as the very allocation written.
//!
//! An error of a background send is kept and returned by the next write, flush or fsync of
//! that inode (as NFS and Lustre do): close(2) reports it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::first_poll::Started;

/// How long a partial buffer may wait before it is sent anyway.
pub(super) const WRITEBACK_DELAY: Duration = Duration::from_secs(1);
/// How often buffers are checked for [`WRITEBACK_DELAY`].
pub(super) const WRITEBACK_TICK: Duration = Duration::from_millis(250);
/// Sends of at most this many bytes start on the calling thread (`first_poll::spawn`):
/// a small file's bytes leave at its close before any worker wakes, and their checksums
/// and copy into the socket cost the caller (fuser's thread) next to nothing. Larger sends
/// run on a worker from the start, beside the writer that keeps filling the next buffer.
pub(super) const SEND_HERE_FIRST_MAX_BYTES: usize = 64 << 10;
/// Sends in flight per inode before a writer waits for the oldest.
pub(super) const WRITEBACK_INFLIGHT_PER_INODE: usize = 16;
/// A buffer is sent once it holds this many stripe rows (one row = one unit on each OST).
pub(super) const WRITEBACK_GATHER_ROWS: u64 = 1;

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
    /// The send; started on the calling thread when small ([`SEND_HERE_FIRST_MAX_BYTES`]).
    pub(super) task: Started<Result<(), Error>>,
}

pub(super) struct Pending {
    pub(super) offset: u64,
    pub(super) data: Gathered,
    pub(super) since: Instant,
    pub(super) layout: Layout,
    pub(super) permits: Vec<OwnedSemaphorePermit>,
}

impl Pending {
    /// An empty buffer starting at `offset` of a file laid out as `layout`.
    pub(super) fn new(offset: u64, layout: Layout) -> Pending {
        Pending {
            offset,
            data: Gathered::default(),
            since: Instant::now(),
            layout,
            permits: Vec::new(),
        }
    }

    /// Where the next write must start to continue this buffer.
    pub(super) fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }

    /// Appends `data` (it continues the buffer) with the memory reservation covering it.
    pub(super) fn push(&mut self, data: Bytes, permit: OwnedSemaphorePermit) {
        self.data.push(data);
        self.permits.push(permit);
    }

    /// True when the buffer should go out now: it holds [`WRITEBACK_GATHER_ROWS`] stripe
    /// rows, or it ends on a stripe boundary after at least one stripe unit of data.
    pub(super) fn ready(&self) -> bool {
        self.ready_with(0)
    }

    /// [`Pending::ready`] once `more` bytes continue it.
    pub(super) fn ready_with(&self, more: u64) -> bool {
        let unit = self.layout.stripe_size as u64;
        let row = unit * self.layout.stripe_count() as u64 * WRITEBACK_GATHER_ROWS;
        let len = self.data.len() as u64 + more;
        len >= row || ((self.end() + more).is_multiple_of(unit) && len >= unit)
    }
}

/// The bytes of a pending buffer, as the writes brought them: nothing is copied while a
/// buffer gathers, and a buffer of one write goes out as that write's own allocation.
/// Several pieces are joined once, when the buffer is sent.
///
/// A piece keeps the allocation it is a slice of alive until the send ends; the writes of
/// this crate (FUSE, `put`) bring allocations of their own length.
#[derive(Default)]
pub(super) struct Gathered {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    /// Bytes gathered.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends `data` after the bytes gathered so far, without copying it.
    pub(super) fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.pieces.push(data);
        }
    }

    /// A copy of the bytes gathered (or the only piece, shared), the buffer left as it is.
    pub(super) fn to_bytes(&self) -> Bytes {
        if let [one] = self.pieces.as_slice() {
            return one.clone();
        }
        let mut out = BytesMut::with_capacity(self.len);
        for piece in &self.pieces {
            out.extend_from_slice(piece);
        }
        out.freeze()
    }

    /// The bytes gathered as one buffer to send: the only piece as it is (no copy), or all
    /// pieces joined into a new allocation of exactly their length.
    pub(super) fn into_bytes(mut self) -> Bytes {
        if self.pieces.len() <= 1 {
            return self.pieces.pop().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(self.len);
        for piece in &self.pieces {
            out.extend_from_slice(piece);
        }
        out.freeze()
    }
}

/// Write-back state of one client.
pub(super) struct WriteBack {
    /// By inode, in order: the stale-write timer sends in inode order, so that a run of the
    /// simulation depends on its seed alone.
    pub(super) inodes: Mutex<BTreeMap<Ino, Arc<tokio::sync::Mutex<InodeWrites>>>>,
    /// One permit per KiB buffered or in flight, and the total number of permits.
    pub(super) budget: Mutex<(Arc<Semaphore>, u32)>,
    pub(super) enabled: Mutex<bool>,
    /// A background sync of kept changes is running (see `Client::reserve_write`).
    pub(super) syncing_kept: AtomicBool,
}

impl Default for WriteBack {
    fn default() -> Self {
        WriteBack {
            inodes: Mutex::new(BTreeMap::new()),
            budget: Mutex::new(budget_of(super::cache::DEFAULT_CACHE_BYTES)),
            enabled: Mutex::new(true),
            syncing_kept: AtomicBool::new(false),
        }
    }
}

impl WriteBack {
    pub(super) fn inode(&self, ino: Ino) -> Arc<tokio::sync::Mutex<InodeWrites>> {
        lock(&self.inodes).entry(ino).or_default().clone()
    }

    pub(super) fn existing(&self, ino: Ino) -> Option<Arc<tokio::sync::Mutex<InodeWrites>>> {
        lock(&self.inodes).get(&ino).cloned()
    }

    /// True when `ino` has write-back state (buffered, in flight, or a kept error).
    pub(super) fn holds(&self, ino: Ino) -> bool {
        lock(&self.inodes).contains_key(&ino)
    }

    pub(super) fn budget(&self) -> (Arc<Semaphore>, u32) {
        lock(&self.budget).clone()
    }

    /// True when writes are buffered at all.
    pub(super) fn enabled(&self) -> bool {
        *lock(&self.enabled)
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
        let mut inodes = lock(&self.inodes);
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
        let mut p = Pending::new(offset, Layout::striped(1 << 20, vec![0]));
        p.push(Bytes::copy_from_slice(data), permit(data.len()));
        w.pending = Some(p);
    }

    /// A memory reservation for `bytes`, as a writer holds one.
    fn permit(bytes: usize) -> OwnedSemaphorePermit {
        Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
            .try_acquire_many_owned(kib(bytes))
            .unwrap()
    }

    /// True when `part` lies inside the allocation `whole` is a view of (no copy was made).
    fn within(part: &Bytes, whole: &Bytes) -> bool {
        whole.as_ptr_range().contains(&part.as_ptr())
    }

    /// `ready_with(n)` says what `ready()` says once n more bytes are pushed (the write
    /// done on fuser's thread asks before it pushes).
    #[test]
    fn ready_with_foresees_ready() {
        let layout = Layout::striped(64 << 10, vec![0, 1]);
        for (start, sizes) in [
            (0u64, [10_240usize, 10_240, 40_000, 5_056]),
            (4096, [60_000, 1, 4_095, 70_000]),
        ] {
            let mut p = Pending::new(start, layout.clone());
            for n in sizes {
                let foreseen = p.ready_with(n as u64);
                p.push(Bytes::from(vec![7u8; n]), permit(n));
                assert_eq!(
                    foreseen,
                    p.ready(),
                    "after {} bytes from {start}",
                    p.data.len()
                );
            }
        }
        assert!(!Pending::new(0, layout.clone()).ready_with(4096));
        assert!(
            Pending::new(0, layout).ready_with(64 << 10),
            "one stripe unit, on a boundary"
        );
    }

    /// The case the write path is shaped for: a 1 MiB write at a stripe boundary, nothing
    /// buffered before it, goes out at once and as the caller's own allocation.
    #[test]
    fn a_whole_stripe_unit_is_sent_as_the_very_bytes_written() {
        for osts in [vec![0], vec![0, 1], vec![0, 1, 2, 3]] {
            let written = Bytes::from(vec![7u8; 1 << 20]);
            let mut p = Pending::new(3 << 20, Layout::striped(1 << 20, osts));
            p.push(written.clone(), permit(written.len()));
            assert!(
                p.ready(),
                "a full stripe unit ending on a boundary goes out"
            );
            let sent = p.data.into_bytes();
            assert_eq!(sent.as_ptr(), written.as_ptr(), "the same allocation");
            assert_eq!(sent.len(), written.len());
        }
    }

    #[test]
    fn pieces_are_joined_in_order_once_the_buffer_is_sent() {
        let layout = Layout::striped(1 << 20, vec![0, 1]);
        let halves = [
            Bytes::from(vec![1u8; 512 << 10]),
            Bytes::from(vec![2u8; 512 << 10]),
        ];
        let mut p = Pending::new(0, layout.clone());
        p.push(halves[0].clone(), permit(512 << 10));
        assert!(!p.ready(), "half a stripe unit waits for more");
        p.push(Bytes::new(), permit(0));
        p.push(halves[1].clone(), permit(512 << 10));
        assert_eq!((p.end(), p.permits.len()), (1 << 20, 3));
        assert!(p.ready(), "a stripe unit ending on a boundary goes out");
        let sent = p.data.into_bytes();
        assert_eq!(sent.len(), 1 << 20);
        assert!(sent[..512 << 10].iter().all(|b| *b == 1));
        assert!(sent[512 << 10..].iter().all(|b| *b == 2));
        assert!(halves.iter().all(|h| !within(&sent, h)), "a new buffer");

        // A unit's worth that does not end on a boundary waits for the row to fill.
        let mut p = Pending::new(4096, layout);
        p.push(Bytes::from(vec![3u8; 1 << 20]), permit(1 << 20));
        assert!(!p.ready());
        p.push(Bytes::from(vec![4u8; (1 << 20) - 4096]), permit(1 << 20));
        assert!(p.ready(), "ends on a boundary");
        assert!(Gathered::default().into_bytes().is_empty());
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
        let p = state
            .try_lock()
            .unwrap()
            .pending
            .take()
            .expect("buffer kept");
        assert_eq!(
            (p.offset, &p.data.into_bytes()[..]),
            (3, &b" two three"[..])
        );
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

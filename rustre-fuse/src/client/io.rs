//! Data through the client's memory: reads served by the page cache with read-ahead for
//! sequential readers and blocks for random ones ([`super::cache`]), a read the cache holds
//! answered at once on the caller's thread ([`Client::read_now`]), and writes gathered into
//! stripe-sized sends in the background ([`super::writeback`]). Both sit on the striped
//! object I/O of [`super::data`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;

use super::atime::Via;
use super::cache::{cut_short, from_pages, random_unit, PageKey, Unit};
use super::files::writable_len;
use super::writeback::{
    budget_of, kib, Inflight, InodeWrites, Pending, SEND_HERE_FIRST_MAX_BYTES, WRITEBACK_DELAY,
    WRITEBACK_INFLIGHT_PER_INODE,
};
use super::{first_poll, metrics, Client};
use rustre_proto::sync::lock;

impl Client {
    /// [`Client::read_file`] done at once when nothing in it would wait (the FUSE adapter
    /// calls it on fuser's thread, inside the runtime's context): no write of the inode
    /// buffered, in flight or failed, and every byte of the range in the page cache (a
    /// re-read, a file read ahead, a random reader of cached pages), or the range past the
    /// end of file. `None`: `read_file` does it (and answers any error).
    pub fn read_now(self: &Arc<Self>, fh: u64, offset: u64, len: usize) -> Option<Bytes> {
        let f = self.files.handle(fh).ok()?;
        if let Some(state) = self.writeback.existing(f.ino) {
            let w = state.try_lock().ok()?;
            if w.pending.is_some() || !w.inflight.is_empty() || w.error.is_some() {
                return None;
            }
        }
        let size = self.files.size(f.ino);
        let data = if offset >= size || len == 0 {
            Bytes::new()
        } else {
            let n = (size - offset).min(len as u64) as usize;
            match self.read_inline_now(f.ino, offset, n) {
                Some(inline) => inline?,
                None => self.cached_read_now(f.ino, f.layout().ok()?, offset, n, size)?,
            }
        };
        self.accessed(Via::File(fh), f.ino, &f.creds);
        if let Some(m) = metrics::get() {
            m.read_bytes.inc_by(data.len() as u64);
        }
        Some(data)
    }

    /// How many pages and blocks of `ino` this client's page cache holds.
    pub fn cached_pages(&self, ino: Ino) -> usize {
        self.cache.count(ino)
    }

    /// Reads `len` bytes at `offset` of a file `file_size` bytes long (the caller clipped
    /// the range to it), through the page cache and read-ahead for sequential readers.
    pub(crate) async fn cached_read(
        self: &Arc<Self>,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
        file_size: u64,
    ) -> Result<Bytes, Error> {
        if let Some(data) = self.read_inline(ino, offset, len).await? {
            return Ok(data);
        }
        let page_size = layout.stripe_size as u64;
        let window = self.cache.note_read(ino, offset, len as u64, page_size);
        if window == 0 || len == 0 {
            let unit = random_unit(ino, page_size, offset, len as u64);
            if let Some(unit) = unit.filter(|_| self.cache.capacity() > 0) {
                return self.random_read(layout, unit, offset, len, file_size).await;
            }
            if let Some(m) = metrics::get() {
                m.cache_bypassed.inc();
            }
            return self.read_data(ino, layout, offset, len).await;
        }
        let first = offset / page_size;
        let last = (offset + len as u64 - 1) / page_size;
        let gen = self.cache.stamp();
        let pages = (first..=last).map(|idx| self.page(ino, layout, idx, file_size, gen));
        let pages = futures::future::try_join_all(pages).await?;
        // A page holds the file as it was when fetched, cut at the end of file then. If the
        // file grew since (written through another client; this client's own writes drop
        // the pages they touch), the page is too short for this read: its tail would read
        // as zeros where the file has data. Drop such pages and read the range afresh.
        if cut_short(&pages, first, page_size, offset, len as u64) {
            self.cache
                .invalidate_range(ino, page_size, offset, len as u64);
            return self.read_data(ino, layout, offset, len).await;
        }
        self.read_ahead_after(ino, layout, offset + len as u64, window, file_size, gen);
        Ok(from_pages(&pages, first, page_size, offset, len))
    }

    /// [`Client::cached_read`] when the cache holds every page of the range now, long enough
    /// for it: done at once, on the caller's thread (fuser's: no hop to the runtime), with
    /// the same read-ahead. `None`, with nothing noted, when a page would be fetched.
    /// Needs a runtime context (the read-ahead is spawned).
    pub(crate) fn cached_read_now(
        self: &Arc<Self>,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
        file_size: u64,
    ) -> Option<Bytes> {
        let page_size = layout.stripe_size as u64;
        if len == 0 || self.cache.capacity() == 0 {
            return None;
        }
        let first = offset / page_size;
        let last = (offset + len as u64 - 1) / page_size;
        let gen = self.cache.stamp();
        // Whole pages, or the one block a random reader's miss fetched.
        let (pages, first, unit_size) = match self.cache.cached(ino, first, last) {
            Some(pages) => (pages, first, page_size),
            None => {
                let u = random_unit(ino, page_size, offset, len as u64)?;
                (self.cache.cached(ino, u.key.1, u.key.1)?, u.idx, u.size)
            }
        };
        if cut_short(&pages, first, unit_size, offset, len as u64) {
            return None;
        }
        let window = self.cache.note_read(ino, offset, len as u64, page_size);
        if let Some(m) = metrics::get() {
            m.cache_hits.inc_by(pages.len() as u64);
        }
        self.read_ahead_after(ino, layout, offset + len as u64, window, file_size, gen);
        Some(from_pages(&pages, first, unit_size, offset, len))
    }

    /// A random reader's read inside one cache `unit`: the unit is fetched whole (cut at
    /// the end of file), cached, and the read served from it; one cut at an older end of
    /// file than this read needs is dropped and the range read as asked.
    async fn random_read(
        &self,
        layout: &Layout,
        unit: Unit,
        offset: u64,
        len: usize,
        file_size: u64,
    ) -> Result<Bytes, Error> {
        let ino = unit.key.0;
        let start = unit.idx * unit.size;
        let unit_len = unit.size.min(file_size.saturating_sub(start)) as usize;
        let gen = self.cache.stamp();
        let data = self.fetch(unit.key, layout, start, unit_len, gen).await?;
        let pages = [data];
        if cut_short(&pages, unit.idx, unit.size, offset, len as u64) {
            self.cache
                .invalidate_range(ino, layout.stripe_size as u64, offset, len as u64);
            return self.read_data(ino, layout, offset, len).await;
        }
        Ok(from_pages(&pages, unit.idx, unit.size, offset, len))
    }

    /// Read ahead: the pages after a read that ended at `end`, within `window`, fetched in
    /// the background (from a start at cache stamp `gen`).
    fn read_ahead_after(
        self: &Arc<Self>,
        ino: Ino,
        layout: &Layout,
        end: u64,
        window: u64,
        file_size: u64,
        gen: u64,
    ) {
        let page_size = layout.stripe_size as u64;
        if window == 0 || end == 0 {
            return;
        }
        let ahead_end = ((end + window).min(file_size)).div_ceil(page_size);
        for idx in (end - 1) / page_size + 1..ahead_end {
            let (c, l) = (self.clone(), layout.clone());
            tokio::spawn(async move {
                let _ = c.page(ino, &l, idx, file_size, gen).await;
            });
        }
    }

    /// Page `idx` of `ino`: from the cache, from a fetch already in flight, or fetched now.
    pub(super) async fn page(
        &self,
        ino: Ino,
        layout: &Layout,
        idx: u64,
        file_size: u64,
        gen: u64,
    ) -> Result<Bytes, Error> {
        let page_size = layout.stripe_size as u64;
        let start = idx * page_size;
        let len = page_size.min(file_size.saturating_sub(start)) as usize;
        self.fetch((ino, idx), layout, start, len, gen).await
    }

    /// The cached unit under `key`, `len` bytes of its inode at `start`: from the cache,
    /// from a fetch already in flight, or fetched now (and cached unless its inode changed
    /// since stamp `gen`).
    async fn fetch(
        &self,
        key: PageKey,
        layout: &Layout,
        start: u64,
        len: usize,
        gen: u64,
    ) -> Result<Bytes, Error> {
        let ino = key.0;
        let fetch = match self.cache.lookup(key) {
            Ok(page) => {
                if let Some(m) = metrics::get() {
                    m.cache_hits.inc();
                }
                return Ok(page);
            }
            Err(fetch) => fetch,
        };
        let result = fetch
            .get_or_init(|| async {
                if let Some(m) = metrics::get() {
                    m.cache_misses.inc();
                }
                let r = self.read_data(ino, layout, start, len).await;
                if let Ok(page) = &r {
                    self.cache.insert(key, page, gen);
                } else {
                    lock(&self.cache.inner).fetching.remove(&key);
                }
                r
            })
            .await;
        result.clone()
    }
}

impl Client {
    /// Sets the memory cap of the page cache and of write-back buffers (0 turns both off:
    /// every read and write goes straight to the OSTs).
    pub fn set_cache_bytes(&self, bytes: usize) {
        self.cache.set_capacity(bytes);
        *lock(&self.writeback.enabled) = bytes > 0;
        *lock(&self.writeback.budget) = budget_of(bytes);
    }

    /// Buffers a write of `data` at `offset` of `ino`; it reaches the OSTs in the background.
    /// A write through handle `fh` that only joins this client's write-back buffer, done
    /// now when nothing in it would wait (the FUSE adapter calls it on fuser's thread: a
    /// small file's writes, `tar x`'s 10 KiB records): not O_DSYNC, no attribute changes
    /// kept, inside the file's limit and any quota room already reserved, memory free
    /// without syncing kept data, the inode's buffer free to take and continued (or
    /// empty), not due to go out with this write, and fewer than the most sends in flight.
    /// `None`: [`Client::write_file_as`] does it (and answers any error).
    pub fn write_buffered_now(&self, fh: u64, offset: u64, data: &Bytes) -> Option<usize> {
        let f = self.files.handle(fh).ok()?;
        let layout = f.layout().ok()?;
        let len = data.len();
        if f.flags & libc::O_DSYNC != 0 || len == 0 || !self.writeback.enabled() {
            return None;
        }
        if self.files.has_pending(f.ino) {
            return None;
        }
        if writable_len(offset, len, layout.max_file_size()).ok()? != len {
            return None;
        }
        let end = offset + len as u64;
        if self.files.needs_quota_room(f.ino, end) {
            return None;
        }
        let (budget, total) = self.writeback.budget();
        if budget.available_permits() < (total / 2) as usize {
            return None;
        }
        let permit = budget.try_acquire_many_owned(kib(len).min(total)).ok()?;
        let state = self.writeback.inode(f.ino);
        let mut w = state.try_lock().ok()?;
        if w.error.is_some() || w.inflight.len() >= WRITEBACK_INFLIGHT_PER_INODE {
            return None;
        }
        match &w.pending {
            Some(p) if p.end() != offset || p.ready_with(len as u64) => return None,
            None if Pending::new(offset, layout.clone()).ready_with(len as u64) => return None,
            _ => {}
        }
        self.cache
            .invalidate_range(f.ino, layout.stripe_size as u64, offset, len as u64);
        w.pending
            .get_or_insert_with(|| Pending::new(offset, layout.clone()))
            .push(data.clone(), permit);
        drop(w);
        self.files
            .wrote(f.ino, end, rustre_proto::host::now(), &f.creds);
        if let Some(m) = metrics::get() {
            m.write_bytes.inc_by(len as u64);
            m.write_calls.inc();
        }
        Some(len)
    }

    pub(crate) async fn buffered_write(
        self: &Arc<Self>,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        data: Bytes,
    ) -> Result<(), Error> {
        self.spill_if_inline(ino).await?;
        self.cache
            .invalidate_range(ino, layout.stripe_size as u64, offset, data.len() as u64);
        if !self.writeback.enabled() {
            return self.write_data(ino, layout, offset, data, false).await;
        }
        let (budget, total) = self.writeback.budget();
        // A write larger than the whole budget takes all of it rather than waiting forever.
        let permit = self
            .reserve_write(&budget, total, kib(data.len()).min(total))
            .await?;
        let state = self.writeback.inode(ino);
        let mut w = state.lock().await;
        if let Some(e) = w.error.take() {
            return Err(e);
        }
        let continues = w.pending.as_ref().is_some_and(|p| p.end() == offset);
        if !continues {
            self.send_pending(ino, &mut w).await;
        }
        let p = w
            .pending
            .get_or_insert_with(|| Pending::new(offset, layout.clone()));
        p.push(data, permit);
        if p.ready() {
            self.send_pending(ino, &mut w).await;
        }
        if w.inflight.len() >= WRITEBACK_INFLIGHT_PER_INODE {
            let stalled = Instant::now();
            while w.inflight.len() >= WRITEBACK_INFLIGHT_PER_INODE {
                let oldest = w.inflight.remove(0);
                record(&mut w, oldest.task.await);
            }
            if let Some(m) = metrics::get() {
                m.stalled(stalled.elapsed());
            }
        }
        if let Some(e) = w.error.take() {
            return Err(e);
        }
        Ok(())
    }

    /// Starts sending `ino`'s buffered writes now, in the background, when nothing in that
    /// would wait (the buffer free to take, no send in flight over its range, fewer than
    /// [`WRITEBACK_INFLIGHT_PER_INODE`] sends of the inode in flight). The FUSE
    /// adapter calls it on fuser's thread, inside the runtime's context, when it keeps an
    /// owner, mode or time change of a file open for writing: `tar x` and `cp -a` set those
    /// once a file's bytes are all written, and its close then finds them on their way to
    /// the OSTs instead of sending them. What is not started here goes at the close.
    pub fn write_behind(self: &Arc<Self>, ino: Ino) {
        let inline_max = u64::from(self.inline_max.load(std::sync::atomic::Ordering::Relaxed));
        if self.files.may_inline(ino) && self.buffered_bytes(ino) <= inline_max {
            // Its close may carry the bytes to the MDS instead (`super::inline`).
            return;
        }
        let Some(state) = self.writeback.existing(ino) else {
            return;
        };
        let Ok(mut w) = state.try_lock() else { return };
        let Some((start, end)) = w.pending.as_ref().map(|p| (p.offset, p.end())) else {
            return;
        };
        let overlaps = w.inflight.iter().any(|f| f.start < end && start < f.end);
        if overlaps || w.inflight.len() >= WRITEBACK_INFLIGHT_PER_INODE {
            return;
        }
        if let Some(p) = w.pending.take() {
            self.start_send(ino, &mut w, p);
        }
    }

    /// Bytes of `ino` buffered by write-back and not yet on their way to the OSTs (0 when
    /// its buffer is busy).
    pub fn buffered_bytes(&self, ino: Ino) -> u64 {
        let Some(state) = self.writeback.existing(ino) else {
            return 0;
        };
        let Ok(w) = state.try_lock() else { return 0 };
        w.pending.as_ref().map_or(0, |p| p.end() - p.offset)
    }

    /// Starts sending the pending buffer of `ino`. Sends that overlap it finish first, so
    /// overlapping writes reach the OSTs in the order they were made.
    async fn send_pending(self: &Arc<Self>, ino: Ino, w: &mut InodeWrites) {
        let Some(p) = w.pending.take() else { return };
        let (start, end) = (p.offset, p.end());
        let (overlapping, others): (Vec<_>, Vec<_>) = std::mem::take(&mut w.inflight)
            .into_iter()
            .partition(|f| f.start < end && start < f.end);
        w.inflight = others;
        for f in overlapping {
            record(w, f.task.await);
        }
        self.start_send(ino, w, p);
    }

    /// Sends buffer `p` of `ino` in a task of its own, in flight in `w` until reaped.
    fn start_send(self: &Arc<Self>, ino: Ino, w: &mut InodeWrites, p: Pending) {
        let (start, end) = (p.offset, p.end());
        let client = self.clone();
        let small = (end - start) as usize <= SEND_HERE_FIRST_MAX_BYTES;
        let send = async move {
            let Pending {
                offset,
                data,
                layout,
                permits,
                ..
            } = p;
            let data = data.into_bytes();
            if let Some(m) = metrics::get() {
                m.writeback_bytes.inc_by(data.len() as u64);
            }
            let r = client.write_data(ino, &layout, offset, data, false).await;
            if r.is_ok() {
                // The bytes are kept until synced (see `super::unstable`); so is their
                // share of the write-back budget.
                client.unstable.hold(ino, permits);
            }
            r
        };
        let task = first_poll::spawn(send, small);
        w.inflight.push(Inflight { start, end, task });
    }

    /// Sends everything buffered for `ino` and waits until the OSTs have it (in their page
    /// cache; fsync adds the disk). Returns the first error of any send since the last call.
    pub(crate) async fn flush_writes(self: &Arc<Self>, ino: Ino) -> Result<(), Error> {
        let Some(state) = self.writeback.existing(ino) else {
            return Ok(());
        };
        let mut w = state.lock().await;
        self.send_pending(ino, &mut w).await;
        for f in std::mem::take(&mut w.inflight) {
            record(&mut w, f.task.await);
        }
        match w.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drops the write-back state of an inode nobody holds open any more (after a flush),
    /// unless writes came in meanwhile (see `WriteBack::forget`).
    pub(crate) fn forget_writes(&self, ino: Ino) {
        self.writeback.forget(ino);
        self.unstable.drop_kept(ino);
    }

    /// Sends buffers that waited longer than [`WRITEBACK_DELAY`] (run by a timer task).
    pub(crate) async fn send_stale_writes(self: &Arc<Self>) {
        let states: Vec<(Ino, Arc<tokio::sync::Mutex<InodeWrites>>)> = lock(&self.writeback.inodes)
            .iter()
            .map(|(i, s)| (*i, s.clone()))
            .collect();
        for (ino, state) in states {
            if let Ok(mut w) = state.try_lock() {
                if w.pending
                    .as_ref()
                    .is_some_and(|p| p.since.elapsed() >= WRITEBACK_DELAY)
                {
                    self.send_pending(ino, &mut w).await;
                }
                // Reap finished sends so their errors are kept and handles freed.
                let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut w.inflight)
                    .into_iter()
                    .partition(|f| f.task.is_finished());
                w.inflight = running;
                for f in done {
                    record(&mut w, f.task.await);
                }
            }
        }
    }
}

fn record(w: &mut InodeWrites, r: Result<Result<(), Error>, first_poll::Lost>) {
    // A send that ended without an outcome panicked.
    let r = r.unwrap_or_else(|_| Err(Error::Io("write task failed".into())));
    if let Err(e) = r {
        w.error.get_or_insert(e);
    }
}

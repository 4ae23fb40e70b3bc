//! Handle operations: what the FUSE adapter, `put` and `get` call. Files are opened (or
//! created) into handles that read, write, flush, fsync, fallocate and release (directories
//! into handles that list: [`super::dir_handles`]). Closing an open goes to the MDS with the other releases of the
//! moment (batching: [`super::releases`]), an atime a read moves with the other atimes of
//! the moment ([`super::atime_batch`]).
//!
//! The state these operations keep lives in the state modules ([`super::files`],
//! [`super::dirs`], [`super::releases`]), which know nothing of [`Client`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustre_proto::msg::mds::{relatime_due, AtimeUpdate, MdsOp, SetAttr, RELEASE_MAX_INOS};
use rustre_proto::msg::{Attr, Creds, Ino, LayoutSpec, Timestamp};
use rustre_proto::Error;
use tokio::sync::oneshot;

use super::atime::{AtimeRule, Via};
use super::atime_batch::{Next, ATIME_GATHER};
use super::files::{
    writable_len, OpenFile, Opened, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE, MAX_FILE_BYTES, SIZE_REPORT_INTERVAL, ZERO_CHUNK_BYTES,
};
use super::open_prefetch::Prefetch;
use super::releases::{SenderRunning, Waiter, RELEASE_GATHER};
use super::space;
use super::Client;
use rustre_proto::sync::lock;

/// Where a write's bytes went ([`Client::write_file_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub offset: u64,
    pub len: usize,
}

/// An inode-addressed call that finds no inode: the caller's name-to-inode mapping is stale
/// (another client removed or replaced the file). ESTALE, unlike ENOENT, makes the kernel
/// look the name up afresh and retry.
fn stale_if_gone(e: Error) -> Error {
    match e {
        Error::NotFound => Error::Stale,
        e => e,
    }
}

impl Client {
    /// Attributes of inode `ino` for a caller that reached it through a cached name (see
    /// [`stale_if_gone`]).
    pub async fn getattr_ino(&self, creds: &Creds, ino: Ino) -> Result<Attr, Error> {
        match self.getattr(creds, ino).await {
            // fstat of an open directory that was removed.
            Err(Error::NotFound) => self.dirs.removed(ino).ok_or(Error::Stale),
            r => r.map_err(stale_if_gone),
        }
    }

    /// Reports the size and mtime this client's writes reached on `ino`, and the stripes they
    /// wrote, if any are unreported. Buffered data goes to the OSTs first, so no client ever
    /// sees a size before its data.
    ///
    /// Attribute changes kept until now ([`super::files::pending`]) go after the report: an
    /// explicit mtime kept must not be overtaken by the writes' (the MDS keeps the later of
    /// a report's mtime and its own). When the writer made them, both go in one call
    /// ([`Client::report_with_kept_attrs`]); otherwise a report, then a setattr.
    pub(crate) async fn report_dirty(self: &Arc<Self>, ino: Ino) -> Result<(), Error> {
        // Reports and kept changes of one inode go one at a time ([`super::files::turns`]).
        let _turn = self.files.report_turns.take(ino).await;
        self.flush_writes(ino).await?;
        let Some(r) = self.files.pending_report(ino) else {
            return self.send_kept_attrs_in_turn(ino).await;
        };
        if let Some(kept) = self.files.pending(ino).filter(|k| k.creds == r.writer) {
            return self.report_with_kept_attrs(ino, &r, &kept).await;
        }
        let attr = self.report_size(&r.writer, ino, &r).await?;
        self.files.reported(ino, &r, &attr);
        // The MDS removed the file capability with the report, if it had one.
        self.capability.forget(ino);
        self.send_kept_attrs_in_turn(ino).await
    }

    /// Size report `r` of `ino` and the changes `kept` for it, by the same caller, as one
    /// MDS call and one transaction (`MdsOp::ReportAndSetAttr`, docs/metadata-cache.md): the
    /// report then the setattr, as two calls would. Changes the MDS refuses fail this call
    /// as the setattr would have failed, and are dropped as they were; the report landed.
    async fn report_with_kept_attrs(
        &self,
        ino: Ino,
        r: &super::files::Report,
        kept: &super::files::pending::PendingAttrs,
    ) -> Result<(), Error> {
        let (attr, refused) = self
            .report_and_setattr(&kept.creds, ino, r, kept.set.clone())
            .await?;
        self.files.reported(ino, r, &attr);
        self.capability.forget(ino);
        self.files.sent_pending(ino, kept);
        match refused {
            None => Ok(()),
            Some(e) => {
                tracing::warn!(ino, "attribute changes kept until close were refused: {e}");
                Err(e)
            }
        }
    }

    /// Starts reporting unreported sizes every [`SIZE_REPORT_INTERVAL`] for as long as the
    /// client lives.
    pub(crate) fn start_size_reports(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SIZE_REPORT_INTERVAL).await;
                let Some(c) = weak.upgrade() else { break };
                for ino in c.files.dirty_inodes() {
                    if let Err(e) = c.report_dirty(ino).await {
                        tracing::debug!(ino, "periodic size report: {e}");
                    }
                }
            }
        });
    }

    /// Opens file `ino` with open(2) `flags` and returns a handle.
    pub async fn open_file(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        flags: i32,
    ) -> Result<Opened, Error> {
        if flags & libc::O_TRUNC != 0 {
            // The MDS must know every byte written before it truncates, or the cut misses them.
            self.report_dirty(ino).await?;
            self.cache.invalidate(ino);
        }
        if let Some(opened) = self.try_open_ahead(creds, ino, flags) {
            return opened;
        }
        self.send_kept_attrs_before_open(ino).await;
        let (answer, prefetch) = self.open_reading_ahead(creds, ino, flags).await;
        let (attr, inline) = answer.map_err(stale_if_gone)?;
        self.refuse_orphan(creds, &attr).await?;
        let opened = self.opened(creds, attr, flags, prefetch).await?;
        if let Some(data) = inline {
            self.opened_inline(ino, &data);
        }
        Ok(opened)
    }

    /// Creates (or, without O_EXCL in `flags`, opens an existing) file `name` in `parent`
    /// and returns a handle. A new file's layout is `layout`, completed by the directory's
    /// default and the cluster's; its permission bits are `perm`, as they are.
    pub async fn create_file(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
        perm: u32,
        flags: i32,
        layout: Option<LayoutSpec>,
    ) -> Result<Opened, Error> {
        self.create_file_umask(creds, parent, name, (perm, 0), flags, layout)
            .await
    }

    /// [`Client::create_file`] for a process with a umask: `(perm, umask)`, the umask applied
    /// by the MDS unless `parent` has a default ACL (`MdsOp::Create`).
    pub async fn create_file_umask(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
        mode: (u32, u32),
        flags: i32,
        layout: Option<LayoutSpec>,
    ) -> Result<Opened, Error> {
        let exclusive = flags & libc::O_EXCL != 0;
        if !exclusive {
            self.before_opening_existing(parent, name, flags).await?;
        }
        let (attr, new) = self
            .create_open(creds, parent, name, mode, exclusive, Some(flags), layout)
            .await?;
        let ino = attr.ino;
        let opened = self.opened(creds, attr, flags, None).await?;
        if new && self.inline_max.load(Ordering::Relaxed) > 0 {
            self.files.made_here(ino);
        }
        if new {
            self.dirops_ahead.caps.made_file(parent, ino);
        }
        Ok(opened)
    }

    /// A create that may open an existing file, as [`Client::open_file`] does before an
    /// open: when the metadata cache knows `name` in `parent`, what this client kept or
    /// buffered for that file reaches the MDS first (all of it before an O_TRUNC, which
    /// must cut every byte written before it; the kept owner, mode and times before an
    /// open the MDS checks against them). A name the cache does not know goes as it is.
    async fn before_opening_existing(
        self: &Arc<Self>,
        parent: Ino,
        name: &str,
        flags: i32,
    ) -> Result<(), Error> {
        let Some(ino) = self.meta_cache.entry_ino(parent, name) else {
            return Ok(());
        };
        if flags & libc::O_TRUNC != 0 {
            self.report_dirty(ino).await?;
            self.cache.invalidate(ino);
        }
        self.send_kept_attrs_before_open(ino).await;
        Ok(())
    }

    /// A handle for an open the MDS recorded; undoes the record if no handle is left.
    async fn opened(
        self: &Arc<Self>,
        creds: &Creds,
        attr: Attr,
        flags: i32,
        prefetch: Option<Prefetch>,
    ) -> Result<Opened, Error> {
        let r = self.register_open(creds, attr, flags, prefetch);
        if let Err((ino, _)) = &r {
            // Undo the open record the MDS just made.
            let _ = self.release(creds, *ino).await;
        }
        r.map_err(|(_, e)| e)
    }

    /// A handle for an open of `attr.ino` (`Err`: the inode, and why none).
    pub(super) fn register_open(
        self: &Arc<Self>,
        creds: &Creds,
        attr: Attr,
        flags: i32,
        prefetch: Option<Prefetch>,
    ) -> Result<Opened, (Ino, Error)> {
        match self.files.register(&attr, flags, creds, self.session()) {
            Ok((fh, unchanged)) => {
                self.atimes.opened(Via::File(fh), Some(&attr));
                // Changed since this client last saw it: cached pages may be stale.
                self.settle_open_pages(&attr, prefetch, unchanged);
                let mut attr = attr;
                self.merge_local(&mut attr);
                // Reads the kernel serves from its page cache never reach the client: when a
                // read through this open may move the atime (always under strictatime; under
                // relatime when the atime is not newer than the last change, or a day old)
                // the kernel keeps no pages across the open, so that read is seen.
                let atime_may_move = match self.atimes.mode().rule {
                    AtimeRule::Never => false,
                    AtimeRule::Relative => relatime_due(&attr, rustre_proto::host::now()),
                    AtimeRule::Strict => true,
                };
                if !unchanged {
                    // The caller has the kernel drop the attributes it holds.
                    self.kernel_refreshing(attr.ino);
                }
                Ok(Opened {
                    fh,
                    attr,
                    keep_cache: unchanged && !atime_may_move,
                    changed: !unchanged,
                })
            }
            Err(e) => Err((attr.ino, e)),
        }
    }

    /// Reads up to `len` bytes at `offset` through handle `fh`; shorter at end of file.
    pub async fn read_file(
        self: &Arc<Self>,
        fh: u64,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, Error> {
        let f = self.files.handle(fh)?;
        // Buffered writes of this inode reach the OSTs before anything is read back.
        self.flush_writes(f.ino).await?;
        let size = self.files.size(f.ino);
        let data = if offset >= size || len == 0 {
            Bytes::new()
        } else {
            let n = (size - offset).min(len as u64) as usize;
            self.cached_read(f.ino, f.layout()?, offset, n, size)
                .await?
        };
        self.accessed(Via::File(fh), f.ino, &f.creds);
        if let Some(m) = super::metrics::get() {
            m.read_bytes.inc_by(data.len() as u64);
        }
        Ok(data)
    }

    /// A read or a listing through `via`: moves the inode's atime in the background when
    /// the atime mode says so ([`super::atime`]); the reader does not wait for the MDS.
    pub(super) fn accessed(self: &Arc<Self>, via: Via, ino: Ino, creds: &Creds) {
        let now = rustre_proto::host::now();
        let update = self.atimes.on_access(via, ino, now, |at_open| {
            self.cached_getattr(ino).or_else(|| {
                at_open.map(|mut a| {
                    self.merge_local(&mut a);
                    a
                })
            })
        });
        let Some(u) = update else { return };
        let update = AtimeUpdate {
            ino,
            atime: u.atime,
            relative: u.relative,
        };
        if self.atime_queue.push(creds, update) {
            let c = self.clone();
            tokio::spawn(async move { c.send_atimes().await });
        }
    }

    /// Sends the queued atime updates, a call at a time, until none wait
    /// ([`super::atime_batch`]).
    async fn send_atimes(self: Arc<Self>) {
        /// Gives the queue up if this sender is dropped before it emptied it.
        struct Running<'a>(&'a Client, bool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.atime_queue.abandon();
                }
            }
        }
        let mut running = Running(&self, false);
        loop {
            tokio::time::sleep(ATIME_GATHER).await;
            let (creds, updates) = match self.atime_queue.next() {
                Next::Send(creds, updates) => (creds, updates),
                Next::Stop => break,
            };
            let op = MdsOp::AccessedMany {
                updates: updates.clone(),
            };
            if let Err(e) = self.mds(&creds, op).await {
                tracing::debug!(n = updates.len(), "atime updates: {e}");
            }
            for u in updates {
                self.atimes.answered(u.ino, u.atime);
            }
        }
        running.1 = true;
    }

    /// Writes `data` at `offset` through handle `fh` (at the end of the file for an
    /// O_APPEND handle); returns the bytes written. A write starting at or past what the
    /// file's stripes hold (`Layout::max_file_size`) is EFBIG; one reaching past it is cut
    /// short there.
    pub async fn write_file(
        self: &Arc<Self>,
        fh: u64,
        offset: u64,
        data: Bytes,
    ) -> Result<usize, Error> {
        let append = self.files.handle(fh)?.flags & libc::O_APPEND != 0;
        self.write_file_as(fh, offset, data, append)
            .await
            .map(|w| w.len)
    }

    /// Writes `data` through handle `fh`: at `offset`, or with `append` at the file's end as
    /// the MDS hands it out ([`super::append`]; the FUSE adapter says so from the flags of
    /// each write, which fcntl(F_SETFL) may have changed since the open). Returns where the
    /// bytes went and how many.
    pub async fn write_file_as(
        self: &Arc<Self>,
        fh: u64,
        offset: u64,
        data: Bytes,
        append: bool,
    ) -> Result<Written, Error> {
        let f = self.files.handle(fh)?;
        let layout = f.layout()?;
        let sync = f.flags & libc::O_DSYNC != 0;
        // Changes kept until close go first: they came before this write (which may clear
        // setid bits and moves the mtime past a time they set).
        if self.files.has_pending(f.ino) {
            self.report_dirty(f.ino).await?;
        }
        // Appends through this client go out one at a time, in order.
        let lock = append.then(|| self.files.append_lock(f.ino));
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        if append && data.is_empty() {
            return Ok(Written { offset, len: 0 });
        }
        let (offset, len) = if append {
            self.append_offset(&f.creds, f.ino, data.len()).await?
        } else {
            // Past what the file's stripes hold, the OSTs would refuse the bytes: EFBIG (or
            // a short write up to there), with nothing buffered past it and the size never
            // moved past it.
            let len = writable_len(offset, data.len(), layout.max_file_size())?;
            if len == 0 {
                return Ok(Written { offset, len: 0 });
            }
            (offset, len)
        };
        let data = data.slice(..len);
        let end = offset + len as u64;
        if !append {
            // Appends are counted by the MDS as it places them.
            self.quota_room(&f.creds, f.ino, end).await?;
        }
        if sync {
            self.flush_writes(f.ino).await?;
            self.cache
                .invalidate_range(f.ino, layout.stripe_size as u64, offset, len as u64);
            self.write_data(f.ino, layout, offset, data, true).await?;
        } else {
            self.buffered_write(f.ino, layout, offset, data).await?;
        }
        self.files
            .wrote(f.ino, end, rustre_proto::host::now(), &f.creds);
        if let Some(m) = super::metrics::get() {
            m.write_bytes.inc_by(len as u64);
            m.write_calls.inc();
        }
        if sync {
            self.report_dirty(f.ino).await?;
        }
        Ok(Written { offset, len })
    }

    /// Whether a write through `fh` by a caller without CAP_FSETID may clear setid bits the
    /// kernel has cached (then the FUSE adapter writes on the runtime, and drops the
    /// kernel's cached attributes before it answers).
    pub fn write_may_clear_setid(&self, fh: u64) -> bool {
        self.files
            .handle(fh)
            .is_ok_and(|f| self.files.saw_setid(f.ino))
    }

    /// After a write through `fh` by a caller without CAP_FSETID (FUSE_WRITE_KILL_SUIDGID):
    /// whether it cleared setid bits the kernel may still have cached (once per time the
    /// bits are seen; the MDS clears them with the write's size report).
    pub fn write_cleared_setid(&self, fh: u64) -> bool {
        self.files
            .handle(fh)
            .is_ok_and(|f| self.files.take_setid(f.ino))
    }

    /// close(2) of one descriptor of `fh`: the MDS learns the size and mtime written.
    /// True when a flush of handle `fh` would do nothing: no write of its inode is buffered,
    /// in flight or unreported (so the kernel's FLUSH at every close of a file nobody wrote
    /// is answered without leaving fuser's thread).
    pub fn nothing_to_flush(&self, fh: u64) -> bool {
        self.files.handle(fh).is_ok_and(|f| {
            !self.writeback.holds(f.ino) && self.files.pending_report(f.ino).is_none()
        })
    }

    pub async fn flush_file(self: &Arc<Self>, fh: u64) -> Result<(), Error> {
        let f = self.files.handle(fh)?;
        if self.close_inline(f.ino).await? {
            return Ok(());
        }
        self.report_dirty(f.ino).await
    }

    /// fsync(2): data on the OSTs' disks, size/mtime reported, and the MDS's store synced.
    pub async fn fsync_file(self: &Arc<Self>, fh: u64) -> Result<(), Error> {
        let f = self.files.handle(fh)?;
        self.flush_writes(f.ino).await?;
        // Through any descriptor: data written through another one is the file's too.
        self.sync_objects(f.ino, f.layout()?).await?;
        self.report_dirty(f.ino).await?;
        // The report, the file's creation and every other change this client made before
        // are committed; this makes them durable.
        self.sync_metadata(&f.creds).await
    }

    /// The last close of handle `fh`: reports what was written and drops the open record
    /// (the MDS destroys an orphan whose last open this was).
    ///
    /// The kernel sends RELEASE asynchronously: the file may be opened again (and written)
    /// while this one runs, so the per-inode state is dropped only if still nobody holds it.
    pub async fn release_file(self: &Arc<Self>, fh: u64) -> Result<(), Error> {
        let (f, last) = self.files.unregister(fh)?;
        self.atimes.closed(Via::File(fh));
        if f.evicted.load(Ordering::SeqCst) {
            // Its open ended with its session at the MDS; what it wrote was dropped.
            if last && self.files.forget_inode(f.ino) {
                self.forget_writes(f.ino);
            }
            return Ok(());
        }
        // An open answered ahead whose record the MDS never heard of ends here.
        let unrecorded = self.dirops_ahead.records.drop_kept(f.ino);
        // An appender that closes gives the end back: another client may be waiting.
        self.return_append_lease(f.ino).await;
        let reported = match self.close_inline(f.ino).await {
            Ok(true) => Ok(()),
            Ok(false) => self.report_dirty(f.ino).await,
            Err(e) => Err(e),
        };
        // The MDS drops the open only once it knows which copies missed writes: while a
        // stale mark of this file is not taken, the open stays, and the end of the session
        // makes the MDS distrust the copies (docs/replication.md, "A writer's intent").
        let released = match self.send_pending_marks(f.ino).await {
            Ok(()) if unrecorded => Ok(()),
            Ok(()) => self.release(&f.creds, f.ino).await,
            Err(e) => {
                tracing::warn!(
                    ino = f.ino,
                    "open kept at the MDS: a stale mark is not taken: {e}"
                );
                Err(e)
            }
        };
        if last && self.files.forget_inode(f.ino) {
            self.forget_writes(f.ino);
        }
        reported.and(released)
    }

    /// setattr(2) family. Unreported writes go to the MDS first, so an explicit mtime or a
    /// truncate is applied after them; a handle opened for writing (ftruncate) skips the
    /// write-permission check, as Linux does.
    pub async fn setattr_file(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        mut set: SetAttr,
        fh: Option<u64>,
    ) -> Result<Attr, Error> {
        if let Some(f) = fh.and_then(|fh| self.files.handle(fh).ok()) {
            if f.ino == ino && f.writable() && set.size.is_some() {
                set.via_write_handle = true;
            }
        }
        if let Some(attr) = self.keep_setattr(creds, ino, &set) {
            return Ok(attr);
        }
        self.report_dirty(ino).await?;
        if set.size.is_some() {
            self.cache.invalidate(ino);
        }
        self.setattr(creds, ino, set).await.map_err(stale_if_gone)
    }

    /// The kernel's write-back cache (`-o writeback_cache`) keeps the mtime of the writes
    /// it caches and sends it, through a handle open for writing, when it writes the inode
    /// back (at the latest before a close's flush): a setattr of mtime and ctime only. That
    /// is the time of writes through this client, not a utimensat (the kernel never sends
    /// a handle with those): it becomes the mtime the next size report carries, and is
    /// answered without the MDS, which would refuse an explicit time from a writer that
    /// does not own the file. `None` when `fh` is not a handle of `ino` open for writing.
    pub async fn kernel_write_times(
        &self,
        ino: Ino,
        fh: u64,
        mtime: Timestamp,
    ) -> Option<Result<Attr, Error>> {
        let f = self
            .files
            .handle(fh)
            .ok()
            .filter(|f| f.ino == ino && f.writable())?;
        self.files.kernel_mtime(ino, mtime);
        if let Some(a) = self.cached_getattr(ino) {
            return Some(Ok(a));
        }
        Some(self.getattr_ino(&f.creds, ino).await)
    }

    /// fallocate(2) by `creds` through handle `fh`. Mode 0 and FALLOC_FL_KEEP_SIZE reserve
    /// nothing on the OSTs (objects are sparse): they are ENOSPC, with nothing changed, when
    /// an OST of the file lacks room for its share of the range ([`super::space`]), and
    /// otherwise extend the size as asked. FALLOC_FL_PUNCH_HOLE and FALLOC_FL_ZERO_RANGE
    /// write zeros over the range. Other modes are EOPNOTSUPP. Every mode changes the data:
    /// the MDS learns it before the call returns, and clears the setid bits (the caller's
    /// rule) and the file capability ([`Client::report_dirty`]).
    pub async fn fallocate_file(
        self: &Arc<Self>,
        creds: &Creds,
        fh: u64,
        offset: u64,
        len: u64,
        mode: i32,
    ) -> Result<(), Error> {
        let f = self.files.handle(fh)?;
        if self.files.has_pending(f.ino) {
            self.report_dirty(f.ino).await?;
        }
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        let layout = f.layout()?;
        let largest = MAX_FILE_BYTES.min(layout.max_file_size());
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= largest)
            .ok_or(Error::TooBig)?;
        if len == 0 {
            return Err(Error::Invalid("fallocate of zero bytes".into()));
        }
        let size = self.files.size(f.ino);
        if !keep_size && end > size {
            self.quota_room(creds, f.ino, end).await?;
        }
        match mode & !FALLOC_FL_KEEP_SIZE {
            0 => space::check_room(layout, &self.cluster_map(), offset, end)?,
            FALLOC_FL_PUNCH_HOLE if keep_size => {
                self.zero_range(&f, offset, end.min(size)).await?;
            }
            FALLOC_FL_ZERO_RANGE => {
                self.zero_range(&f, offset, end.min(size)).await?;
            }
            _ => return Err(Error::NotSupported),
        }
        let end = if keep_size { size } else { end.max(size) };
        self.files
            .wrote(f.ino, end, rustre_proto::host::now(), creds);
        self.report_dirty(f.ino).await
    }

    /// Writes zeros over `[start, end)` of the file behind `f`.
    async fn zero_range(self: &Arc<Self>, f: &OpenFile, start: u64, end: u64) -> Result<(), Error> {
        let layout = f.layout()?;
        self.flush_writes(f.ino).await?;
        self.cache.invalidate(f.ino);
        let zeros = BytesMut::zeroed(ZERO_CHUNK_BYTES).freeze();
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(ZERO_CHUNK_BYTES as u64) as usize;
            self.write_data(f.ino, layout, pos, zeros.slice(..n), false)
                .await?;
            pos += n as u64;
        }
        if start < end {
            self.files
                .wrote(f.ino, end, rustre_proto::host::now(), &f.creds);
        }
        Ok(())
    }
}

impl Client {
    /// Drops one open of `ino` by this session (with other releases of the moment).
    pub(crate) async fn release(self: &Arc<Self>, creds: &Creds, ino: Ino) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let start_sender = {
            let mut q = lock(&self.releases.inner);
            q.waiting.push((ino, tx));
            !std::mem::replace(&mut q.sending, true)
        };
        if start_sender {
            let (this, creds) = (self.clone(), creds.clone());
            tokio::spawn(async move { this.send_releases(&creds).await });
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::Io("release sender ended".into())))
    }

    /// Sends what is queued, a call at a time, until the queue is empty. The MDS does not
    /// look at the credentials of a release; the first caller's are sent.
    async fn send_releases(&self, creds: &Creds) {
        let mut running = SenderRunning {
            queue: &self.releases,
            ended_normally: false,
        };
        loop {
            tokio::time::sleep(RELEASE_GATHER).await;
            let batch: Vec<(Ino, Waiter)> = {
                let mut q = lock(&self.releases.inner);
                if q.waiting.is_empty() {
                    q.sending = false;
                    running.ended_normally = true;
                    return;
                }
                let n = q.waiting.len().min(RELEASE_MAX_INOS);
                q.waiting.drain(..n).collect()
            };
            let inos = batch.iter().map(|(ino, _)| *ino).collect();
            let result = self.done_call(creds, MdsOp::Release { inos }).await;
            for (_, waiter) in batch {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

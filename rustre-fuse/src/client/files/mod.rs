//! Open files and the sizes this client's writes reached.
//!
//! Data goes straight to the OSTs, so the MDS learns a file's size and mtime from its
//! writers (DESIGN.md, "Hard parts": file size and mtime). For every inode with open handles
//! this client keeps an [`InodeState`]: the highest size it knows (its own writes and every
//! MDS answer), the mtime its writes reached, and the inode's truncate version. The state is
//! merged into every attribute answer this client returns (so `stat` sees a write at once)
//! and reported to the MDS on flush, fsync, release and before a setattr, so another client
//! that opens the file after this one closed it sees the data (close-to-open).
//!
//! A handle keeps the file's layout, so a file unlinked while open stays readable and
//! writable until its last close: the MDS keeps the inode as an orphan until then. The
//! inode's state also keeps the newest layout seen for it (highest `Layout::version`: stale
//! marks this client made after a failed copy, and every attribute answer), which the data
//! path uses in place of an older one held by a handle, a write-back buffer or a page fetch
//! (docs/replication.md).
//!
//! The state also gathers the stripes this client's acknowledged writes reached, which the
//! next size report names (the MDS records them in `Layout::written`: their objects must
//! exist, docs/replication.md, "Which objects exist").
//!
//! Nothing here knows FUSE; the FUSE adapter, tests and tools use the same calls.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, StripeSet, Timestamp};
use rustre_proto::sync::lock;
use rustre_proto::Error;

pub(crate) mod pending;
pub(crate) mod turns;
use pending::PendingAttrs;

/// Most files one client holds open at once (handles, not inodes).
pub(super) const MAX_OPEN_FILES: usize = 1 << 16;
/// Inodes whose last seen (size, mtime) is remembered, to keep the kernel's page cache
/// across opens of an unchanged file.
pub(super) const CACHE_STAMPS_MAX: usize = 1 << 16;
/// Largest buffer of zeros written at once when zeroing a range.
pub(super) const ZERO_CHUNK_BYTES: usize = 1 << 20;
/// How often sizes written but not yet reported (a file kept open while written) are
/// reported anyway, so other clients see a long-lived writer's progress.
pub(super) const SIZE_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Largest file size (Linux's MAX_LFS_FILESIZE).
pub(super) const MAX_FILE_BYTES: u64 = i64::MAX as u64;

/// How many of `len` bytes a write at `offset` may write in a file of at most `limit` bytes
/// (what its stripes hold, and [`MAX_FILE_BYTES`]): EFBIG when it starts at or past the
/// limit, cut short at the limit when it reaches past it, as Linux does at its largest file.
pub(super) fn writable_len(offset: u64, len: usize, limit: u64) -> Result<usize, Error> {
    let limit = limit.min(MAX_FILE_BYTES);
    if len == 0 {
        return if offset > limit {
            Err(Error::TooBig)
        } else {
            Ok(0)
        };
    }
    let room = limit.checked_sub(offset).filter(|r| *r > 0);
    room.map(|r| len.min(usize::try_from(r).unwrap_or(usize::MAX)))
        .ok_or(Error::TooBig)
}

/// `fallocate` mode bits this client implements (values from Linux's falloc.h).
pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// The result of opening or creating a file.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The handle later calls name.
    pub fh: u64,
    pub attr: Attr,
    /// True when the kernel may keep its cached pages of the file: it is unchanged since
    /// this client last saw it, and no read through this open may move its atime (a read
    /// the kernel answers from its pages never reaches the client).
    pub keep_cache: bool,
    /// True when the file changed since this client last saw it: the kernel's cached
    /// attributes of it (its size above all) must go too.
    pub changed: bool,
}

/// One open file.
pub(super) struct OpenFile {
    pub(super) ino: Ino,
    /// The layout at open time: it stays valid after an unlink.
    pub(super) layout: Option<Layout>,
    pub(super) flags: i32,
    /// Who opened it: size reports made for this handle carry these credentials.
    pub(super) creds: Creds,
    /// The session it was opened in.
    pub(super) session: u64,
    /// Set when that session expired at the MDS: the MDS dropped this open, and may have
    /// marked copies stale and resynced them since; every call through the handle but its
    /// release fails with EIO (see [`Files::evict_session`]).
    pub(super) evicted: AtomicBool,
}

impl OpenFile {
    pub(super) fn layout(&self) -> Result<&Layout, Error> {
        self.layout
            .as_ref()
            .ok_or_else(|| Error::Invalid("file has no layout".into()))
    }

    pub(super) fn writable(&self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_RDONLY
    }
}

/// What this client knows about one inode it has open.
pub(super) struct InodeState {
    /// Highest size known: this client's writes and every MDS answer since the last truncate.
    pub(super) size: u64,
    /// When this client's writes last changed the file.
    pub(super) mtime: Timestamp,
    /// The truncate version the size belongs to.
    pub(super) truncate_version: u64,
    /// Written since the last successful report.
    pub(super) dirty: bool,
    /// Stripes whose writes every live copy acknowledged since the last successful report.
    pub(super) written: StripeSet,
    /// By stripe, the allocation of copy 0 its latest write answer carried (reported with
    /// the size, `Layout::allocated`) since the last successful report.
    pub(super) allocated: BTreeMap<u32, u64>,
    /// By stripe, the largest allocation any write answer carried in this truncate
    /// version. Answers of writes sent together arrive in any order, and an object only
    /// grows until a truncate: a smaller answer arriving late is older, not news.
    pub(super) allocated_max: BTreeMap<u32, u64>,
    /// Bumped by every write, so a report racing a write does not mark the state clean.
    pub(super) writes: u64,
    /// The last writer, whose credentials the report carries (a non-root writer clears
    /// setuid/setgid).
    pub(super) writer: Creds,
    /// Open handles on the inode.
    pub(super) opens: u32,
    /// Of those, the ones open for writing.
    pub(super) writers: u32,
    /// Owner, mode and time changes kept until the next report ([`pending`]).
    pub(super) pending: Option<PendingAttrs>,
    /// Serializes O_APPEND writes, which go to the end this state knows.
    pub(super) append: Arc<tokio::sync::Mutex<()>>,
    /// The end of the file, leased to this client by the MDS (`client::append`).
    pub(super) append_lease: Option<AppendLease>,
    /// The MDS refused a lease: appends do not ask for one before this.
    pub(super) no_lease_before: Option<tokio::time::Instant>,
    /// The newest layout seen (highest version).
    pub(super) layout: Option<Layout>,
    /// When the MDS last told us the layout (any attribute answer with one).
    pub(super) layout_seen: tokio::time::Instant,
    /// Its handles were evicted ([`Files::evict_session`]) and none was opened since: no
    /// write or sync of it may go out.
    pub(super) evicted: bool,
    /// The MDS last showed setuid or setgid on the file, and no write cleared them since
    /// ([`Files::take_setid`]).
    pub(super) setid: bool,
    /// The project the file counts in (`Attr::project`, as at its first open here).
    pub(super) project: Ino,
    /// The end the MDS reserved room up to for this client's writes (`super::quota`).
    pub(super) quota_room: u64,
    /// The MDS last said the file's data is on the MDS (`Attr::inline`, `super::inline`).
    pub(super) inline: bool,
    /// This client made the file through its only handle and sent none of its bytes to
    /// the OSTs: its close may carry them to the MDS (`super::inline`).
    pub(super) may_inline: bool,
}

impl InodeState {
    pub(super) fn new(attr: &Attr) -> InodeState {
        InodeState {
            layout_seen: tokio::time::Instant::now(),
            layout: attr.layout.clone(),
            size: attr.size,
            mtime: attr.mtime,
            truncate_version: attr.truncate_version,
            dirty: false,
            written: StripeSet::default(),
            allocated: BTreeMap::new(),
            allocated_max: BTreeMap::new(),
            writes: 0,
            writer: Creds::root(),
            opens: 0,
            writers: 0,
            pending: None,
            append: Arc::new(tokio::sync::Mutex::new(())),
            append_lease: None,
            no_lease_before: None,
            evicted: false,
            setid: attr.perm & 0o6000 != 0,
            project: attr.project,
            quota_room: 0,
            inline: attr.inline,
            may_inline: false,
        }
    }

    /// True when the MDS has yet to hear of this client's writes (their size, or stripes).
    fn is_unreported(&self) -> bool {
        self.dirty || !self.written.is_empty()
    }

    /// True when the MDS has yet to hear of this client's writes or kept changes.
    fn has_unsent(&self) -> bool {
        self.is_unreported() || self.pending.is_some()
    }
}

/// An append lease: this client appends at the end it knows, below `limit`, until
/// `until` (its own clock, ahead of the MDS's expiry), in truncate version
/// `truncate_version`.
#[derive(Debug, Clone, Copy)]
pub(super) struct AppendLease {
    pub(super) limit: u64,
    pub(super) until: tokio::time::Instant,
    pub(super) truncate_version: u64,
}

/// A pending size report: the state as it was when the report was taken.
pub(super) struct Report {
    pub(super) size: u64,
    pub(super) mtime: Timestamp,
    pub(super) truncate_version: u64,
    pub(super) writes: u64,
    pub(super) writer: Creds,
    pub(super) written: StripeSet,
    /// `(stripe, bytes)` from [`InodeState::allocated`].
    pub(super) allocated: Vec<(u32, u64)>,
}

/// The open-file table and per-inode size state of one client.
pub(super) struct Files {
    /// How old a replicated file's layout may get before a read asks the MDS again (the
    /// mount's attribute TTL), in milliseconds.
    pub(super) layout_ttl_ms: AtomicU64,
    pub(super) handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    pub(super) next_fh: AtomicU64,
    /// By inode, in order: dirty sizes are reported in inode order (deterministic runs).
    pub(super) inodes: Mutex<BTreeMap<Ino, InodeState>>,
    pub(super) stamps: Mutex<LruCache<Ino, (u64, Timestamp)>>,
    /// The last inode root created here came back owned by root: the MDS does not squash
    /// this client's root, so root's attribute changes may be kept ([`pending`]).
    pub(super) root_unsquashed: AtomicBool,
    /// One size report of an inode at a time ([`turns`]).
    pub(super) report_turns: turns::ReportTurns,
}

impl Default for Files {
    fn default() -> Self {
        Files {
            layout_ttl_ms: AtomicU64::new(DEFAULT_LAYOUT_TTL_MS),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            inodes: Mutex::new(BTreeMap::new()),
            stamps: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_STAMPS_MAX).expect("non-zero"),
            )),
            root_unsquashed: AtomicBool::new(false),
            report_turns: turns::ReportTurns::default(),
        }
    }
}

/// Default of [`Files::set_layout_ttl`] (the default attribute TTL).
pub(super) const DEFAULT_LAYOUT_TTL_MS: u64 = 1000;

/// Replaces `known` by `seen` when `seen` is newer (a higher version); of the same version,
/// learns its written stripes (they change without a new version, and only grow but for a
/// truncate's cut, which leaves every live copy an object anyway).
pub(super) fn learn_layout(known: &mut Option<Layout>, seen: &Layout) {
    match known {
        Some(k) if seen.version == k.version => {
            k.written.union_with(&seen.written);
        }
        Some(k) if seen.version < k.version => {}
        _ => *known = Some(seen.clone()),
    }
}

/// The error of a call through a handle of inode `ino` evicted with session `session`.
pub(super) fn evicted_error(ino: Ino, session: u64) -> Error {
    Error::Io(format!(
        "inode {ino}: this handle was opened in session {session}, which expired at the MDS \
         (the client was evicted); reopen the file"
    ))
}

/// Setuid/setgid bits left after a write by `writer` (Linux's should_remove_suid).
pub(super) fn perm_after_write(writer: &Creds, perm: u32) -> u32 {
    if writer.uid == 0 {
        return perm;
    }
    let mut p = perm & !0o4000;
    if p & 0o010 != 0 {
        p &= !0o2000;
    }
    p
}

impl Files {
    /// Merges what this client knows into an attribute answer of the MDS, and learns from it.
    pub(super) fn merge(&self, attr: &mut Attr) {
        if attr.kind != FileKind::File {
            return;
        }
        let mut inodes = lock(&self.inodes);
        let Some(st) = inodes.get_mut(&attr.ino) else {
            return;
        };
        st.setid |= attr.perm & 0o6000 != 0;
        if let Some(l) = &attr.layout {
            learn_layout(&mut st.layout, l);
            st.layout_seen = tokio::time::Instant::now();
        }
        if attr.layout.as_ref().is_some_and(|l| !l.written.is_empty()) {
            // Written stripes: its data moved to the objects, if it was on the MDS.
            st.inline = false;
        }
        if attr.truncate_version > st.truncate_version {
            // A truncate happened since this state was taken: what it knew is void.
            st.truncate_version = attr.truncate_version;
            st.inline = attr.inline;
            st.append_lease = None;
            st.size = attr.size;
            st.mtime = attr.mtime;
            st.dirty = false;
            st.written = StripeSet::default();
            st.allocated.clear();
            st.allocated_max.clear();
            return;
        }
        if attr.truncate_version < st.truncate_version {
            // An answer older than a truncate this client made: the local size is current.
            attr.size = st.size;
            attr.truncate_version = st.truncate_version;
        }
        st.size = st.size.max(attr.size);
        attr.size = st.size;
        if let Some(l) = attr.layout.as_mut() {
            // What st_blocks counts of writes not reported yet (`Layout::blocks`).
            l.note_written(&st.written);
            l.note_allocated(
                &st.allocated
                    .iter()
                    .map(|(s, b)| (*s, *b))
                    .collect::<Vec<_>>(),
            );
        }
        if st.dirty {
            attr.mtime = attr.mtime.max(st.mtime);
            attr.ctime = attr.ctime.max(st.mtime);
            attr.perm = perm_after_write(&st.writer, attr.perm);
        }
        if let Some(p) = &st.pending {
            p.overlay(attr);
        }
    }

    /// Open handle `fh`; EIO once it was evicted.
    pub(super) fn handle(&self, fh: u64) -> Result<Arc<OpenFile>, Error> {
        let f = lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("unknown file handle {fh}")))?;
        if f.evicted.load(Ordering::SeqCst) {
            return Err(evicted_error(f.ino, f.session));
        }
        Ok(f)
    }

    /// Evicts every handle opened in `session`, which expired at the MDS (as Lustre evicts
    /// a client): the MDS dropped their opens, and copies their writes went to may have
    /// been marked stale and resynced since, so what they still hold (buffered writes, an
    /// unreported size) must not reach the file. Their calls fail with EIO until they are
    /// released. Returns the inodes whose buffered writes the caller drops.
    pub(super) fn evict_session(&self, session: u64) -> Vec<Ino> {
        let mut inos = Vec::new();
        for f in lock(&self.handles).values() {
            if f.session == session && !f.evicted.swap(true, Ordering::SeqCst) {
                inos.push(f.ino);
            }
        }
        inos.sort_unstable();
        inos.dedup();
        let mut inodes = lock(&self.inodes);
        for ino in &inos {
            if let Some(st) = inodes.get_mut(ino) {
                st.evicted = true;
                st.dirty = false;
                st.pending = None;
            }
        }
        inos
    }

    /// Whether `ino`'s handles were evicted and none was opened since.
    pub(super) fn is_evicted(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| st.evicted)
    }

    /// Records a new handle on `attr.ino`; tells whether cached pages are still valid.
    pub(super) fn register(
        &self,
        attr: &Attr,
        flags: i32,
        creds: &Creds,
        session: u64,
    ) -> Result<(u64, bool), Error> {
        let mut handles = lock(&self.handles);
        if handles.len() >= MAX_OPEN_FILES {
            return Err(Error::Busy);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        handles.insert(
            fh,
            Arc::new(OpenFile {
                ino: attr.ino,
                layout: attr.layout.clone(),
                flags,
                creds: creds.clone(),
                session,
                evicted: AtomicBool::new(false),
            }),
        );
        drop(handles);
        {
            let mut inodes = lock(&self.inodes);
            let st = inodes
                .entry(attr.ino)
                .or_insert_with(|| InodeState::new(attr));
            st.opens += 1;
            if flags & libc::O_ACCMODE != libc::O_RDONLY {
                st.writers += 1;
            }
            st.evicted = false;
            st.inline = attr.inline;
            st.may_inline &= st.opens == 1;
            if let Some(l) = &attr.layout {
                learn_layout(&mut st.layout, l);
                st.layout_seen = tokio::time::Instant::now();
            }
        }
        let stamp = (attr.size, attr.mtime);
        let mut stamps = lock(&self.stamps);
        let keep = flags & libc::O_TRUNC == 0 && stamps.get(&attr.ino) == Some(&stamp);
        stamps.put(attr.ino, stamp);
        Ok((fh, keep))
    }

    /// Whether an open of `attr.ino` would keep its cached pages: the size and mtime are
    /// the ones this client last saw ([`Files::register`]).
    pub(super) fn pages_would_stand(&self, attr: &Attr) -> bool {
        lock(&self.stamps).peek(&attr.ino) == Some(&(attr.size, attr.mtime))
    }

    /// The MDS refused the record of an open of `ino` after it was answered (an open
    /// answered ahead): the inode's handles fail with EIO from now on, and their releases
    /// drop no record.
    pub(super) fn fail_handles_of(&self, ino: Ino) {
        for f in lock(&self.handles).values().filter(|f| f.ino == ino) {
            f.evicted.store(true, Ordering::SeqCst);
        }
    }

    /// Whether a handle of this client holds `ino` open.
    pub(super) fn holds_open(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| st.opens > 0)
    }

    /// The newest layout this client knows for open inode `ino`.
    pub(super) fn layout(&self, ino: Ino) -> Option<Layout> {
        lock(&self.inodes).get(&ino)?.layout.clone()
    }

    /// Sets how old a replicated file's layout may get before a read asks again.
    pub(super) fn set_layout_ttl(&self, ttl: std::time::Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.layout_ttl_ms.store(ms, Ordering::Relaxed);
    }

    /// True when open inode `ino` has copies and the MDS last told us its layout longer
    /// ago than the TTL: a copy may have been marked stale since, so a read asks first.
    pub(super) fn layout_needs_check(&self, ino: Ino) -> bool {
        let ttl = std::time::Duration::from_millis(self.layout_ttl_ms.load(Ordering::Relaxed));
        lock(&self.inodes).get(&ino).is_some_and(|st| {
            st.layout.as_ref().is_some_and(|l| l.replicas > 1) && st.layout_seen.elapsed() > ttl
        })
    }

    /// The newer of `given` and the newest layout known for `ino` (by version), with the
    /// written stripes of both when they are of one version.
    pub(super) fn newest_layout(&self, ino: Ino, given: &Layout) -> Layout {
        let mut newest = Some(given.clone());
        if let Some(known) = self.layout(ino) {
            learn_layout(&mut newest, &known);
        }
        newest.unwrap_or_else(|| given.clone())
    }

    /// The size this client knows for open inode `ino`.
    pub(super) fn size(&self, ino: Ino) -> u64 {
        lock(&self.inodes).get(&ino).map_or(0, |s| s.size)
    }

    /// The size this client knows for open inode `ino` and the truncate version it
    /// belongs to.
    pub(super) fn size_and_version(&self, ino: Ino) -> (u64, u64) {
        lock(&self.inodes)
            .get(&ino)
            .map_or((0, 0), |s| (s.size, s.truncate_version))
    }

    /// Where an append of `len` bytes to `ino` goes under this client's append lease, if
    /// it holds one that covers it.
    pub(super) fn leased_append(&self, ino: Ino, len: u64) -> Option<u64> {
        let inodes = lock(&self.inodes);
        let st = inodes.get(&ino)?;
        let l = st.append_lease?;
        let fits = st.size.checked_add(len).is_some_and(|end| end <= l.limit);
        let valid =
            l.truncate_version == st.truncate_version && tokio::time::Instant::now() < l.until;
        (fits && valid).then_some(st.size)
    }

    /// Whether an append to `ino` asks the MDS for a lease (none was refused lately).
    pub(super) fn wants_append_lease(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| {
            st.no_lease_before
                .is_none_or(|t| tokio::time::Instant::now() >= t)
        })
    }

    /// Stores the lease an answer granted; without one, `refused_for` keeps appends from
    /// asking again for that long.
    pub(super) fn set_append_lease(
        &self,
        ino: Ino,
        lease: Option<AppendLease>,
        refused_for: Option<Duration>,
    ) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            st.append_lease = lease;
            if let Some(d) = refused_for {
                st.no_lease_before = Some(tokio::time::Instant::now() + d);
            }
        }
    }

    /// Drops this client's append lease of `ino`: the end its appends reached and its
    /// truncate version, if it held one.
    pub(super) fn take_append_lease(&self, ino: Ino) -> Option<(u64, u64)> {
        let mut inodes = lock(&self.inodes);
        let st = inodes.get_mut(&ino)?;
        st.append_lease.take()?;
        Some((st.size, st.truncate_version))
    }

    /// The inodes whose end this client holds a lease of.
    pub(super) fn append_leases(&self) -> Vec<Ino> {
        lock(&self.inodes)
            .iter()
            .filter(|(_, st)| st.append_lease.is_some())
            .map(|(ino, _)| *ino)
            .collect()
    }

    pub(super) fn append_lock(&self, ino: Ino) -> Arc<tokio::sync::Mutex<()>> {
        // A handle always has a state; a fresh lock would only serve a vanished one.
        lock(&self.inodes)
            .get(&ino)
            .map(|s| s.append.clone())
            .unwrap_or_default()
    }

    /// Notes that a write (or an extending fallocate) reached `end` at `mtime`.
    pub(super) fn wrote(&self, ino: Ino, end: u64, mtime: Timestamp, writer: &Creds) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino).filter(|st| !st.evicted) {
            st.size = st.size.max(end);
            st.mtime = st.mtime.max(mtime);
            st.dirty = true;
            st.writes += 1;
            st.writer = writer.clone();
        }
    }

    /// Notes the mtime the kernel's write-back cache gave this client's writes to `ino`
    /// (`Client::kernel_write_times`): the next size report carries it.
    pub(super) fn kernel_mtime(&self, ino: Ino, mtime: Timestamp) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino).filter(|st| !st.evicted) {
            st.mtime = mtime;
        }
    }

    /// Whether this client saw setid bits on `ino` that no write cleared since (what
    /// [`Files::take_setid`] would say, without taking it).
    pub(super) fn saw_setid(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| st.setid)
    }

    /// Whether `ino` had setid bits a write has just cleared (true once per time they are
    /// seen): the kernel's cached mode is then stale.
    pub(super) fn take_setid(&self, ino: Ino) -> bool {
        lock(&self.inodes)
            .get_mut(&ino)
            .is_some_and(|st| std::mem::take(&mut st.setid))
    }

    /// Notes that every live copy of `stripes` of `ino` acknowledged a write.
    pub(super) fn wrote_stripes(&self, ino: Ino, stripes: &[u32]) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            stripes.iter().for_each(|s| st.written.insert(*s));
        }
    }

    /// Notes the allocation copy 0 of `stripe` of `ino` answered a write with, unless an
    /// answer already noted (in this truncate version) said more.
    pub(super) fn note_allocated(&self, ino: Ino, stripe: u32, bytes: u64) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            let max = st.allocated_max.entry(stripe).or_insert(0);
            if bytes >= *max {
                *max = bytes;
                st.allocated.insert(stripe, bytes);
            }
        }
    }

    pub(super) fn pending_report(&self, ino: Ino) -> Option<Report> {
        let inodes = lock(&self.inodes);
        let st = inodes.get(&ino).filter(|s| s.is_unreported())?;
        Some(Report {
            size: st.size,
            mtime: st.mtime,
            truncate_version: st.truncate_version,
            writes: st.writes,
            writer: st.writer.clone(),
            written: st.written,
            allocated: st.allocated.iter().map(|(s, b)| (*s, *b)).collect(),
        })
    }

    pub(super) fn reported(&self, ino: Ino, r: &Report, attr: &Attr) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            if st.writes == r.writes && st.truncate_version == r.truncate_version {
                st.dirty = false;
            }
            st.written.remove_all(&r.written);
            // A quota set on its tree while the file was open reaches the writer here.
            st.project = attr.project;
            for (stripe, bytes) in &r.allocated {
                if st.allocated.get(stripe) == Some(bytes) {
                    st.allocated.remove(stripe);
                }
            }
        }
        lock(&self.stamps).put(ino, (attr.size, attr.mtime));
    }

    /// Drops handle `fh`; returns it and whether it was the inode's last.
    pub(super) fn unregister(&self, fh: u64) -> Result<(Arc<OpenFile>, bool), Error> {
        let f = lock(&self.handles)
            .remove(&fh)
            .ok_or_else(|| Error::Invalid(format!("unknown file handle {fh}")))?;
        let mut inodes = lock(&self.inodes);
        let last = match inodes.get_mut(&f.ino) {
            Some(st) => {
                st.opens = st.opens.saturating_sub(1);
                if f.writable() {
                    st.writers = st.writers.saturating_sub(1);
                }
                st.opens == 0
            }
            None => true,
        };
        Ok((f, last))
    }

    /// Drops the state of `ino` if no handle is open on it now; returns whether none is.
    /// (The caller learnt its handle was the last before awaiting: one may have been opened
    /// since, whose state this is.)
    pub(super) fn forget_inode(&self, ino: Ino) -> bool {
        let mut inodes = lock(&self.inodes);
        let Some(st) = inodes.get(&ino) else {
            return true;
        };
        if st.opens > 0 {
            return false;
        }
        if st.has_unsent() {
            tracing::warn!(ino, "last close of a file whose size report failed");
        }
        inodes.remove(&ino);
        true
    }

    /// Learns from a new inode `attr` made by `creds` whether the MDS squashes this client's
    /// root (then root's inodes belong to another uid).
    pub(super) fn note_new_inode(&self, creds: &Creds, attr: &Attr) {
        if creds.uid == 0 {
            self.root_unsquashed.store(attr.uid == 0, Ordering::Relaxed);
        }
    }

    /// Keeps an owner, mode or time change of `ino` by `creds` until the next report, if
    /// this client has the file open for writing and [`pending::fold`] takes it; returns
    /// the attributes it leaves (from `current`, as this client shows them now). Root's
    /// changes are kept only while root is known not to be squashed: the rules would
    /// allow what a squashing MDS refuses.
    pub(super) fn keep_setattr(
        &self,
        ino: Ino,
        creds: &Creds,
        current: &Attr,
        set: &rustre_proto::msg::mds::SetAttr,
        now: Timestamp,
    ) -> Option<Attr> {
        if creds.uid == 0 && !self.root_unsquashed.load(Ordering::Relaxed) {
            return None;
        }
        let mut inodes = lock(&self.inodes);
        let st = inodes
            .get_mut(&ino)
            .filter(|s| s.writers > 0 && !s.evicted)?;
        let kept = pending::fold(st.pending.as_ref(), creds, current, set, now)?;
        let mut shown = current.clone();
        kept.overlay(&mut shown);
        st.pending = Some(kept);
        Some(shown)
    }

    /// Whether changes of `ino` are kept ([`Files::keep_setattr`]).
    pub(super) fn has_pending(&self, ino: Ino) -> bool {
        lock(&self.inodes)
            .get(&ino)
            .is_some_and(|s| s.pending.is_some())
    }

    /// The changes kept for `ino`, to send them.
    pub(super) fn pending(&self, ino: Ino) -> Option<PendingAttrs> {
        lock(&self.inodes).get(&ino)?.pending.clone()
    }

    /// `sent` reached the MDS (or was refused there): forgets it, unless more changes were
    /// kept since.
    pub(super) fn sent_pending(&self, ino: Ino, sent: &PendingAttrs) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            if st.pending.as_ref().is_some_and(|p| p.same_as(sent)) {
                st.pending = None;
            }
        }
    }

    /// True when a write reaching `end` of open file `ino` needs room from its project's
    /// quota first: the file is in a project, and `end` is past both the size known and
    /// the room reserved.
    pub(super) fn needs_quota_room(&self, ino: Ino, end: u64) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| {
            st.project != rustre_proto::msg::quota::NO_PROJECT && end > st.size.max(st.quota_room)
        })
    }

    /// The MDS reserved room up to `end` for writes of `ino`.
    pub(super) fn set_quota_room(&self, ino: Ino, end: u64) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            st.quota_room = st.quota_room.max(end);
        }
    }

    /// Inodes with unreported writes.
    pub(super) fn dirty_inodes(&self) -> Vec<Ino> {
        let inodes = lock(&self.inodes);
        inodes
            .iter()
            .filter(|(_, s)| s.has_unsent())
            .map(|(i, _)| *i)
            .collect()
    }
}

#[cfg(test)]
mod tests;

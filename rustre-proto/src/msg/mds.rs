//! MDS messages: the namespace, inodes, xattrs, opens and client sessions.

use serde::{Deserialize, Serialize};

use super::fsck::{FsckAnswer, FsckOp};
use super::migrate::{MigratePlan, MigrateStep, MigrateTarget};
use super::quota::{QuotaInfo, QuotaLimits};
use super::{Attr, Capacity, Creds, FileKind, Ino, LayoutSpec, StripeSet, Timestamp};
use crate::Error;

/// `Rename` flag: fail with EEXIST if the target exists (RENAME_NOREPLACE).
pub const RENAME_NOREPLACE: u32 = 1;
/// `Rename` flag: swap source and target atomically (RENAME_EXCHANGE).
pub const RENAME_EXCHANGE: u32 = 2;
/// `Rename` flag: leave a whiteout (a character device 0/0) at the source's name, in the same
/// transaction (RENAME_WHITEOUT, what overlayfs asks of its upper directory). Root only.
pub const RENAME_WHITEOUT: u32 = 4;
/// `SetXattr` flag: fail if the attribute exists (XATTR_CREATE).
pub const XATTR_CREATE: u32 = 1;
/// `SetXattr` flag: fail if the attribute does not exist (XATTR_REPLACE).
pub const XATTR_REPLACE: u32 = 2;
/// Largest xattr value, as Linux's XATTR_SIZE_MAX.
pub const XATTR_VALUE_MAX_BYTES: usize = 64 << 10;
/// Longest xattr name, as Linux's XATTR_NAME_MAX.
pub const XATTR_NAME_MAX_BYTES: usize = 255;
/// Most entries one `Readdir` returns.
pub const READDIR_MAX_ENTRIES: u32 = 4096;
/// Most inodes one `Release` call drops an open of.
pub const RELEASE_MAX_INOS: usize = 256;
/// Most directories one `ReturnDirCaps` names.
pub const RETURN_DIR_CAPS_MAX: usize = 1024;
/// Most changes one `Batch` carries.
pub const BATCH_MAX_OPS: usize = 64;
/// Most changes one `Watch` answer carries (the rest come with the next one).
pub const WATCH_MAX_CHANGES: usize = 1024;
/// Longest an MDS holds a `Watch` that has nothing to report before answering empty.
pub const WATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// relatime: an atime this old is moved by a read even when newer than mtime and ctime.
pub const RELATIME_MAX_AGE_SECS: i64 = 24 * 60 * 60;

/// Linux's relatime rule: a read at `now` moves the atime of `a` when that atime is not
/// after its mtime or its ctime, or is [`RELATIME_MAX_AGE_SECS`] old.
pub fn relatime_due(a: &Attr, now: Timestamp) -> bool {
    a.atime <= a.mtime || a.atime <= a.ctime || now.sec - a.atime.sec >= RELATIME_MAX_AGE_SECS
}

/// Linux's `__FMODE_EXEC`, in the flags of the open the kernel makes of a file it is about
/// to execute (with O_RDONLY); FUSE passes it on. Such an open asks execute permission,
/// not read.
pub const FMODE_EXEC: i32 = 0x20;

/// One call to the MDS: who asks, in which session, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MdsRequest {
    pub creds: Creds,
    /// The client's session (0 before it has one).
    pub session: u64,
    /// For calls that change something: a number unique within the session, so a retry
    /// of a call that already committed gets the recorded answer instead of running again.
    /// 0 = not recorded.
    pub seq: u64,
    pub op: MdsOp,
}

/// How a time attribute is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeSet {
    /// The server's current time (UTIME_NOW).
    Now,
    At(Timestamp),
}

/// Attribute changes of a setattr; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// True when the caller acts through a handle opened for writing (ftruncate): the
    /// write-permission check was done at open.
    pub via_write_handle: bool,
}

/// Metadata operations. Names are single path components, checked by the MDS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MdsOp {
    /// Starts a client session; its lease is renewed by `RenewSession`.
    OpenSession {
        client: String,
    },
    RenewSession,
    /// Ends the session: its opens are released.
    CloseSession,
    Lookup {
        parent: Ino,
        name: String,
    },
    GetAttr {
        ino: Ino,
    },
    SetAttr {
        ino: Ino,
        set: SetAttr,
    },
    /// Creates a regular file; with `exclusive`, an existing name is EEXIST, otherwise it is
    /// opened. With `open_flags`, the file is also opened in the caller's session.
    /// Answered with `Created`.
    /// In `Create`, `Mkdir` and `Mknod`, `umask` is the creating process's: its bits are
    /// cleared from `perm` unless `parent` has a default ACL, which then decides the new
    /// inode's permissions with `perm` (as Linux's `posix_acl_create`); 0 when `perm` is
    /// already final.
    Create {
        parent: Ino,
        name: String,
        perm: u32,
        umask: u32,
        exclusive: bool,
        open_flags: Option<i32>,
        layout: Option<LayoutSpec>,
    },
    /// With `want_cap`, the caller follows its feed and gives back what the MDS recalls: an
    /// MDS that grants directory capabilities answers `Created { capped: true, .. }`, and
    /// the new directory is the caller's session's until recalled (docs/metadata-cache.md,
    /// "Directory capabilities").
    Mkdir {
        parent: Ino,
        name: String,
        perm: u32,
        umask: u32,
        want_cap: bool,
    },
    Mknod {
        parent: Ino,
        name: String,
        kind: FileKind,
        perm: u32,
        umask: u32,
        rdev: u64,
    },
    Symlink {
        parent: Ino,
        name: String,
        target: String,
    },
    Readlink {
        ino: Ino,
    },
    Link {
        ino: Ino,
        new_parent: Ino,
        new_name: String,
    },
    /// Answered with `NamesChanged`, as `Rmdir` and `Rename` are.
    Unlink {
        parent: Ino,
        name: String,
    },
    Rmdir {
        parent: Ino,
        name: String,
    },
    Rename {
        parent: Ino,
        name: String,
        new_parent: Ino,
        new_name: String,
        flags: u32,
    },
    /// Entries after `after` (a name cookie), in name order; `plus` adds attributes.
    Readdir {
        ino: Ino,
        after: Option<String>,
        limit: u32,
        plus: bool,
    },
    /// Opens a file: checks permission for `flags`, applies O_TRUNC, records the open.
    Open {
        ino: Ino,
        flags: i32,
    },
    /// Drops one open of each of `inos` (an inode twice: two opens) by this session; at
    /// most [`RELEASE_MAX_INOS`].
    Release {
        inos: Vec<Ino>,
    },
    /// A writer reports the size and mtime its data reached, and the stripes it wrote since
    /// its last report (writes every live copy acknowledged, so their objects exist: the
    /// MDS adds them to `Layout::written`).
    ReportSize {
        ino: Ino,
        size: u64,
        mtime: Timestamp,
        truncate_version: u64,
        written: StripeSet,
        /// `(stripe, bytes)`: the allocation of copy 0 of stripes it wrote, as the OSTs last
        /// answered it (`Layout::allocated`).
        allocated: Vec<(u32, u64)>,
    },
    /// Checks `mask` (R_OK=4, W_OK=2, X_OK=1, F_OK=0) for the caller.
    Access {
        ino: Ino,
        mask: u32,
    },
    StatFs,
    GetXattr {
        ino: Ino,
        name: String,
    },
    SetXattr {
        ino: Ino,
        name: String,
        value: Vec<u8>,
        flags: u32,
    },
    ListXattr {
        ino: Ino,
    },
    RemoveXattr {
        ino: Ino,
        name: String,
    },
    /// Sets (or with `None` clears) a directory's default layout for new files.
    SetDirLayout {
        ino: Ino,
        spec: Option<LayoutSpec>,
    },
    GetDirLayout {
        ino: Ino,
    },
    /// A writer could not write the copies in `slots` of `ino`'s layout (whose version it
    /// held as `version`): marks them stale and bumps the layout version, in one durable
    /// transaction, and answers the new attributes. Refused when it would leave a stripe
    /// with no up-to-date copy.
    MarkStale {
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    },
    /// Moves every copy of `ino` held by OST `ost` onto another OST that is up and holds no
    /// copy of that stripe, marked stale so that resync fills it; answers the new
    /// attributes (unchanged when the file has no copy there). Unreplicated stripes on
    /// `ost` cannot be moved: `Invalid`.
    MoveCopies {
        ino: Ino,
        ost: u32,
    },
    /// The disk of OST `ost` was replaced (`rustre ost replace`): the copies of `ino` there
    /// lost their data. Marks each one stale, even the last up-to-date copy of a stripe
    /// (unlike `MarkStale`): such a stripe then has no up-to-date copy and its reads and
    /// writes fail with EIO, never returning the new disk's holes as zeros. Copies of
    /// stripes to which the file's size gives no byte lost nothing and are left alone.
    /// Answers the new attributes. Root only.
    MarkLost {
        ino: Ino,
        ost: u32,
    },
    /// Waits until every change this MDS acknowledged so far is on disk (what fsync and
    /// fsyncdir need from an MDS running relaxed; a durable MDS answers at once).
    SyncMeta,
    /// The changes this MDS committed after number `after` of its feed `instance`
    /// (instance 0: none known yet), for clients' metadata caches. Answered at once when
    /// there are some, otherwise after at most [`WATCH_WAIT`]: `Changes`.
    Watch {
        instance: u64,
        after: u64,
    },
    /// `rustre fsck`'s reads of the metadata store and its repairs (root only):
    /// `MdsResponse::Fsck`.
    Fsck(FsckOp),
    /// The stale copies this MDS's resync worker tried to refill and could not (the target
    /// OST full or failing, say), for `rustre status`: `MdsResponse::StuckCopies`.
    StuckCopies,
    /// A read or a listing through the caller's open of `ino` moved its atime to `atime`
    /// (the reader's clock, as writers' mtimes are). No ctime change and no permission
    /// check beyond the open. With `relative`, only when [`relatime_due`] says so (the
    /// caller did not know the inode's times). Answered with the attributes.
    Accessed {
        ino: Ino,
        atime: Timestamp,
        relative: bool,
    },
    /// Sets, changes or (with [`LockType::Unlock`]) drops the caller's lock on `range` of
    /// `ino` (docs/locks.md). The owner is `(session, owner)`. A conflict is answered with
    /// `MdsResponse::Lock(LockAnswer::Conflict)`; with `wait`, the MDS first holds the call
    /// for up to [`LOCK_WAIT_ROUND`] and answers at once when the conflict goes.
    SetLock {
        ino: Ino,
        lock: LockSpec,
        wait: bool,
    },
    /// The first lock of another owner that would conflict with `lock` (F_GETLK):
    /// `MdsResponse::Lock(LockAnswer::Conflict)`, or `Granted` when there is none.
    GetLock {
        ino: Ino,
        lock: LockSpec,
    },
    /// Drops every lock of `(session, owner)` on `ino` (a close by a lock owner).
    UnlockOwner {
        ino: Ino,
        owner: u64,
    },
    /// An O_APPEND write of `len` bytes: reserves the bytes at the end of regular file
    /// `ino` and moves the MDS's size past them, in one transaction, so that appends from
    /// any number of clients never overlap (docs/mount.md, "Appends"). The end is the larger
    /// of the MDS's size and `known_size` (what the caller wrote and has not reported yet),
    /// the latter only when `truncate_version` is the file's. Cut short at what the stripes
    /// hold (`Layout::max_file_size`), EFBIG when nothing fits. Answered with `Reserved`;
    /// a retry of the same request gets the same bytes. With `want_lease`, the MDS may also
    /// lease the end to the caller's session (`Reserved::lease_ms`). While another
    /// session's lease is being taken back, nothing is reserved (`Reserved::retry`).
    ReserveAppend {
        ino: Ino,
        len: u64,
        known_size: u64,
        truncate_version: u64,
        want_lease: bool,
    },
    /// Gives back this session's append lease of `ino`: its appends reached `end` (in
    /// truncate version `truncate_version`), which the size moves to. `Done`.
    ReturnAppendLease {
        ino: Ino,
        end: u64,
        truncate_version: u64,
    },
    /// Sets the quota of directory `ino` (docs/quotas.md): it becomes a project's root, and
    /// everything under it is counted. `Quota`. An administrator's operation.
    QuotaSet {
        ino: Ino,
        limits: QuotaLimits,
    },
    /// The quota of the project `ino` belongs to (`Quota(None)`: none). Also what `statfs`
    /// on a mount asks, to show the quota as the file system's size.
    QuotaGet {
        ino: Ino,
    },
    /// Every project's quota, by project id, at most [`QUOTA_LIST_MAX`] after `after`.
    /// `Quotas`.
    QuotaList {
        after: Ino,
    },
    /// A writer asks for room to grow file `ino` to `end` bytes before writing there,
    /// `want` (>= `end`) if the quota allows. `QuotaRoom` with the end granted (at least
    /// `end`), or EDQUOT. Files in no project get `u64::MAX`.
    QuotaReserve {
        ino: Ino,
        end: u64,
        want: u64,
    },
    /// Begins moving regular file `ino` to the layout `target` asks for (docs/migrate.md):
    /// records the target and answers `Migration` with the slots to fill. An
    /// administrator's operation; `Busy` while another migration of the file is alive.
    MigrateBegin {
        ino: Ino,
        target: MigrateTarget,
    },
    /// Gives back the capabilities on these directories (at most [`RETURN_DIR_CAPS_MAX`])
    /// that the caller's session holds, once its changes answered ahead in them are
    /// answered: the requests the MDS holds for them go on. `Done`.
    ReturnDirCaps {
        dirs: Vec<Ino>,
    },
    /// Calls sent together behind the changes the caller answered ahead (at most
    /// [`BATCH_MAX_OPS`], each of a kind [`in_batch`] allows): each runs in order as if
    /// sent alone; a change in its own transaction, recorded under its own request number
    /// (the `seq` of the outer request is 0), so a retried batch replays the recorded
    /// answers of those that committed. Answered with `Batch`, one answer per call in
    /// order; on a durable MDS after every change of the batch is on disk.
    Batch {
        ops: Vec<Numbered>,
    },
    /// One step of the migration `token` of `ino`. `Done`, or `Attr` for `Commit`.
    MigrateStep {
        ino: Ino,
        token: u64,
        step: MigrateStep,
    },
    /// A writer's close-time size report (as `ReportSize`, whose fields these are) and the
    /// owner, mode and time changes it kept until then (as `SetAttr` by the same caller; no
    /// size), applied in that order in one transaction: one round trip and one commit at a
    /// close where there were two. Answered with `ReportedSetAttr`. A change of `set` the
    /// setattr rules refuse (EPERM, EACCES) leaves the attributes as the report left them
    /// and is answered in `ReportedSetAttr::refused`: the report lands either way, as it
    /// did when the two were separate calls. Any other failure fails the whole call, with
    /// nothing applied. Acknowledged after the commit (a durable change), as a setattr.
    ReportAndSetAttr {
        ino: Ino,
        size: u64,
        mtime: Timestamp,
        truncate_version: u64,
        written: StripeSet,
        allocated: Vec<(u32, u64)>,
        set: SetAttr,
    },
    /// `Accessed` for each of `updates` (at most [`ACCESSED_MAX_INODES`]), in one
    /// transaction: a client reading many files sends their atimes together. Answered with
    /// `Attrs`, one entry per update in order (`None`: the inode is gone).
    AccessedMany {
        updates: Vec<AtimeUpdate>,
    },
    /// Data on the MDS (docs/data-on-mds.md): the close of a file this session made and
    /// sent no byte of to the OSTs, carrying its bytes. The MDS keeps `data` (the file's
    /// bytes from offset 0; past them up to `size` the file reads as zeros) in its store
    /// instead of the objects, takes the size and mtime as `ReportSize` does and applies
    /// `set` as `ReportAndSetAttr` does (answered with `ReportedSetAttr`). Refused with
    /// `InlineRefused`, nothing changed, when the MDS keeps no data (or not this much,
    /// [`INLINE_MAX_BYTES`] at most), another session holds the file open, or the file has
    /// written stripes: the caller then writes the bytes to the OSTs and reports as usual.
    CloseInline {
        ino: Ino,
        size: u64,
        mtime: Timestamp,
        truncate_version: u64,
        data: bytes::Bytes,
        set: SetAttr,
    },
    /// The bytes of a file whose data is on the MDS. Answered with `InlineData`.
    ReadInline {
        ino: Ino,
    },
    /// Moves the bytes of a file whose data is on the MDS to its objects (every copy,
    /// synced), so the caller may write them: a handle that was open before its data went
    /// to the MDS (a close through one descriptor of several). Answered with `Attr`, the
    /// file's attributes after the move (nothing to do: as they are).
    Spill {
        ino: Ino,
    },
    /// Opens directory `ino` for listing (needs read permission), in one call: answered
    /// with `DirOpened`, its attributes, the inode its `..` names, and the first `limit`
    /// entries with their attributes (as `Readdir { plus: true }` from the start).
    OpenDir {
        ino: Ino,
        limit: u32,
    },
}

/// Most bytes of one file the MDS keeps in its store (`MdsOp::CloseInline`); an MDS may be
/// set to keep fewer (`OpenSession`'s answer says how many).
pub const INLINE_MAX_BYTES: usize = 64 << 10;

/// Most atime updates one `AccessedMany` carries.
pub const ACCESSED_MAX_INODES: usize = 256;

/// One atime update of [`MdsOp::AccessedMany`], as [`MdsOp::Accessed`] has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtimeUpdate {
    pub ino: Ino,
    pub atime: Timestamp,
    pub relative: bool,
}

/// Most quotas one `QuotaList` answer carries.
pub const QUOTA_LIST_MAX: usize = 1024;

/// Longest the MDS holds a waiting `SetLock` before answering `Conflict` (the client asks
/// again, after checking that its caller was not interrupted).
pub const LOCK_WAIT_ROUND: std::time::Duration = std::time::Duration::from_secs(1);

/// The kind of a lock: byte-range (fcntl, including OFD locks) or whole-file (flock).
/// Locks of different kinds never conflict with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockKind {
    Posix,
    Flock,
}

/// What a lock request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockType {
    Read,
    Write,
    Unlock,
}

/// A lock request or a held lock: `start..=end` (inclusive, as FUSE and `struct flock`
/// count; `end` = `u64::MAX` or `i64::MAX` for "to the end of the file").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSpec {
    pub kind: LockKind,
    pub typ: LockType,
    pub start: u64,
    pub end: u64,
    /// The lock owner within the caller's session (FUSE's lock owner).
    pub owner: u64,
    /// The process that asked, reported by F_GETLK.
    pub pid: u32,
}

/// The outcome of `SetLock` or `GetLock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockAnswer {
    /// Granted (`SetLock`), or nothing conflicts (`GetLock`).
    Granted,
    /// Another owner holds this conflicting lock (its owner field is meaningless to the
    /// caller: only kind, type, range and pid are reported).
    Conflict(LockSpec),
    /// Waiting would close a cycle of owners waiting for each other (EDEADLK).
    Deadlock,
}

/// Most stuck copies one MDS keeps and reports (copies failing past that are not listed).
pub const STUCK_COPIES_MAX: usize = 1024;

/// A stale copy the resync worker failed to refill, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckCopy {
    pub ino: Ino,
    pub slot: u32,
    /// The OST the copy is on.
    pub ost: u32,
    /// The last error.
    pub error: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// Something an MDS changed, as its change feed reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The inode's attributes, xattrs or existence.
    Inode(Ino),
    /// The entry `name` of directory `parent` (added, removed or pointing elsewhere).
    Entry { parent: Ino, name: String },
    /// Anything: forget everything cached.
    All,
    /// Not a change: the MDS asks the session of the entry's `request` (whose sequence
    /// number is 0) to give back its capability on this directory (`ReturnDirCaps`).
    /// Other watchers ignore it.
    Recall(Ino),
}

/// A change on the feed and the request that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedChange {
    pub change: Change,
    /// The request's `(session, seq)`; `(0, 0)` for the MDS's own work (resync, expired
    /// sessions). Lets a client tell its own changes, whose results it already holds.
    pub request: (u64, u64),
}

/// One answer to `Watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The feed's instance (a new one each time the MDS starts).
    pub instance: u64,
    /// The number of the last change included: the next `Watch` asks after it.
    pub last: u64,
    /// True when changes between the asked number and these were lost (another instance,
    /// or the feed no longer holds them): the watcher must forget everything it cached.
    pub lost: bool,
    /// At most [`WATCH_MAX_CHANGES`].
    pub changes: Vec<FeedChange>,
}

/// An inode a change of names touched, as the change left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    pub ino: Ino,
    /// Its attributes, or `None` when the change destroyed it (its last name went and no
    /// one had it open).
    pub attr: Option<Attr>,
}

/// What an `Unlink`, `Rmdir` or `Rename` left, from its own transaction
/// ([`MdsResponse::NamesChanged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamesChanged {
    /// `parent`, then a rename's `new_parent` when it is another directory.
    pub dirs: Vec<Attr>,
    /// The inode `name` named: the one unlinked or removed, or the one renamed.
    pub source: Touched,
    /// A rename's: the inode `new_name` named before, replaced (one link fewer, or gone) or
    /// exchanged; the source itself when both names were links of one inode (nothing
    /// changed). `None`: `new_name` was free, or not a rename.
    pub target: Option<Touched>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub ino: Ino,
    pub kind: FileKind,
    /// Present for `Readdir { plus: true }`.
    pub attr: Option<Attr>,
}

/// File-system statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    /// Sum over the OSTs that are up.
    pub capacity: Capacity,
    /// Inodes in use.
    pub files: u64,
    /// Inodes that may still be created.
    pub files_free: u64,
}

/// Answers of the MDS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MdsResponse {
    Session {
        id: u64,
        lease_ms: u64,
        /// Most bytes of a file this MDS keeps in its store (`MdsOp::CloseInline`); 0: none.
        inline_max: u32,
    },
    Attr(Attr),
    Target(String),
    Entries {
        entries: Vec<DirEntry>,
        eof: bool,
    },
    StatFs(FsStats),
    Xattr(Vec<u8>),
    XattrNames(Vec<String>),
    DirLayout(Option<LayoutSpec>),
    Changes(ChangeBatch),
    Done,
    Fsck(FsckAnswer),
    StuckCopies(Vec<StuckCopy>),
    Lock(LockAnswer),
    /// `ReserveAppend`: the caller writes `len` bytes at `offset`; `attr` is the file with
    /// them counted in its size. With `lease_ms` > 0, the caller's session holds the end for
    /// that long: its next appends go after these bytes, up to `lease_limit`, without asking
    /// (docs/mount.md, "Appends"). With `retry`, nothing was reserved: another client's
    /// lease is being taken back, and the caller asks again in a moment.
    Reserved {
        offset: u64,
        len: u64,
        attr: Attr,
        lease_ms: u64,
        lease_limit: u64,
        retry: bool,
    },
    /// `QuotaSet`, `QuotaGet`.
    Quota(Option<QuotaInfo>),
    /// `QuotaList`: in project order; fewer than [`QUOTA_LIST_MAX`] means the end.
    Quotas(Vec<QuotaInfo>),
    /// `QuotaReserve`: the file may grow to this end without asking again.
    QuotaRoom(u64),
    /// `MigrateBegin`.
    Migration(MigratePlan),
    /// `ReportAndSetAttr`: the attributes after the report and the changes applied; when
    /// the setattr rules refused the changes, the attributes after the report alone and
    /// the refusal (what a separate `SetAttr` would have been answered).
    ReportedSetAttr {
        attr: Attr,
        refused: Option<Error>,
    },
    /// `Create`, `Mkdir`, `Mknod` and `Symlink`: the new inode's attributes, and its
    /// directory's as the same transaction left them (the create's mtime and ctime; as they
    /// were when an existing file was opened), so the caller's cache knows the directory's
    /// attributes without asking for them.
    Created {
        attr: Attr,
        /// Boxed: two attributes would make every answer as large.
        parent: Box<Attr>,
        /// Whether this call made the file (a non-exclusive create may open an existing
        /// one): a new inode has no extended attributes, so the caller knows the answer to
        /// the kernel's `security.capability` probe before the first write.
        new: bool,
        /// `Mkdir` with `want_cap`: the caller's session holds the new directory's
        /// capability.
        capped: bool,
    },
    /// `Unlink`, `Rmdir` and `Rename`: the directories and inodes the change touched, as
    /// the same transaction left them, so the caller's cache knows them without asking
    /// (the kernel's getattr of the directory after each unlink, under
    /// `default_permissions`). Boxed: it holds several attributes.
    NamesChanged(Box<NamesChanged>),
    /// `AccessedMany`: each inode's attributes after its update, in order (`None`: gone).
    Attrs(Vec<Option<Attr>>),
    /// `ReadInline`, and an `Open` for reading only of a file whose data is on the MDS:
    /// the file's attributes and its bytes (`None`: its data is not on the MDS, or no
    /// longer: read its objects).
    InlineData {
        attr: Attr,
        data: Option<bytes::Bytes>,
    },
    /// `CloseInline` was refused; nothing changed.
    InlineRefused,
    /// `OpenDir`: `parent` is the inode `..` names (the directory itself at the root, and
    /// when the caller may not search the directory: `..` cannot be looked up then).
    DirOpened {
        attr: Attr,
        parent: Ino,
        entries: Vec<DirEntry>,
        eof: bool,
    },
    /// `Batch`: each change's answer, in order.
    Batch(Vec<Result<MdsResponse, Error>>),
}

/// How a call may go in a `Batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InBatch {
    /// A change (`Unlink`, `Rename`, `Rmdir`): numbered, any number of them.
    Change,
    /// A read (`Lookup`, `GetAttr`, `OpenDir`, `Readdir`): at most one, the batch's last,
    /// so that a batch's answer stays within one frame.
    Read,
}

/// How `op` may go in a `Batch` (`None`: not at all).
pub fn in_batch(op: &MdsOp) -> Option<InBatch> {
    match op {
        MdsOp::Unlink { .. } | MdsOp::Rename { .. } | MdsOp::Rmdir { .. } => Some(InBatch::Change),
        MdsOp::Lookup { .. }
        | MdsOp::GetAttr { .. }
        | MdsOp::OpenDir { .. }
        | MdsOp::Readdir { .. } => Some(InBatch::Read),
        _ => None,
    }
}

/// One call of a `Batch` and the request number it is recorded under (0: a read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Numbered {
    pub seq: u64,
    pub op: MdsOp,
}

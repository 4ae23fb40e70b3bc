//! The FUSE adapter: a thin `fuser::Filesystem` over the client library.
//!
//! Every method only converts its arguments (the caller's uid, gid and supplementary groups
//! into [`Creds`], FUSE ids and flags into plain numbers), clones the `Arc<Client>`, starts
//! the call on fuser's thread, where it runs until it first waits (its request to a server
//! written), goes on on the tokio runtime (`client::first_poll`) and replies once from there.
//! fuser's dispatch loop never waits on the network, and requests run concurrently, at most
//! [`MAX_INFLIGHT_REQUESTS`] at once. What the client can answer without waiting for
//! anything is answered on fuser's thread instead, saving the hop: lookups, attributes and
//! xattr probes its caches know, setattrs kept until close, writes that only join the
//! write-back buffer, flushes with nothing to flush. File-system logic (handles, sizes, listings) lives in
//! [`crate::client`]; errors become errnos in one place, [`errno`].
//!
//! ## Layout
//! - this file: configuration, the conversions and the spawn helper.
//! - [`ops`]: the `impl fuser::Filesystem`.
//! - [`locks`]: file locks through the MDS, and the kernel's caches dropped on a lock.
//! - [`inval`]: other clients' changes, from the change feed, invalidated in the kernel.
//! - [`wbcache`]: the kernel's write-back cache (`-o writeback_cache`): asked for at init,
//!   and the times it writes back.
//! - [`write`]: the write, on fuser's thread or the runtime.

mod inval;
mod locks;
mod ops;
mod replies;
mod wbcache;
mod write;

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo, Notifier, Request};
use rustre_proto::msg::{Attr, Creds, FileKind, Timestamp, MAX_GROUPS};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::client::{first_poll, AsyncDirops, Client};

/// FUSE requests served at once; more wait for a permit on the runtime (never in fuser's
/// dispatch loop).
pub const MAX_INFLIGHT_REQUESTS: usize = 256;
/// Largest write the kernel sends in one request (negotiated at init).
pub const MAX_WRITE_BYTES: u32 = 1 << 20;
/// Asynchronous requests (read-ahead, ...) the kernel keeps in flight.
pub const MAX_BACKGROUND_REQUESTS: u16 = 64;
/// Block size reported by statfs.
pub const STATFS_BLOCK_BYTES: u32 = 4096;
/// Longest name reported by statfs.
pub const STATFS_NAME_MAX: u32 = 255;
/// Default attribute and entry cache lifetime (as libfuse's).
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// How the adapter behaves; set from mount options.
#[derive(Debug, Clone)]
pub struct FuseConfig {
    /// How long the kernel may cache attributes.
    pub attr_ttl: Duration,
    /// How long the kernel may cache name lookups.
    pub entry_ttl: Duration,
    /// How long the kernel may remember that a name does not exist (0: not at all;
    /// `None`: as long as `entry_ttl`).
    pub negative_ttl: Option<Duration>,
    /// Bytes the client's page cache and write-back buffers may hold (`cache_size=`;
    /// 0 sends every read and write straight to the OSTs).
    pub page_cache_bytes: u64,
    /// Ask the kernel for its write-back cache (`-o writeback_cache`; off by default):
    /// writes stay in the kernel's page cache and reach the client in batches, and the
    /// kernel owns the size and mtime of the files it caches (docs/mount.md, "Write-back
    /// cache", says what that costs across mounts).
    pub writeback_cache: bool,
    /// Where an unlink or a rename within a directory is answered before the MDS does
    /// when the metadata cache knows its outcome: by default in the directories this mount
    /// made and holds the capability of (recalled before another client looks into them);
    /// everywhere with `-o async_dirops` (another client's open could come before the
    /// change reaches the MDS); nowhere with `-o noasync_dirops` or on a `sync` mount
    /// (docs/metadata-cache.md, "Unlinks and renames answered ahead").
    pub async_dirops: AsyncDirops,
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig {
            attr_ttl: DEFAULT_TTL,
            entry_ttl: DEFAULT_TTL,
            negative_ttl: None,
            page_cache_bytes: crate::client::DEFAULT_CACHE_BYTES as u64,
            writeback_cache: false,
            async_dirops: AsyncDirops::Capped,
        }
    }
}

/// Where the kernel-notification channel goes once the session exists.
pub type NotifierSlot = Arc<OnceLock<Notifier>>;

/// The mounted file system.
pub struct RustreFs {
    client: Arc<Client>,
    rt: Handle,
    permits: Arc<Semaphore>,
    cfg: FuseConfig,
    notifier: NotifierSlot,
}

impl RustreFs {
    /// An adapter running its calls on the runtime `rt`.
    pub fn new(client: Arc<Client>, rt: Handle, cfg: FuseConfig) -> RustreFs {
        client.set_cache_bytes(usize::try_from(cfg.page_cache_bytes).unwrap_or(usize::MAX));
        client.set_attr_ttl(cfg.attr_ttl);
        client.set_async_dirops(cfg.async_dirops);
        let notifier: NotifierSlot = Arc::default();
        match inval::KernelInval::start(notifier.clone(), client.refresh_holds()) {
            Ok(k) => client.set_kernel_cache(Arc::new(k)),
            // Without it, other clients' changes show once the kernel's TTLs lapse.
            Err(e) => tracing::warn!("no kernel invalidation thread: {e}"),
        }
        RustreFs {
            client,
            rt,
            permits: Arc::new(Semaphore::new(MAX_INFLIGHT_REQUESTS)),
            cfg,
            notifier,
        }
    }

    /// The slot to put the session's notifier in (the session is made after the adapter).
    pub fn notifier_slot(&self) -> NotifierSlot {
        self.notifier.clone()
    }

    /// Runs `fut` once a request permit is free: its first steps here, on fuser's thread,
    /// up to its first wait, the rest on the runtime ([`first_poll`]), so a call to a
    /// server is on the wire before any worker wakes. A reply dropped unsent (a panic, or
    /// the runtime shutting down) makes fuser answer EIO.
    /// `at` names the operation and the inode it is about, for the log line of an error
    /// returned to the application ([`errno`]).
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, at: (&'static str, u64), fut: F) {
        let permits = self.permits.clone();
        let _in = self.rt.enter();
        first_poll::run(
            &self.rt,
            REQUEST.scope(at, async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                fut.await;
            }),
        );
    }
}

/// Close-to-open across clients: when an open finds the file changed since this client
/// last saw it, the kernel's cached attributes (size above all) must not outlive the open.
/// Invalidating only attributes (offset -1) takes no lock an open in flight could hold.
fn drop_cached_attrs(notifier: &NotifierSlot, ino: u64) {
    if let Some(n) = notifier.get() {
        if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
            // ENOENT: the kernel holds no inode to invalidate.
            tracing::trace!(ino, "attribute invalidation: {e}");
        }
    }
}

/// Drops the kernel's cached pages and attributes of `ino` (its data changed in a way the
/// kernel did not see), on a blocking thread after the caller's reply: the invalidation
/// takes page locks a kernel writer may hold while it waits for a FUSE request.
fn drop_cached_data(notifier: NotifierSlot, ino: u64) {
    tokio::task::spawn_blocking(move || {
        if let Some(n) = notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(ino), 0, 0) {
                tracing::trace!(ino, "page invalidation: {e}");
            }
        }
    });
}

tokio::task_local! {
    /// The FUSE operation a spawned request runs and the inode it names (see
    /// `RustreFs::spawn`), read by [`errno`] for its log line.
    static REQUEST: (&'static str, u64);
}

/// The one mapping from client-library errors to errnos. An error that is not the
/// ordinary answer of a file system (ENOENT, EEXIST, EACCES, ...) but a failure of the
/// cluster (EIO, ENOTCONN, ESTALE, ETIMEDOUT, ENOSPC, a refused credential) is logged as
/// one warning line naming the operation, the inode and the error, whose text names the
/// peer that failed: the mount daemon's log is where an operator traces an application's
/// error (docs/operations.md, "Logs").
pub fn errno(e: rustre_proto::Error) -> Errno {
    let n = e.errno();
    if logged_to_operator(&e) {
        let at = REQUEST.try_with(|at| *at).ok();
        let (op, ino) = at.unwrap_or(("cached", 0));
        tracing::warn!(
            "{op} ino {ino}: returned {} to the application: {e}",
            errno_name(n)
        );
    }
    Errno::from_i32(n)
}

/// True for the errors an operator must hear of (see [`errno`]).
fn logged_to_operator(e: &rustre_proto::Error) -> bool {
    use rustre_proto::Error as E;
    matches!(
        e,
        E::Io(_)
            | E::Protocol(_)
            | E::Unavailable(_)
            | E::Corrupt(_)
            | E::Missing(_)
            | E::Fenced(_)
            | E::Stale
            | E::OldEpoch { .. }
            | E::TimedOut
            | E::NoSpace
            | E::Auth(_)
    )
}

/// The symbolic name of the errnos [`logged_to_operator`] lets through.
fn errno_name(n: i32) -> String {
    match n {
        libc::EIO => "EIO".into(),
        libc::ENOTCONN => "ENOTCONN".into(),
        libc::ESTALE => "ESTALE".into(),
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::EACCES => "EACCES".into(),
        n => format!("errno {n}"),
    }
}

/// Who made a request, copied out of it so it can move to the runtime.
#[derive(Debug, Clone, Copy)]
struct Caller {
    uid: u32,
    gid: u32,
    pid: u32,
}

impl Caller {
    fn of(req: &Request) -> Caller {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        }
    }

    /// The caller's credentials. Supplementary groups come from /proc/PID/status (the FUSE
    /// request carries none), at most [`MAX_GROUPS`]; if the process is gone, only the
    /// primary group counts. Root's groups decide nothing (every group check, on the MDS
    /// and in `msg::may_access`, lets root pass first), so they are not read for root: that
    /// file read was a quarter of the client's CPU time in a create storm.
    fn creds(self) -> Creds {
        let groups = if self.uid == 0 {
            Vec::new()
        } else {
            groups_of(self.pid).unwrap_or_default()
        };
        Creds {
            uid: self.uid,
            gid: self.gid,
            groups,
        }
    }
}

/// Supplementary groups of process `pid`, from the `Groups:` line of /proc/PID/status.
fn groups_of(pid: u32) -> Option<Vec<u32>> {
    if pid == 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|g| g.parse().ok())
            .take(MAX_GROUPS)
            .collect(),
    )
}

/// A name (or symlink target) from the kernel as the string the protocol carries: the name
/// itself when it is UTF-8, else its escaped form (`rustre_proto::raw_names`). Never fails:
/// Linux names are any bytes but '/' and NUL, and so are rustre's.
fn name_str(name: &OsStr) -> String {
    rustre_proto::raw_names::encode(name.as_bytes())
}

/// A name (or symlink target) of the protocol as the bytes the kernel gets (borrowed unless
/// it holds escapes).
fn raw_name(name: &str) -> Cow<'_, OsStr> {
    match rustre_proto::raw_names::decode(name) {
        Cow::Borrowed(b) => Cow::Borrowed(OsStr::from_bytes(b)),
        Cow::Owned(v) => Cow::Owned(OsString::from_vec(v)),
    }
}

fn to_system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nsec));
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nanos
    }
}

fn to_timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            // Before the epoch: whole seconds down, nanoseconds up.
            let d = e.duration();
            let mut sec = -(d.as_secs() as i64);
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timestamp { sec, nsec }
        }
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

/// Attributes as the kernel wants them. The preferred I/O size is the stripe size.
fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        // What the objects hold on the OSTs' disks (holes excluded), as writers reported it.
        blocks: a.blocks(),
        atime: to_system_time(a.atime),
        mtime: to_system_time(a.mtime),
        ctime: to_system_time(a.ctime),
        crtime: to_system_time(a.ctime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: a
            .layout
            .as_ref()
            .map_or(STATFS_BLOCK_BYTES, |l| l.stripe_size),
        flags: 0,
    }
}

/// Attributes for an entry listed without them ("." and ".." in readdirplus, whose
/// attributes the kernel ignores), or for a negative entry (inode 0).
fn placeholder_attr(ino: u64, kind: FileKind) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: file_type(kind),
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: STATFS_BLOCK_BYTES,
        flags: 0,
    }
}

/// getxattr/listxattr answer: a size probe (`size` 0) gets the length, a buffer too small
/// gets ERANGE.
pub(super) fn xattr_reply(reply: fuser::ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(fuser::Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

/// The kernel TTLs of answers given now: the mount's, while the change feeds are live
/// (`Client::kernel_ttl`).
impl RustreFs {
    pub(super) fn ttls(&self) -> (std::time::Duration, std::time::Duration) {
        (self.attr_ttl(), self.entry_ttl())
    }

    /// [`Client::read_dir_now`] on this thread, inside the runtime's context.
    fn read_dir_now(&self, fh: u64, offset: u64) -> Option<Vec<crate::client::Listed>> {
        let _rt = self.rt.enter();
        self.client.read_dir_now(fh, offset)
    }

    pub(super) fn attr_ttl(&self) -> std::time::Duration {
        self.client.kernel_ttl(self.cfg.attr_ttl)
    }

    pub(super) fn entry_ttl(&self) -> std::time::Duration {
        self.client.kernel_ttl(self.cfg.entry_ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_both_sides_of_the_epoch() {
        for t in [
            Timestamp { sec: 0, nsec: 0 },
            Timestamp {
                sec: 1_700_000_000,
                nsec: 123,
            },
            Timestamp {
                sec: -1,
                nsec: 999_999_999,
            },
            Timestamp { sec: -100, nsec: 5 },
        ] {
            assert_eq!(to_timestamp(to_system_time(t)), t);
        }
    }

    #[test]
    fn groups_of_this_process() {
        let g = groups_of(std::process::id()).expect("own status readable");
        assert!(g.len() <= MAX_GROUPS);
        assert!(groups_of(0).is_none());
    }

    #[test]
    fn errors_keep_their_errno() {
        assert_eq!(
            i32::from(errno(rustre_proto::Error::NotFound)),
            libc::ENOENT
        );
        assert_eq!(i32::from(errno(rustre_proto::Error::Range)), libc::ERANGE);
    }

    #[test]
    fn only_failures_of_the_cluster_are_logged_for_the_operator() {
        use rustre_proto::Error as E;
        for e in [
            E::Io("x".into()),
            E::Unavailable("x".into()),
            E::Stale,
            E::TimedOut,
        ] {
            assert!(logged_to_operator(&e), "{e:?}");
        }
        for e in [
            E::NotFound,
            E::Exists,
            E::Access,
            E::NotEmpty,
            E::Invalid("x".into()),
        ] {
            assert!(!logged_to_operator(&e), "{e:?}");
        }
        assert_eq!(errno_name(libc::EIO), "EIO");
        assert_eq!(errno_name(libc::ENOTCONN), "ENOTCONN");
    }
}

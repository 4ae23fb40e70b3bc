//! The FUSE side of file locks (docs/locks.md): `getlk` and `setlk` converted to
//! [`LockSpec`]s for the client library, and the kernel's cached pages and attributes of a
//! file dropped once a lock on it is granted.
//!
//! fuser 0.18 does not pass FUSE's `lk_flags`: a flock arrives as a whole-file lock owned
//! by the open file, indistinguishable from an OFD lock, so every lock is sent as
//! [`LockKind::Posix`] (as NFS emulates flock with byte-range locks; docs/locks.md).

use std::time::Duration;

use fuser::{Errno, INodeNo, ReplyEmpty, ReplyLock};
use rustre_proto::msg::mds::{LockKind, LockSpec, LockType};

use super::{errno, Caller, NotifierSlot, RustreFs};
use crate::client::LockOutcome;

/// Longest a granted lock's reply waits for the kernel to drop its cached pages of the
/// file (the notification runs on a blocking thread, never in the request's task).
pub(super) const INVAL_WAIT: Duration = Duration::from_secs(2);

/// A FUSE lock request as the protocol carries it; EINVAL for an unknown type.
fn spec(owner: u64, range: (u64, u64), typ: i32, pid: u32) -> Result<LockSpec, Errno> {
    let typ = match typ {
        libc::F_RDLCK => LockType::Read,
        libc::F_WRLCK => LockType::Write,
        libc::F_UNLCK => LockType::Unlock,
        _ => return Err(Errno::EINVAL),
    };
    Ok(LockSpec {
        kind: LockKind::Posix,
        typ,
        start: range.0,
        end: range.1,
        owner,
        pid,
    })
}

fn type_of(s: &LockSpec) -> i32 {
    match s.typ {
        LockType::Read => libc::F_RDLCK,
        LockType::Write => libc::F_WRLCK,
        LockType::Unlock => libc::F_UNLCK,
    }
}

/// Drops the kernel's cached pages and attributes of `ino` from a blocking thread, waiting
/// at most [`INVAL_WAIT`] for it.
async fn drop_kernel_cache(notifier: NotifierSlot, ino: u64) {
    let task = tokio::task::spawn_blocking(move || {
        if let Some(n) = notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(ino), 0, 0) {
                tracing::trace!(ino, "invalidation after a lock: {e}");
            }
        }
    });
    if tokio::time::timeout(INVAL_WAIT, task).await.is_err() {
        tracing::warn!(ino, "the kernel took long to drop its cache after a lock");
    }
}

impl RustreFs {
    /// `getlk`: the conflicting lock of another owner, or F_UNLCK.
    pub(super) fn get_lock(
        &self,
        who: Caller,
        ino: u64,
        owner: u64,
        range: (u64, u64),
        typ: i32,
        reply: ReplyLock,
    ) {
        let s = match spec(owner, range, typ, who.pid) {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let c = self.client.clone();
        self.spawn(("getlk", ino), async move {
            match c.test_lock(&who.creds(), ino, s).await {
                Ok(LockOutcome::Conflict(h)) => reply.locked(h.start, h.end, type_of(&h), h.pid),
                Ok(_) => reply.locked(s.start, s.end, libc::F_UNLCK, 0),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    /// `setlk`: sets, changes or drops a lock, waiting (`sleep`) or not; `(typ, pid)` as
    /// the lock request names them (`who.pid` is the calling thread, watched for signals).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_lock(
        &self,
        who: Caller,
        (fh, ino): (u64, u64),
        owner: u64,
        range: (u64, u64),
        (typ, pid): (i32, u32),
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let s = match spec(owner, range, typ, pid) {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let (c, notifier) = (self.client.clone(), self.notifier.clone());
        self.spawn(("setlk", ino), async move {
            match c.set_lock(&who.creds(), (fh, ino), s, sleep, who.pid).await {
                Ok(LockOutcome::Granted) => {
                    if s.typ != LockType::Unlock {
                        drop_kernel_cache(notifier, ino).await;
                    }
                    reply.ok()
                }
                Ok(LockOutcome::Conflict(_)) => reply.error(Errno::EAGAIN),
                Ok(LockOutcome::Deadlock) => reply.error(Errno::EDEADLK),
                Ok(LockOutcome::Interrupted) => reply.error(Errno::EINTR),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    /// A close by lock owner `owner` (FLUSH): its locks on `ino` go at the MDS, after
    /// this client's writes of the file. Then `then` runs.
    pub(super) fn unlock_owner_then<F>(&self, who: Caller, ino: u64, owner: u64, then: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let c = self.client.clone();
        self.spawn(("flush", ino), async move {
            if let Err(e) = c.unlock_owner(&who.creds(), ino, owner).await {
                tracing::warn!(ino, "dropping a closed owner's locks: {e}");
            }
            then.await
        });
    }

    /// The last close of handle `fh` (RELEASE, naming `flock_owner` if a flock was taken
    /// through it): the open file's locks go at the MDS. Then `then` runs.
    pub(super) fn release_locks_then<F>(
        &self,
        who: Caller,
        (fh, ino): (u64, u64),
        flock_owner: Option<u64>,
        then: F,
    ) where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let c = self.client.clone();
        self.spawn(("release", ino), async move {
            if let Err(e) = c.release_locks(&who.creds(), fh, ino, flock_owner).await {
                tracing::warn!(ino, "dropping a closed file's locks: {e}");
            }
            then.await
        });
    }
}

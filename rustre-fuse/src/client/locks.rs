//! File locks through the MDS (docs/locks.md): flock and fcntl locks asked of the MDS for
//! the owner `(session, FUSE lock owner)`, the waits of blocking requests, and the caches
//! that follow locks.
//!
//! Caches follow locks: before a lock request goes out, this client's buffered writes of
//! the file reach the OSTs and the MDS learns their size ([`Client::report_dirty`]), so a
//! released lock never hides writes the next holder must read; once a lock is granted,
//! the client's cached pages of the file are dropped and its attributes fetched afresh, so
//! what another client wrote under the lock before is what this one reads. (The kernel's
//! copies are dropped by the FUSE adapter, off the request's path.)
//!
//! A blocking request is held by the MDS for up to `LOCK_WAIT_ROUND` at a time; between
//! rounds this client checks whether the waiting process has a signal pending (or is gone)
//! and then answers EINTR ([`signal_pending`]): fuser 0.18 answers the kernel's
//! FUSE_INTERRUPT itself, so this is how a signal reaches a waiting lock request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rustre_proto::msg::mds::{LockAnswer, LockSpec, LockType, MdsOp, MdsResponse};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;

use super::{unexpected, Client};

/// The lock owners that may hold locks on each inode through this client: a close by one
/// of them drops its locks at the MDS; a close by any other sends nothing.
#[derive(Default)]
pub(super) struct LockOwners(Mutex<HashMap<Ino, HashSet<u64>>>);

impl LockOwners {
    fn add(&self, ino: Ino, owner: u64) {
        lock(&self.0).entry(ino).or_default().insert(owner);
    }

    /// Forgets `(ino, owner)`; true when it was known.
    fn take(&self, ino: Ino, owner: u64) -> bool {
        let mut map = lock(&self.0);
        let Some(set) = map.get_mut(&ino) else {
            return false;
        };
        let had = set.remove(&owner);
        if set.is_empty() {
            map.remove(&ino);
        }
        had
    }

    /// Forgets every owner: the session whose locks they were is gone.
    pub(super) fn clear(&self) {
        lock(&self.0).clear();
    }

    fn holds(&self, ino: Ino, owner: u64) -> bool {
        lock(&self.0).get(&ino).is_some_and(|s| s.contains(&owner))
    }
}

/// What a lock request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Granted (or, for a test, nothing in the way).
    Granted,
    /// Another owner holds this lock (EAGAIN, or F_GETLK's answer).
    Conflict(LockSpec),
    /// Waiting would deadlock (EDEADLK).
    Deadlock,
    /// The waiting process got a signal, or is gone (EINTR).
    Interrupted,
}

impl From<LockAnswer> for LockOutcome {
    fn from(a: LockAnswer) -> Self {
        match a {
            LockAnswer::Granted => LockOutcome::Granted,
            LockAnswer::Conflict(c) => LockOutcome::Conflict(c),
            LockAnswer::Deadlock => LockOutcome::Deadlock,
        }
    }
}

/// Whether process (thread) `pid` has a signal pending that it neither blocks nor ignores,
/// or is gone: then a lock request it waits in ends with EINTR.
pub fn signal_pending(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    pending & !mask("SigBlk:") & !mask("SigIgn:") != 0
}

impl Client {
    async fn lock_call(&self, creds: &Creds, op: MdsOp) -> Result<LockAnswer, Error> {
        match self.mds(creds, op).await? {
            MdsResponse::Lock(a) => Ok(a),
            r => Err(unexpected(r)),
        }
    }

    /// Sets, changes or drops a lock on `ino` for `spec.owner` (fcntl F_SETLK/F_SETLKW,
    /// flock) through handle `fh`. With `wait`, waits until granted, a deadlock, or a
    /// signal to thread `waiter` (0: none to watch). A handle evicted with its session
    /// (whose locks the MDS dropped) takes no new lock: EIO, as its reads and writes.
    pub async fn set_lock(
        self: &Arc<Self>,
        creds: &Creds,
        (fh, ino): (u64, Ino),
        spec: LockSpec,
        wait: bool,
        waiter: u32,
    ) -> Result<LockOutcome, Error> {
        if spec.typ != LockType::Unlock {
            self.files.handle(fh)?;
        }
        // What this client wrote goes out before any lock change: a lock released or
        // weakened must not hide writes from the next holder.
        self.report_dirty(ino).await?;
        if spec.typ == LockType::Unlock {
            self.lock_call(
                creds,
                MdsOp::SetLock {
                    ino,
                    lock: spec,
                    wait: false,
                },
            )
            .await?;
            return Ok(LockOutcome::Granted);
        }
        loop {
            let op = MdsOp::SetLock {
                ino,
                lock: spec,
                wait,
            };
            match self.lock_call(creds, op).await? {
                LockAnswer::Granted => break,
                LockAnswer::Conflict(_) if wait => {
                    if signal_pending(waiter) {
                        return Ok(LockOutcome::Interrupted);
                    }
                }
                other => return Ok(other.into()),
            }
        }
        self.lock_owners.add(ino, spec.owner);
        self.drop_cached(creds, ino).await?;
        Ok(LockOutcome::Granted)
    }

    /// F_GETLK: the lock of another owner that stands in the way of `spec`, if any.
    pub async fn test_lock(
        &self,
        creds: &Creds,
        ino: Ino,
        spec: LockSpec,
    ) -> Result<LockOutcome, Error> {
        Ok(self
            .lock_call(creds, MdsOp::GetLock { ino, lock: spec })
            .await?
            .into())
    }

    /// Whether a close by `owner` of `ino` must drop locks at the MDS.
    pub fn may_hold_locks(&self, ino: Ino, owner: u64) -> bool {
        self.lock_owners.holds(ino, owner)
    }

    /// A close by lock owner `owner` (FLUSH of fcntl locks' owner, RELEASE of a flock's):
    /// what this client wrote goes out, then the owner's locks on `ino` are dropped.
    pub async fn unlock_owner(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        owner: u64,
    ) -> Result<(), Error> {
        if !self.lock_owners.take(ino, owner) {
            return Ok(());
        }
        let flushed = self.report_dirty(ino).await;
        let unlocked = match self.mds(creds, MdsOp::UnlockOwner { ino, owner }).await? {
            MdsResponse::Done => Ok(()),
            r => Err(unexpected(r)),
        };
        flushed.and(unlocked)
    }

    /// A lock was granted on `ino`: another client may have changed the file under the
    /// lock before, so cached pages go and the attributes are fetched afresh.
    async fn drop_cached(&self, creds: &Creds, ino: Ino) -> Result<(), Error> {
        self.cache.invalidate(ino);
        self.getattr_from_mds(creds, ino).await.map(|_| ())
    }
}

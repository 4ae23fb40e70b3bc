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

/// The lock owners that may hold locks through this client: by inode (a close by one of
/// them, FLUSH, drops its locks at the MDS; a close by any other sends nothing) and by the
/// handle they were taken through (the last close of the handle, RELEASE, drops those of
/// its owners no FLUSH named: the open file's own, flock and OFD locks, for which the
/// kernel sends no unlock of its own but for flock).
#[derive(Default)]
pub(super) struct LockOwners(Mutex<OwnerState>);

#[derive(Default)]
struct OwnerState {
    by_ino: HashMap<Ino, HashSet<u64>>,
    by_fh: HashMap<u64, (Ino, HashSet<u64>)>,
}

impl LockOwners {
    fn add(&self, fh: u64, ino: Ino, owner: u64) {
        let mut st = lock(&self.0);
        st.by_ino.entry(ino).or_default().insert(owner);
        st.by_fh
            .entry(fh)
            .or_insert_with(|| (ino, HashSet::new()))
            .1
            .insert(owner);
    }

    /// Forgets `(ino, owner)` (its locks on `ino` are being dropped); true when known.
    fn take(&self, ino: Ino, owner: u64) -> bool {
        let mut st = lock(&self.0);
        let Some(set) = st.by_ino.get_mut(&ino) else {
            return false;
        };
        let had = set.remove(&owner);
        if set.is_empty() {
            st.by_ino.remove(&ino);
        }
        for (i, owners) in st.by_fh.values_mut() {
            if *i == ino {
                owners.remove(&owner);
            }
        }
        had
    }

    /// Forgets handle `fh`: its inode and the owners that took locks through it and
    /// still may hold them.
    fn take_handle(&self, fh: u64) -> Option<(Ino, Vec<u64>)> {
        let (ino, owners) = lock(&self.0).by_fh.remove(&fh)?;
        Some((ino, owners.into_iter().collect()))
    }

    /// Forgets every owner: the session whose locks they were is gone.
    pub(super) fn clear(&self) {
        let mut st = lock(&self.0);
        st.by_ino.clear();
        st.by_fh.clear();
    }

    fn holds(&self, ino: Ino, owner: u64) -> bool {
        lock(&self.0)
            .by_ino
            .get(&ino)
            .is_some_and(|s| s.contains(&owner))
    }

    /// Whether owners may still hold locks taken through `fh` (asked at its last close:
    /// an entry left with none is forgotten).
    fn handle_holds(&self, fh: u64) -> bool {
        let mut st = lock(&self.0);
        let holds = st.by_fh.get(&fh).is_some_and(|(_, s)| !s.is_empty());
        if !holds {
            st.by_fh.remove(&fh);
        }
        holds
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
        // Noted before asking: a grant whose answer is lost still goes at the close.
        self.lock_owners.add(fh, ino, spec.owner);
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

    /// Whether the last close of handle `fh` (with `flock_owner`, the owner of a flock
    /// taken through it, if the kernel names one) must drop locks at the MDS.
    pub fn handle_may_hold_locks(&self, fh: u64, ino: Ino, flock_owner: Option<u64>) -> bool {
        self.lock_owners.handle_holds(fh)
            || flock_owner.is_some_and(|o| self.may_hold_locks(ino, o))
    }

    /// The last close of handle `fh` of `ino`: the locks of the open file (flock, named by
    /// the kernel as `flock_owner`, and OFD locks, which it does not name) go at the MDS,
    /// after this client's writes of the file.
    pub async fn release_locks(
        self: &Arc<Self>,
        creds: &Creds,
        fh: u64,
        ino: Ino,
        flock_owner: Option<u64>,
    ) -> Result<(), Error> {
        let mut owners = self
            .lock_owners
            .take_handle(fh)
            .map(|(_, o)| o)
            .unwrap_or_default();
        owners.extend(flock_owner);
        owners.sort_unstable();
        owners.dedup();
        let mut result = Ok(());
        for owner in owners {
            result = result.and(self.unlock_owner(creds, ino, owner).await);
        }
        result
    }

    /// A lock was granted on `ino`: another client may have changed the file under the
    /// lock before, so cached pages go and the attributes are fetched afresh.
    async fn drop_cached(&self, creds: &Creds, ino: Ino) -> Result<(), Error> {
        self.cache.invalidate(ino);
        // The metadata cache may hold a size from before the previous holder's last
        // report (its feed report not here yet), and a getattr asked before the grant may
        // still be on its way: both must go, or the kernel's read after the grant would
        // stop at the old size.
        self.meta_cache.forget_attr(ino);
        self.getattr_from_mds(creds, ino).await?;
        // The caller has the kernel drop its pages and attributes.
        self.kernel_refreshing(ino);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_forgets_a_process_owner_a_release_the_open_files_own() {
        let o = LockOwners::default();
        // Process owner 1 and the open file's own owner 9 lock through handle 5 of inode 7.
        o.add(5, 7, 1);
        o.add(5, 7, 9);
        assert!(o.holds(7, 1) && o.holds(7, 9));
        // A close by process 1 (FLUSH) drops its locks: the release must not again.
        assert!(o.take(7, 1));
        assert!(!o.take(7, 1));
        // Process 1 locks again through another handle: the first handle's release leaves it.
        o.add(6, 7, 1);
        assert!(o.handle_holds(5));
        assert_eq!(o.take_handle(5), Some((7, vec![9])));
        assert!(o.holds(7, 1));
        assert!(!o.handle_holds(5));
        o.clear();
        assert!(!o.holds(7, 1) && !o.handle_holds(6));
    }

    #[test]
    fn a_pending_unblocked_signal_interrupts_and_a_gone_thread_too() {
        // This thread has nothing pending; a pid that does not exist is "gone".
        assert!(!signal_pending(std::process::id()));
        assert!(!signal_pending(0));
        assert!(signal_pending(u32::MAX >> 1));
    }
}

//! File locks through the MDS: flock and fcntl byte-range locks (OFD locks too), enforced
//! for every client of the cluster (docs/locks.md).
//!
//! ## Where the lock table lives, and why
//! In the transactional metadata store, like opens: `lock/{ino}` holds the list of the
//! file's locks ([`Held`]), `session_lock/{session}/{ino}` indexes them by session, and
//! `lock_wait/{session}/{owner}` says what a blocked owner waits for ([`Waiter`], for
//! EDEADLK). Any number of MDS side by side then see one table (DESIGN.md: the MDS are
//! stateless), a lock survives an MDS restart or failover as every committed record does,
//! and a session whose lease runs out loses its locks in the transactions that drop its
//! opens ([`txn::drop_session`]). A lock change is one transaction reading and writing
//! `lock/{ino}`, so two MDS granting conflicting locks at once conflict in the store and
//! one of them retries. Lock changes are acknowledged once durable (a lock is never lost
//! silently by a crash of a relaxed MDS).
//!
//! The owner of a lock is `(session, owner)`: the client's session and FUSE's lock owner
//! (a process's files table for fcntl locks, the open file for flock and OFD locks).
//!
//! ## Waiting
//! A blocking request (F_SETLKW, flock without LOCK_NB) is held by the MDS for up to
//! `LOCK_WAIT_ROUND`: it sleeps on the inode's wake-up ([`serve::Waits`]), which every
//! unlock through this MDS fires, or a back-off of at most [`RECHECK_MAX`] (an unlock
//! through another MDS), and tries again. Then the client asks again.
//!
//! ## Layout
//! - this file: the held locks and the pure conflict, split and merge rules.
//! - [`txn`]: the transaction bodies (set, test, drop an owner's, drop a session's, the
//!   deadlock search). `serve`: the MDS handlers and the wake-ups.

pub mod serve;
#[cfg(test)]
mod tests;
pub mod txn;

use std::time::Duration;

use rustre_proto::msg::mds::{LockKind, LockSpec, LockType};
use rustre_proto::msg::Ino;
use serde::{Deserialize, Serialize};

/// Longest pause between two tries of a waiting lock request (when no unlock through this
/// MDS woke it first).
pub const RECHECK_MAX: Duration = Duration::from_millis(400);
/// First pause between two tries of a waiting lock request.
pub const RECHECK_MIN: Duration = Duration::from_millis(25);
/// Most owners the deadlock search visits (a longer chain is not reported as a deadlock).
pub const DEADLOCK_SEARCH_MAX: usize = 64;
/// A waiter record older than this is ignored (its owner stopped asking: interrupted).
pub const WAITER_STALE_MS: u64 = 3_000;
/// Most locks one file may hold (ENOLCK past it, as Linux refuses to allocate more).
pub const MAX_LOCKS_PER_FILE: usize = 4096;

/// One held lock, in `lock/{ino}`. `start..=end`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub session: u64,
    pub owner: u64,
    pub pid: u32,
    pub kind: LockKind,
    pub write: bool,
    pub start: u64,
    pub end: u64,
}

impl Held {
    /// As the wire reports it.
    pub fn spec(&self) -> LockSpec {
        LockSpec {
            kind: self.kind,
            typ: if self.write {
                LockType::Write
            } else {
                LockType::Read
            },
            start: self.start,
            end: self.end,
            owner: self.owner,
            pid: self.pid,
        }
    }

    fn same_owner(&self, session: u64, owner: u64) -> bool {
        self.session == session && self.owner == owner
    }
}

/// What a blocked owner waits for, in `lock_wait/{session}/{owner}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    pub ino: Ino,
    pub spec: LockSpec,
    /// When it last asked (wall-clock ms).
    pub since_ms: u64,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Whether held lock `h` stands in the way of `spec` asked by `(session, spec.owner)`:
/// another owner, the same kind, overlapping ranges, and one of them a write lock.
pub fn conflicts(h: &Held, session: u64, spec: &LockSpec) -> bool {
    let write = spec.typ == LockType::Write;
    !h.same_owner(session, spec.owner)
        && h.kind == spec.kind
        && spec.typ != LockType::Unlock
        && (h.write || write)
        && overlaps((h.start, h.end), (spec.start, spec.end))
}

/// The first lock in `locks` that conflicts with `spec`.
pub fn first_conflict<'a>(locks: &'a [Held], session: u64, spec: &LockSpec) -> Option<&'a Held> {
    locks.iter().find(|h| conflicts(h, session, spec))
}

/// Applies `spec` (which conflicts with nothing) for `(session, spec.owner)`: the owner's
/// locks of that kind on the range are replaced (split where they reach past it), and the
/// new lock is merged with the owner's adjacent or overlapping locks of the same type, as
/// POSIX says. Unlock only cuts. Returns whether anything changed.
pub fn apply(locks: &mut Vec<Held>, session: u64, spec: &LockSpec) -> bool {
    let before = locks.clone();
    let (s, e) = (spec.start, spec.end);
    let mut kept = Vec::with_capacity(locks.len() + 1);
    for h in locks.drain(..) {
        let mine = h.same_owner(session, spec.owner) && h.kind == spec.kind;
        if !mine || !overlaps((h.start, h.end), (s, e)) {
            kept.push(h);
            continue;
        }
        if h.start < s {
            kept.push(Held { end: s - 1, ..h });
        }
        if h.end > e {
            kept.push(Held { start: e + 1, ..h });
        }
    }
    if spec.typ != LockType::Unlock {
        let mut new = Held {
            session,
            owner: spec.owner,
            pid: spec.pid,
            kind: spec.kind,
            write: spec.typ == LockType::Write,
            start: s,
            end: e,
        };
        // Merge with the owner's locks of the same type that touch the new one.
        kept.retain(|h| {
            let touches = h.same_owner(session, spec.owner)
                && h.kind == new.kind
                && h.write == new.write
                && (overlaps((h.start, h.end), (new.start, new.end))
                    || h.end.checked_add(1) == Some(new.start)
                    || new.end.checked_add(1) == Some(h.start));
            if touches {
                new.start = new.start.min(h.start);
                new.end = new.end.max(h.end);
            }
            !touches
        });
        kept.push(new);
    }
    kept.sort_by_key(|h| (h.start, h.session, h.owner));
    *locks = kept;
    *locks != before
}

/// Drops every lock of `(session, owner)`; returns whether there was one.
pub fn drop_owner(locks: &mut Vec<Held>, session: u64, owner: u64) -> bool {
    let n = locks.len();
    locks.retain(|h| !h.same_owner(session, owner));
    locks.len() != n
}

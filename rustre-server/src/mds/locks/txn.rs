//! The transaction bodies of locking: set or test a lock, drop an owner's locks on a close,
//! drop a session's locks at its end, and the search for a deadlock cycle.

use std::collections::HashSet;

use rustre_proto::msg::mds::{LockAnswer, LockKind, LockSpec, LockType};
use rustre_proto::msg::Ino;
use rustre_proto::Error;

use super::{
    apply, conflicts, drop_owner, first_conflict, Held, Waiter, DEADLOCK_SEARCH_MAX,
    MAX_LOCKS_PER_FILE, WAITER_STALE_MS,
};
use crate::mds::store::{self, Session};
use crate::meta::Transaction;
use crate::schema;

/// Most inodes whose locks one transaction of [`drop_session`] clears.
pub const DROP_SESSION_BATCH: usize = 256;

/// The locks held on `ino`.
pub fn held(tx: &mut dyn Transaction, ino: Ino) -> Result<Vec<Held>, Error> {
    Ok(store::get(tx, &schema::lock(ino))?.unwrap_or_default())
}

/// Writes `ino`'s locks back and keeps the session index of `session` right.
fn put_held(tx: &mut dyn Transaction, ino: Ino, session: u64, locks: &[Held]) -> Result<(), Error> {
    if locks.is_empty() {
        tx.clear(&schema::lock(ino));
    } else {
        store::put(tx, &schema::lock(ino), &locks.to_vec())?;
    }
    if locks.iter().any(|h| h.session == session) {
        tx.set(&schema::session_lock(session, ino), &[]);
    } else {
        tx.clear(&schema::session_lock(session, ino));
    }
    Ok(())
}

/// What [`set`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetOutcome {
    pub answer: LockAnswer,
    /// A lock was dropped or weakened: waiters on the file may go now.
    pub released: bool,
}

/// `SetLock` for `(session, spec.owner)` at wall-clock `now_ms`. A conflict of a waiting
/// request records what the owner waits for, and is `Deadlock` when that closes a cycle.
pub fn set(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    spec: &LockSpec,
    wait: bool,
    now_ms: u64,
) -> Result<SetOutcome, Error> {
    if spec.start > spec.end {
        return Err(Error::Invalid("lock range ends before it starts".into()));
    }
    let mut locks = held(tx, ino)?;
    let wait_key = schema::lock_wait(session, spec.owner);
    if spec.typ != LockType::Unlock {
        if session == 0 || store::get::<Session>(tx, &schema::session(session))?.is_none() {
            // A lock outliving its (expired) session would never be dropped.
            return Err(Error::Stale);
        }
        if let Some(c) = first_conflict(&locks, session, spec) {
            let answer = if wait
                && spec.kind == LockKind::Posix
                && deadlock(tx, session, ino, spec, now_ms)?
            {
                tx.clear(&wait_key);
                LockAnswer::Deadlock
            } else {
                if wait {
                    let w = Waiter {
                        ino,
                        spec: *spec,
                        since_ms: now_ms,
                    };
                    store::put(tx, &wait_key, &w)?;
                }
                LockAnswer::Conflict(c.spec())
            };
            return Ok(SetOutcome {
                answer,
                released: false,
            });
        }
    }
    let before: Vec<Held> = locks.clone();
    let changed = apply(&mut locks, session, spec);
    if locks.len() > MAX_LOCKS_PER_FILE {
        return Err(Error::NoSpace);
    }
    if changed {
        put_held(tx, ino, session, &locks)?;
    }
    if tx.get(&wait_key)?.is_some() {
        tx.clear(&wait_key);
    }
    // Weakened: some range of the owner's is now unlocked or only read-locked.
    let released = changed
        && before.iter().any(|h| {
            h.session == session
                && h.owner == spec.owner
                && h.kind == spec.kind
                && !locks.iter().any(|n| {
                    n.session == session
                        && n.owner == spec.owner
                        && n.kind == h.kind
                        && n.write >= h.write
                        && n.start <= h.start
                        && n.end >= h.end
                })
        });
    Ok(SetOutcome {
        answer: LockAnswer::Granted,
        released,
    })
}

/// `GetLock`: the first lock of another owner in the way of `spec`.
pub fn test(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    spec: &LockSpec,
) -> Result<LockAnswer, Error> {
    let locks = held(tx, ino)?;
    Ok(match first_conflict(&locks, session, spec) {
        Some(h) => LockAnswer::Conflict(h.spec()),
        None => LockAnswer::Granted,
    })
}

/// Drops every lock of `(session, owner)` on `ino` (and what it waited for); returns
/// whether it held one.
pub fn unlock_owner(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    owner: u64,
) -> Result<bool, Error> {
    let wait_key = schema::lock_wait(session, owner);
    if tx.get(&wait_key)?.is_some() {
        tx.clear(&wait_key);
    }
    let mut locks = held(tx, ino)?;
    if !drop_owner(&mut locks, session, owner) {
        return Ok(false);
    }
    put_held(tx, ino, session, &locks)?;
    Ok(true)
}

/// Drops the locks of session `id` on up to [`DROP_SESSION_BATCH`] files; returns those
/// files and whether the session holds no more (its waiter records go then too).
pub fn drop_session(tx: &mut dyn Transaction, id: u64) -> Result<(Vec<Ino>, bool), Error> {
    let (s, e) = schema::session_lock_range(id);
    let rows = tx.range(&s, &e, DROP_SESSION_BATCH)?;
    let done = rows.len() < DROP_SESSION_BATCH;
    let mut inos = Vec::with_capacity(rows.len());
    for (k, _) in rows {
        let ino =
            schema::parse_session_lock_ino(&k).ok_or_else(|| Error::Io("corrupt index".into()))?;
        let mut locks = held(tx, ino)?;
        locks.retain(|h| h.session != id);
        put_held(tx, ino, id, &locks)?;
        inos.push(ino);
    }
    if done {
        let (s, e) = schema::lock_wait_range(id);
        tx.clear_range(&s, &e)?;
    }
    Ok((inos, done))
}

/// Whether `(session, spec.owner)` waiting for `spec` on `ino` closes a cycle: some owner
/// in its way waits (recently) for a lock held by an owner in the way of ... the asker.
fn deadlock(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    spec: &LockSpec,
    now_ms: u64,
) -> Result<bool, Error> {
    let me = (session, spec.owner);
    let mut frontier: Vec<(u64, u64)> = held(tx, ino)?
        .iter()
        .filter(|h| conflicts(h, session, spec))
        .map(|h| (h.session, h.owner))
        .collect();
    let mut seen = HashSet::new();
    while let Some(who) = frontier.pop() {
        if who == me {
            return Ok(true);
        }
        if !seen.insert(who) || seen.len() > DEADLOCK_SEARCH_MAX {
            continue;
        }
        let Some(w) = store::get::<Waiter>(tx, &schema::lock_wait(who.0, who.1))? else {
            continue;
        };
        if now_ms.saturating_sub(w.since_ms) > WAITER_STALE_MS || w.spec.kind != LockKind::Posix {
            continue;
        }
        frontier.extend(
            held(tx, w.ino)?
                .iter()
                .filter(|h| conflicts(h, who.0, &w.spec))
                .map(|h| (h.session, h.owner)),
        );
    }
    Ok(false)
}

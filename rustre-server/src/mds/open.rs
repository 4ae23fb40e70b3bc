//! Opens, client sessions, orphans and object destruction.
//!
//! A client holds a session (id + lease, renewed by `RenewSession`). Each open is counted
//! under `open/{ino}/{session}` with an index entry `session_open/{session}/{ino}`. Unlinking
//! the last name of a file that is open makes it an orphan; when its last open goes (release,
//! or its session's lease runs out) the inode is removed and its objects queued under
//! `destroy/{ino}`, which a background worker deletes from the OSTs.
//!
//! An open for writing also sets `write_open/{ino}/{session}`, kept until the session's
//! last open of the file goes (a release does not say which open it ends, so a session
//! that mixes read and write opens of one file counts as a writer until it holds none):
//! the resync worker leaves files with such a mark alone. Opening for writing a file with
//! stale copies bumps its layout version. Opens without a session (0) record nothing.
//! The mark is also the writer's intent: a session that ends (its lease ran out: the client
//! crashed or was cut off) while holding a replicated file open for writing may have left
//! its copies different, so every copy but the first is marked stale for resync.

use rustre_proto::codec;
use rustre_proto::msg::{Attr, FileKind, Ino, Layout};
use rustre_proto::Error;

use super::attr;
use super::namespace::{self, Ctx};
use super::perm::{self, R, W, X};
use super::replica;
use super::store::{self, Session};
use super::truncate;
use crate::meta::Transaction;
use crate::schema;

/// Most open records released in one transaction when a session expires.
pub const EXPIRE_BATCH: usize = 256;

pub use rustre_proto::msg::mds::FMODE_EXEC;

/// The permission an open with `flags` needs: execute, not read, for an open to execute
/// (as Linux's `may_open` with MAY_EXEC), else what the access mode says.
fn open_mask(flags: i32) -> u32 {
    let acc = match flags & libc::O_ACCMODE {
        _ if flags & FMODE_EXEC != 0 => X,
        libc::O_RDONLY => R,
        libc::O_WRONLY => W,
        _ => R | W,
    };
    if flags & libc::O_TRUNC != 0 {
        acc | W
    } else {
        acc
    }
}

/// Opens `ino` for `session`: checks permission (unless the caller just created the file),
/// applies O_TRUNC (recording its truncate intent) and records the open.
pub fn open(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    session: u64,
    ino: Ino,
    flags: i32,
    just_created: bool,
) -> Result<Attr, Error> {
    let mut inode = store::inode(tx, ino)?;
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
    if inode.attr.kind == FileKind::Dir && writes {
        return Err(Error::IsDir);
    }
    if !just_created {
        perm::check(ctx.creds, &inode.attr, open_mask(flags))?;
    }
    let mut changed = false;
    if flags & libc::O_TRUNC != 0 && inode.attr.kind == FileKind::File && inode.attr.size > 0 {
        inode.attr.size = 0;
        inode.attr.truncate_version += 1;
        super::inline::cut(tx, &mut inode.attr, 0)?;
        attr::kill_privs(tx, ctx, &mut inode.attr)?;
        inode.attr.mtime = ctx.now;
        inode.attr.ctime = ctx.now;
        if let Some(l) = inode.attr.layout.as_mut() {
            l.forget_written_past(0);
            truncate::record(tx, ino, 0, inode.attr.truncate_version)?;
        }
        changed = true;
    }
    if writes {
        // A resync copying this file's stale copies meanwhile may miss what this opener
        // writes: the new version makes its clear fail (docs/replication.md).
        if let Some(l) = inode.attr.layout.as_mut().filter(|l| !l.stale.is_empty()) {
            l.version += 1;
            changed = true;
        }
    }
    if changed {
        store::put_inode(tx, &inode)?;
    }
    if session != 0 {
        if store::get::<Session>(tx, &schema::session(session))?.is_none() {
            return Err(Error::Stale);
        }
        let key = schema::open(ino, session);
        let count: u32 = store::get(tx, &key)?.unwrap_or(0);
        store::put(tx, &key, &(count + 1))?;
        tx.set(&schema::session_open(session, ino), &[]);
        if writes {
            tx.set(&schema::write_open(ino, session), &[]);
        }
    }
    Ok(inode.attr)
}

/// Drops one open of `ino` by `session`; the last open of an orphan destroys it.
pub fn release(tx: &mut dyn Transaction, session: u64, ino: Ino) -> Result<(), Error> {
    let key = schema::open(ino, session);
    let count: u32 = store::get(tx, &key)?.unwrap_or(0);
    if count > 1 {
        return store::put(tx, &key, &(count - 1));
    }
    drop_all_opens(tx, session, ino)
}

/// Removes every open of `ino` by `session` and destroys the inode if it was an orphan that
/// nobody else holds open.
fn drop_all_opens(tx: &mut dyn Transaction, session: u64, ino: Ino) -> Result<(), Error> {
    tx.clear(&schema::open(ino, session));
    tx.clear(&schema::session_open(session, ino));
    let wrote = tx.get(&schema::write_open(ino, session))?.is_some();
    tx.clear(&schema::write_open(ino, session));
    if wrote {
        super::quota::end_reservation(tx, ino)?;
    }
    if tx.get(&schema::orphan(ino))?.is_none() {
        return Ok(());
    }
    let (s, e) = schema::open_range(ino);
    if !tx.range(&s, &e, 1)?.is_empty() {
        return Ok(());
    }
    match store::get_inode(tx, ino)? {
        Some(inode) if inode.attr.nlink == 0 => namespace::destroy(tx, inode),
        _ => {
            tx.clear(&schema::orphan(ino));
            Ok(())
        }
    }
}

/// Starts a session with a fresh id.
pub fn open_session(
    tx: &mut dyn Transaction,
    client: &str,
    now_ms: u64,
    lease_ms: u64,
) -> Result<u64, Error> {
    let id = store::counter(tx, schema::COUNTER_NEXT_SESSION, 1)?;
    store::put_counter(tx, schema::COUNTER_NEXT_SESSION, id + 1)?;
    let s = Session {
        client: client.chars().take(256).collect(),
        expires_ms: now_ms + lease_ms,
    };
    store::put(tx, &schema::session(id), &s)?;
    Ok(id)
}

/// Extends a session's lease; ESTALE if it already expired and was reaped.
pub fn renew_session(
    tx: &mut dyn Transaction,
    id: u64,
    now_ms: u64,
    lease_ms: u64,
) -> Result<(), Error> {
    let key = schema::session(id);
    let mut s: Session = store::get(tx, &key)?.ok_or(Error::Stale)?;
    s.expires_ms = now_ms + lease_ms;
    store::put(tx, &key, &s)
}

/// What ending (part of) a session did.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    /// The session is gone (else more of its opens remain: call again).
    pub done: bool,
    /// Replicated files it held open for writing, with the layouts that now mark every copy
    /// but the first of each stripe stale ([`replica::suspect_copies`]): their live copies
    /// must learn the new version.
    pub suspect: Vec<(Ino, Layout)>,
    /// Files on which it held locks, now dropped ([`super::locks`]): their waiters may go.
    #[serde(default)]
    pub unlocked: Vec<Ino>,
}

/// Ends a session, releasing up to [`EXPIRE_BATCH`] opens and the locks it holds on up to
/// `locks::txn::DROP_SESSION_BATCH` files. Files it held open for writing may have copies
/// that missed its last writes: they are marked for resync.
pub fn end_session(tx: &mut dyn Transaction, id: u64) -> Result<Ended, Error> {
    let (unlocked, locks_done) = super::locks::txn::drop_session(tx, id)?;
    let (s, e) = schema::session_open_range(id);
    let rows = tx.range(&s, &e, EXPIRE_BATCH)?;
    let done = rows.len() < EXPIRE_BATCH && locks_done;
    let mut suspect = Vec::new();
    for (k, _) in rows {
        let ino =
            schema::parse_session_open_ino(&k).ok_or_else(|| Error::Io("corrupt index".into()))?;
        if tx.get(&schema::write_open(ino, id))?.is_some() {
            if let Some(layout) = replica::suspect_copies(tx, ino)? {
                suspect.push((ino, layout));
            }
        }
        drop_all_opens(tx, id, ino)?;
    }
    if done {
        tx.clear(&schema::session(id));
        let (s, e) = schema::request_range(id);
        tx.clear_range(&s, &e)?;
    }
    Ok(Ended {
        done,
        suspect,
        unlocked,
    })
}

/// What a look through the sessions found.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionScan {
    /// Sessions whose lease ran out (at most the limit asked for).
    pub expired: Vec<u64>,
    /// Every session was looked at (the limit was not reached).
    pub whole: bool,
    /// The earliest end of a lease still running, of those looked at (`None`: none).
    pub next_end_ms: Option<u64>,
}

/// Sessions whose lease ran out before `now_ms` (at most `limit`).
pub fn expired_sessions(
    tx: &mut dyn Transaction,
    now_ms: u64,
    limit: usize,
) -> Result<SessionScan, Error> {
    let (s, e) = schema::prefix_range(schema::SESSION);
    let mut out = SessionScan::default();
    let mut start = s;
    // Scan in pages so a large session table does not make one huge read.
    loop {
        let rows = tx.range(&start, &e, 1024)?;
        let n = rows.len();
        for (k, v) in &rows {
            let sess: Session = codec::decode(v)?;
            if sess.expires_ms >= now_ms {
                out.next_end_ms = Some(
                    out.next_end_ms
                        .map_or(sess.expires_ms, |t| t.min(sess.expires_ms)),
                );
            } else if let Some(id) = schema::parse_session(k) {
                out.expired.push(id);
                if out.expired.len() >= limit {
                    return Ok(out);
                }
            }
        }
        match rows.last() {
            Some((k, _)) if n == 1024 => {
                start = k.clone();
                start.push(0);
            }
            _ => {
                out.whole = true;
                return Ok(out);
            }
        }
    }
}

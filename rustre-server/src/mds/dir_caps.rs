//! Directory capabilities: a directory made by a session that asked for it (`Mkdir` with
//! `want_cap`) is that session's alone until another session's request names it. Its
//! client may then answer unlinks and renames in it before this MDS does (the client's
//! `async_dirops`), because no other session can look into it meanwhile: before such a
//! request runs, the MDS recalls the capability (a [`Change::Recall`] on its feed, which
//! the holder watches), the holder waits until its changes in flight are answered and gives
//! it back (`ReturnDirCaps`), and only then does the held request go on. A directory that
//! did not exist cannot have been looked into, so only new directories are granted, and a
//! capability recalled is never granted again: no ping-pong between two clients.
//!
//! What a request names ([`for_each_named`]): every inode it carries (a capped directory is
//! recalled), and for a directory it looks into by name or lists, the capabilities of the
//! directories in it (their attributes or contents decide its answer: a lookup, a listing
//! with attributes, a rename or rmdir of them). Creates and unlinks in a directory do not
//! look at the directories in it, so two clients making their own directories side by side
//! in a shared one keep theirs.
//!
//! Kept in this MDS's memory, and granted only by an MDS alone over its store
//! (`MdsConfig::dir_caps`; never over FoundationDB, where other MDS serve the same
//! namespace, nor by `rustre local --mds N` with N > 1). A restart ends them all: the
//! holder learns of it from its feed (a new instance) and stops going ahead. A session that
//! ends or expires loses its capabilities. A holder that does not give one back within
//! [`RECALL_GIVE_UP`] loses all of them (logged): the request goes on, and a client killed
//! in the middle of a `tar x` costs the next walk of its tree one such wait, not one per
//! directory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rustre_proto::msg::mds::{Change, MdsOp};
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;
use tokio::sync::Notify;

/// How often a recall not yet answered is sent again (a watch answer may have been lost).
pub const RECALL_REPEAT: Duration = Duration::from_millis(500);
/// How long a recall waits for its capability before taking it back. A holder whose feed
/// watch is live hears the recall within milliseconds; one whose watch is not stops going
/// ahead anywhere within a second (its metadata cache is no longer trusted), so past this
/// its changes answered ahead have reached this MDS, or its client is gone (killed: its
/// session would hold the request for a whole lease).
pub const RECALL_GIVE_UP: Duration = Duration::from_secs(5);

/// Most capabilities one session holds; past it its new directories come uncapped (their
/// changes wait for the MDS) until some end.
pub const DIR_CAPS_PER_SESSION_MAX: usize = 1 << 16;
/// Most capabilities one MDS holds in all (about 100 bytes each).
pub const DIR_CAPS_MAX: usize = 1 << 20;

/// One capability.
#[derive(Debug, Clone, Copy)]
struct Cap {
    session: u64,
    /// The directory it is in (its name's attributes are in that directory's answers).
    parent: Ino,
}

#[derive(Default)]
struct Table {
    held: HashMap<Ino, Cap>,
    /// The capped directories in each directory.
    children: HashMap<Ino, HashSet<Ino>>,
    /// How many each session holds.
    per_session: HashMap<u64, usize>,
}

impl Table {
    fn insert(&mut self, dir: Ino, cap: Cap) {
        if let Some(old) = self.held.insert(dir, cap) {
            self.unindex(dir, old);
        }
        self.children.entry(cap.parent).or_default().insert(dir);
        *self.per_session.entry(cap.session).or_default() += 1;
    }

    fn remove(&mut self, dir: Ino) -> Option<Cap> {
        let cap = self.held.remove(&dir)?;
        self.unindex(dir, cap);
        Some(cap)
    }

    fn unindex(&mut self, dir: Ino, cap: Cap) {
        if let Some(c) = self.children.get_mut(&cap.parent) {
            c.remove(&dir);
            if c.is_empty() {
                self.children.remove(&cap.parent);
            }
        }
        if let Some(n) = self.per_session.get_mut(&cap.session) {
            *n -= 1;
            if *n == 0 {
                self.per_session.remove(&cap.session);
            }
        }
    }

    /// Whether a session other than `session` holds any.
    fn others_hold(&self, session: u64) -> bool {
        self.held.len() > self.per_session.get(&session).copied().unwrap_or(0)
    }
}

/// What a request names, for [`for_each_named`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// An inode the request reads or changes.
    Inode(Ino),
    /// A directory the request looks into by name or lists: the capped directories in it
    /// too.
    Within(Ino),
}

/// Calls `f` with everything `op` names (see the module documentation). Session calls,
/// the feed's `Watch`, `ReturnDirCaps`, syncs and administrators' listings name nothing.
pub fn for_each_named(op: &MdsOp, mut f: impl FnMut(Named)) {
    use Named::{Inode, Within};
    match op {
        MdsOp::OpenSession { .. }
        | MdsOp::RenewSession
        | MdsOp::CloseSession
        | MdsOp::StatFs
        | MdsOp::SyncMeta
        | MdsOp::Watch { .. }
        | MdsOp::Fsck(_)
        | MdsOp::StuckCopies
        | MdsOp::QuotaList { .. }
        | MdsOp::ReturnDirCaps { .. } => {}
        // Their answers hold a directory of `parent` as it is (its attributes, whether it
        // is empty, where it goes).
        MdsOp::Lookup { parent, .. } | MdsOp::Rmdir { parent, .. } => {
            f(Inode(*parent));
            f(Within(*parent));
        }
        // A new name, or a name removed that cannot be a directory (EISDIR): the
        // directories in `parent` are not looked at.
        MdsOp::Create { parent, .. }
        | MdsOp::Mkdir { parent, .. }
        | MdsOp::Mknod { parent, .. }
        | MdsOp::Symlink { parent, .. }
        | MdsOp::Unlink { parent, .. } => f(Inode(*parent)),
        MdsOp::Link {
            ino, new_parent, ..
        } => {
            f(Inode(*ino));
            f(Inode(*new_parent));
        }
        MdsOp::Rename {
            parent, new_parent, ..
        } => {
            for p in [parent, new_parent] {
                f(Inode(*p));
                f(Within(*p));
            }
        }
        MdsOp::Readdir { ino, .. } | MdsOp::OpenDir { ino, .. } => {
            f(Inode(*ino));
            f(Within(*ino));
        }
        MdsOp::Release { inos } => inos.iter().for_each(|i| f(Inode(*i))),
        MdsOp::AccessedMany { updates } => updates.iter().for_each(|u| f(Inode(u.ino))),
        MdsOp::GetAttr { ino }
        | MdsOp::SetAttr { ino, .. }
        | MdsOp::Readlink { ino }
        | MdsOp::Open { ino, .. }
        | MdsOp::ReportSize { ino, .. }
        | MdsOp::ReportAndSetAttr { ino, .. }
        | MdsOp::Access { ino, .. }
        | MdsOp::GetXattr { ino, .. }
        | MdsOp::SetXattr { ino, .. }
        | MdsOp::ListXattr { ino }
        | MdsOp::RemoveXattr { ino, .. }
        | MdsOp::SetDirLayout { ino, .. }
        | MdsOp::GetDirLayout { ino }
        | MdsOp::MarkStale { ino, .. }
        | MdsOp::MoveCopies { ino, .. }
        | MdsOp::MarkLost { ino, .. }
        | MdsOp::Accessed { ino, .. }
        | MdsOp::SetLock { ino, .. }
        | MdsOp::GetLock { ino, .. }
        | MdsOp::UnlockOwner { ino, .. }
        | MdsOp::ReserveAppend { ino, .. }
        | MdsOp::ReturnAppendLease { ino, .. }
        | MdsOp::QuotaSet { ino, .. }
        | MdsOp::QuotaGet { ino }
        | MdsOp::QuotaReserve { ino, .. }
        | MdsOp::CloseInline { ino, .. }
        | MdsOp::ReadInline { ino }
        | MdsOp::Spill { ino }
        | MdsOp::MigrateBegin { ino, .. }
        | MdsOp::MigrateStep { ino, .. } => f(Inode(*ino)),
        // What each change names (a `dyn` callee: one more instance of this function, not
        // one per depth).
        MdsOp::Batch { ops } => {
            let f: &mut dyn FnMut(Named) = &mut f;
            ops.iter().for_each(|n| for_each_named(&n.op, &mut *f));
        }
    }
}

/// The capabilities one MDS granted.
pub struct DirCaps {
    /// Whether this MDS grants any (`MdsConfig::dir_caps` on a store it alone serves).
    enabled: bool,
    table: Mutex<Table>,
    /// How many are held: requests skip the table while none is.
    count: AtomicUsize,
    /// Woken whenever one ends.
    ended: Notify,
}

impl DirCaps {
    pub fn new(enabled: bool) -> DirCaps {
        DirCaps {
            enabled,
            table: Mutex::default(),
            count: AtomicUsize::new(0),
            ended: Notify::new(),
        }
    }

    /// Grants `session` the capability on `dir`, in `parent`, before the transaction that
    /// makes it commits (so that no other session can name it uncapped). False when this
    /// MDS grants none, or the session or the MDS holds as many as it may
    /// ([`DIR_CAPS_PER_SESSION_MAX`], [`DIR_CAPS_MAX`]).
    pub fn grant(&self, dir: Ino, parent: Ino, session: u64) -> bool {
        if !self.enabled || session == 0 {
            return false;
        }
        let mut t = lock(&self.table);
        let held = t.per_session.get(&session).copied().unwrap_or(0);
        if held >= DIR_CAPS_PER_SESSION_MAX || t.held.len() >= DIR_CAPS_MAX {
            return false;
        }
        t.insert(dir, Cap { session, parent });
        self.count.store(t.held.len(), Ordering::Release);
        if let Some(m) = crate::metrics::get() {
            m.dir_caps_granted.inc();
        }
        true
    }

    /// Ends the capability on `dir`, whoever holds it (a grant whose directory was not
    /// made, a directory removed).
    pub fn forget(&self, dir: Ino) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        self.end(|t| t.remove(dir).is_some());
    }

    /// A capped directory moved into `new_parent` (a rename by its holder).
    pub fn moved(&self, dir: Ino, new_parent: Ino) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut t = lock(&self.table);
        if let Some(cap) = t.remove(dir) {
            t.insert(
                dir,
                Cap {
                    parent: new_parent,
                    ..cap
                },
            );
        }
    }

    /// `session` gives back its capabilities on `dirs` (others' are left alone).
    pub fn give_back(&self, session: u64, dirs: &[Ino]) {
        self.end(|t| {
            let mut any = false;
            for dir in dirs {
                if t.held.get(dir).is_some_and(|c| c.session == session) {
                    any |= t.remove(*dir).is_some();
                }
            }
            any
        });
    }

    /// A session ended (or did not answer a recall): its capabilities with it. Answers how
    /// many it held.
    pub fn end_session(&self, session: u64) -> usize {
        if self.count.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut ended = 0;
        self.end(|t| {
            let dirs: Vec<Ino> = t
                .held
                .iter()
                .filter(|(_, c)| c.session == session)
                .map(|(d, _)| *d)
                .collect();
            dirs.iter().for_each(|d| {
                t.remove(*d);
            });
            ended = dirs.len();
            ended > 0
        });
        ended
    }

    fn end(&self, change: impl FnOnce(&mut Table) -> bool) {
        let mut t = lock(&self.table);
        if change(&mut t) {
            self.count.store(t.held.len(), Ordering::Release);
            drop(t);
            self.ended.notify_waiters();
        }
    }

    /// The capabilities of other sessions that `op` by `session` must wait for, with their
    /// holders (empty, at once, while none is held by another session).
    pub fn to_recall(&self, session: u64, op: &MdsOp) -> Vec<(Ino, u64)> {
        if self.count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let t = lock(&self.table);
        if !t.others_hold(session) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut add = |dir: Ino, cap: &Cap| {
            if cap.session != session && !out.iter().any(|(d, _)| *d == dir) {
                out.push((dir, cap.session));
            }
        };
        for_each_named(op, |n| match n {
            Named::Inode(ino) => {
                if let Some(cap) = t.held.get(&ino) {
                    add(ino, cap);
                }
            }
            Named::Within(dir) => {
                for child in t.children.get(&dir).into_iter().flatten() {
                    if let Some(cap) = t.held.get(child) {
                        add(*child, cap);
                    }
                }
            }
        });
        out
    }

    /// Of `dirs`, those still held by the session they were recalled from.
    pub fn still_held(&self, dirs: &[(Ino, u64)]) -> Vec<(Ino, u64)> {
        let t = lock(&self.table);
        dirs.iter()
            .filter(|(d, s)| t.held.get(d).is_some_and(|c| c.session == *s))
            .copied()
            .collect()
    }

    /// Registers a wait for the next capability to end; enable it before looking again.
    pub fn ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.ended.notified()
    }
}

impl super::Mds {
    /// Holds a request of `session` until every capability of another session it names is
    /// given back, recalling them through the holders' feeds (again every
    /// [`RECALL_REPEAT`]); a holder that gives one back not within [`RECALL_GIVE_UP`] loses
    /// all of its capabilities (logged).
    pub(super) async fn recall_dir_caps(&self, session: u64, op: &MdsOp) {
        let mut pending = self.dir_caps.to_recall(session, op);
        if pending.is_empty() {
            return;
        }
        if let Some(m) = crate::metrics::get() {
            m.dir_cap_waits.inc();
        }
        let start = tokio::time::Instant::now();
        let deadline = start + RECALL_GIVE_UP;
        let mut next_send = start;
        loop {
            let ended = self.dir_caps.ended();
            tokio::pin!(ended);
            ended.as_mut().enable();
            pending = self.dir_caps.still_held(&pending);
            if pending.is_empty() {
                return;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let mut holders: Vec<u64> = pending.iter().map(|(_, h)| *h).collect();
                holders.sort_unstable();
                holders.dedup();
                for holder in holders {
                    let taken = self.dir_caps.end_session(holder);
                    tracing::warn!(
                        session = holder,
                        taken,
                        "a directory capability was not given back in time (its client gone, or \
                         its change feed stalled): every capability of the session taken back"
                    );
                    if let Some(m) = crate::metrics::get() {
                        m.dir_caps_taken.inc_by(taken as u64);
                    }
                }
                return;
            }
            if now >= next_send {
                for (dir, holder) in &pending {
                    self.feed.publish((*holder, 0), vec![Change::Recall(*dir)]);
                }
                next_send = now + RECALL_REPEAT;
            }
            let _ = tokio::time::timeout_at(next_send.min(deadline), ended).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(parent: Ino) -> MdsOp {
        MdsOp::Lookup {
            parent,
            name: "x".into(),
        }
    }

    #[test]
    fn other_sessions_naming_a_capped_directory_or_looking_into_its_parent_recall_it() {
        let caps = DirCaps::new(true);
        assert!(caps.grant(10, 1, 7));
        // The holder itself, and requests naming other inodes, wait for nothing.
        assert!(caps.to_recall(7, &lookup(10)).is_empty());
        assert!(caps.to_recall(8, &MdsOp::GetAttr { ino: 11 }).is_empty());
        assert!(caps.to_recall(8, &lookup(2)).is_empty());
        // Another session naming it, or looking into its directory.
        assert_eq!(caps.to_recall(8, &lookup(10)), vec![(10, 7)]);
        assert_eq!(
            caps.to_recall(8, &MdsOp::GetAttr { ino: 10 }),
            vec![(10, 7)]
        );
        assert_eq!(caps.to_recall(8, &lookup(1)), vec![(10, 7)]);
        let rename = MdsOp::Rename {
            parent: 3,
            name: "a".into(),
            new_parent: 1,
            new_name: "b".into(),
            flags: 0,
        };
        assert_eq!(caps.to_recall(8, &rename), vec![(10, 7)]);
        // Moved by its holder: its new directory's listings recall it, the old one's not.
        caps.moved(10, 3);
        assert!(caps.to_recall(8, &lookup(1)).is_empty());
        assert_eq!(caps.to_recall(8, &lookup(3)), vec![(10, 7)]);
        // Given back by someone else: still held.
        caps.give_back(8, &[10]);
        assert_eq!(caps.still_held(&[(10, 7)]), vec![(10, 7)]);
        caps.give_back(7, &[10]);
        assert!(caps.still_held(&[(10, 7)]).is_empty());
        assert!(caps.to_recall(8, &lookup(10)).is_empty());
    }

    #[test]
    fn a_session_that_ends_loses_its_capabilities_and_a_disabled_mds_grants_none() {
        let caps = DirCaps::new(true);
        caps.grant(10, 1, 7);
        caps.grant(11, 10, 7);
        caps.grant(12, 1, 9);
        caps.end_session(7);
        assert!(caps.to_recall(8, &lookup(10)).is_empty());
        assert!(caps.to_recall(8, &lookup(11)).is_empty());
        assert_eq!(caps.to_recall(8, &lookup(1)), vec![(12, 9)]);
        caps.forget(12);
        assert!(caps.to_recall(8, &lookup(1)).is_empty());
        let off = DirCaps::new(false);
        assert!(!off.grant(10, 1, 7));
        assert!(off.to_recall(8, &lookup(10)).is_empty());
    }

    #[test]
    fn a_session_holds_at_most_its_share() {
        let caps = DirCaps::new(true);
        let first = 100;
        for dir in first..first + DIR_CAPS_PER_SESSION_MAX as Ino {
            assert!(caps.grant(dir, 1, 7));
        }
        let next = first + DIR_CAPS_PER_SESSION_MAX as Ino;
        assert!(!caps.grant(next, 1, 7), "past the session's share");
        assert!(caps.grant(next, 1, 8), "another session's first");
        caps.forget(first);
        assert!(caps.grant(next + 1, 1, 7), "room again");
    }
}

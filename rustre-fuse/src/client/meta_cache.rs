//! The metadata cache: names and attributes the MDS gave this client, answered again
//! without asking while every MDS's change feed says they still hold.
//!
//! Each MDS numbers what it commits and reports it on its change feed (`MdsOp::Watch`,
//! watched by [`crate::client::feed`]). An entry stays here until a feed reports its inode
//! or name changed. The cache answers only while it is *trusted*: every MDS of the map has
//! a watcher, and each watcher's last answer was asked for less than [`FEED_LEASE`] ago.
//! So a change made through any MDS stops being answered from here once its feed reports
//! it (a network round trip, usually) and never later than [`FEED_LEASE`] after it was
//! committed (docs/metadata-cache.md states the rule).
//!
//! Races are closed with an epoch: every change applied moves it, and an answer fetched
//! from the MDS is kept only if the epoch did not move while it was in flight.
//!
//! This client's own changes ([`OwnResult`]): what the answer of a create, mkdir, link,
//! setattr, unlink... says is kept (stamped with the request's number), and the feed's
//! report of the same request does not evict it. What the request touched without its
//! answer showing it is evicted at once when it is named (a parent's times), and when it is
//! not (an unlink's victim) the cache answers nothing until a watch *sent after the
//! answer* has been answered, by when the report has evicted it — so a client always reads
//! its own changes. A directory this client made is *complete* until something other than
//! its own changes touches it: a name missing there does not exist. A complete directory
//! keeps a 32-bit hash of each of its names apart from the LRU of entries, so it stays
//! complete however many names it gets (up to [`COMPLETE_NAMES_MAX`] over all of them): a
//! create in it costs no lookup round trip at its millionth name as at its first.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use rustre_proto::msg::mds::{Change, ChangeBatch, FeedChange};
use rustre_proto::msg::{may_access, validate_name, Attr, Creds, FileKind, Ino};
use rustre_proto::Error;
use tokio::time::Instant;

/// Attributes kept (one per inode).
pub const META_CACHE_ATTRS: usize = 65_536;
/// Names kept (positive and negative).
pub const META_CACHE_ENTRIES: usize = 65_536;
/// How long after a watcher asked its MDS for changes the answer vouches for the cache.
pub const FEED_LEASE: Duration = Duration::from_secs(1);
/// Name hashes kept for complete directories, over all of them (about 5 bytes each, twice
/// that while a set grows): a directory whose next name would pass this stops being
/// complete, and lookups of names it lacks go to the MDS again.
pub const COMPLETE_NAMES_MAX: usize = 2 << 20;
/// Own changes of unknown outcome remembered (see `Inner::own_unknown`).
pub const MAX_UNKNOWN_OUTCOMES: usize = 1024;

/// A moment in the cache's history: answers fetched from the MDS are stamped with the
/// epoch at which they were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

/// What one MDS's feed has told this client.
#[derive(Debug, Clone, Copy)]
struct FeedState {
    instance: u64,
    last: u64,
    /// When the request of the newest answer was sent (`None`: no answer yet).
    fresh_as_of: Option<Instant>,
}

/// A cached answer: the epoch it was asked at, and the request of this client whose own
/// answer it is (0: a read).
#[derive(Debug, Clone)]
struct Stamped<T> {
    value: T,
    epoch: u64,
    by: u64,
}

impl<T> Stamped<T> {
    fn new(value: T, epoch: u64, by: u64) -> Stamped<T> {
        Stamped { value, epoch, by }
    }
}

/// A directory every name of which this client knows.
#[derive(Debug)]
struct Complete {
    /// The epoch this became true at.
    since: u64,
    /// [`name_hash`] of every name the directory holds (and of names it held since, which
    /// only costs a lookup): a name whose hash is missing does not exist there.
    names: HashSet<u32>,
}

/// The hash a complete directory keeps of `name` (fixed keys: the same in every process).
fn name_hash(name: &str) -> u32 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish() as u32
}

/// One of this client's changes, sent and not yet answered.
#[derive(Debug, Clone)]
struct InFlight {
    /// Every own change numbered below this was answered before this one was sent, so its
    /// commit came first and this one's answer already shows it.
    settled_below: u64,
    /// What reports that may be newer than this change's answer named since it was sent
    /// (at most [`MAX_NAMED_IN_FLIGHT`]; `None`: more, or everything was voided): the
    /// answer's word on those is not kept.
    named: Option<Vec<Change>>,
    /// The names the request itself names (a create's, both of a rename's): its answer, or
    /// its refusal, says what they hold, so its own report before the answer leaves them
    /// (and their directory's completeness) alone...
    request_entries: Vec<(Ino, String)>,
    /// ... and notes them here; those the answer does not set are evicted then.
    deferred: Vec<(Ino, String)>,
}

/// Most changes remembered for one own change in flight (more: its answer is not kept).
pub const MAX_NAMED_IN_FLIGHT: usize = 4096;

struct Inner {
    epoch: u64,
    /// Everything stamped before this epoch is void.
    valid_from: u64,
    attrs: LruCache<Ino, Stamped<Attr>>,
    /// `(parent, name)` → the inode it names, or `None`: no such name.
    entries: LruCache<(Ino, String), Stamped<Option<Ino>>>,
    /// Directories whose every name this client knows (it made them, and nothing since
    /// suggests otherwise): a name missing there does not exist.
    complete: HashMap<Ino, Complete>,
    /// Name hashes held by `complete`, all directories together...
    complete_names: usize,
    /// ... and at most this many ([`COMPLETE_NAMES_MAX`]).
    complete_names_max: usize,
    /// By MDS address: the MDS of the current map.
    feeds: HashMap<String, FeedState>,
    /// This client's session: feed changes made by it are its own.
    session: u64,
    /// This client's changes in flight, by request seq.
    own_in_flight: HashMap<u64, InFlight>,
    /// Changes of this client whose outcome it never learnt (the call failed on the way):
    /// they may still commit late, so they never count as settled. The newest
    /// [`MAX_UNKNOWN_OUTCOMES`].
    own_unknown: std::collections::BTreeSet<u64>,
    /// When the newest answer to one of this client's changes arrived.
    own_answered: Option<Instant>,
}

impl Inner {
    fn trusted(&self, now: Instant) -> bool {
        !self.feeds.is_empty()
            && self.feeds.values().all(|f| {
                f.fresh_as_of.is_some_and(|t| {
                    now < t + FEED_LEASE && self.own_answered.is_none_or(|own| t > own)
                })
            })
    }

    fn void_all(&mut self) {
        self.epoch += 1;
        self.valid_from = self.epoch;
        self.complete.clear();
        self.complete_names = 0;
        for f in self.own_in_flight.values_mut() {
            f.named = None;
        }
    }

    /// What the cache knows `(parent, name)` names: `Some(None)` for "nothing" (a negative
    /// entry, or a complete directory without it), `None` if it does not know.
    fn entry(&mut self, key: &(Ino, String)) -> Option<Option<Ino>> {
        let valid_from = self.valid_from;
        let cached = match self.entries.get(key) {
            Some(e) if e.epoch >= valid_from => Some(e.value),
            _ => None,
        };
        cached.or_else(|| self.complete_lacks(key.0, &key.1).then_some(None))
    }

    /// Whether `dir` is complete and has no name `name`.
    fn complete_lacks(&self, dir: Ino, name: &str) -> bool {
        self.complete
            .get(&dir)
            .is_some_and(|c| c.since >= self.valid_from && !c.names.contains(&name_hash(name)))
    }

    /// Sets an entry; a name that exists is also noted in its directory's completeness.
    fn put_entry(&mut self, key: (Ino, String), e: Stamped<Option<Ino>>) {
        if e.value.is_some() {
            self.note_name(key.0, &key.1);
        }
        self.entries.push(key, e);
    }

    /// Notes that complete directory `dir` (if it is one) holds `name`.
    fn note_name(&mut self, dir: Ino, name: &str) {
        let Some(c) = self.complete.get_mut(&dir) else {
            return;
        };
        if c.names.insert(name_hash(name)) {
            self.complete_names += 1;
            if self.complete_names > self.complete_names_max {
                self.end_complete(dir);
            }
        }
    }

    /// `dir` is no longer complete.
    fn end_complete(&mut self, dir: Ino) {
        if let Some(c) = self.complete.remove(&dir) {
            self.complete_names -= c.names.len();
        }
    }

    /// Forgets an entry, and with it the completeness of its directory.
    fn pop_entry(&mut self, key: &(Ino, String)) {
        self.entries.pop(key);
        self.end_complete(key.0);
    }

    fn attr(&mut self, ino: Ino) -> Option<Attr> {
        let valid_from = self.valid_from;
        match self.attrs.get(&ino) {
            Some(a) if a.epoch >= valid_from => Some(a.value.clone()),
            _ => None,
        }
    }

    /// Applies one reported change.
    fn apply(&mut self, fc: &FeedChange) {
        let (session, seq) = fc.request;
        let own = session == self.session && seq != 0;
        // What this client's own answer put here already shows the change.
        let by = if own { seq } else { u64::MAX };
        self.epoch += 1;
        for (&other, f) in self.own_in_flight.iter_mut() {
            if own && (seq == other || seq < f.settled_below) {
                continue;
            }
            if let Some(named) = &mut f.named {
                if named.len() < MAX_NAMED_IN_FLIGHT && fc.change != Change::All {
                    named.push(fc.change.clone());
                } else {
                    f.named = None;
                }
            }
        }
        match &fc.change {
            Change::Inode(ino) => {
                if self.attrs.peek(ino).is_some_and(|a| a.by != by) {
                    self.attrs.pop(ino);
                }
            }
            Change::Entry { parent, name } => {
                let key = (*parent, name.clone());
                if own {
                    if let Some(f) = self.own_in_flight.get_mut(&seq) {
                        if f.request_entries.contains(&key) {
                            f.deferred.push(key);
                            return;
                        }
                    }
                }
                if self.entries.peek(&key).is_none_or(|e| e.by != by) {
                    self.pop_entry(&key);
                }
            }
            Change::All => self.void_all(),
        }
    }
}

/// Keeps attributes from an own answer, unless a report that may be newer named them.
fn keep_own_attr(inner: &mut Inner, newer: &dyn Fn(Ino) -> bool, a: Stamped<Attr>) {
    let ino = a.value.ino;
    if newer(ino) {
        inner.attrs.pop(&ino);
    } else {
        inner.attrs.put(ino, a);
    }
}

/// What one of this client's own changes did, as its answer tells (for the cache).
#[derive(Debug, Clone)]
pub enum OwnResult {
    /// The inode's attributes now.
    Attr(Attr),
    /// What `name` in `parent` names now (`None`: nothing).
    Entry {
        parent: Ino,
        name: String,
        attr: Option<Attr>,
    },
    /// The inode's attributes changed in a way the answer does not show.
    Changed(Ino),
    /// `name` in `parent` was unlinked (or rmdir'd): the inode it named has one link less.
    /// The answer does not say which inode that was; if the cache knows the name, that
    /// inode's attributes go, else the cache waits for the feed as for [`Self::Unknown`].
    /// Comes before the `Entry` that records the name's absence.
    Unlinked { parent: Ino, name: String },
    /// The last release of an inode with no names left destroys it: its attributes go if
    /// they show no links (a release of a linked inode changes nothing the cache holds).
    Released(Ino),
    /// This change made directory `dir`: it is empty, so every name in it is known.
    NewDir(Ino),
    /// `from` was renamed to `to` (or swapped with it): the inodes involved are known only
    /// as far as the cache knows both names.
    Renamed {
        from: (Ino, String),
        to: (Ino, String),
        exchange: bool,
    },
    /// The change may have touched inodes no answer names (an unlink's victim, a rename's):
    /// the cache answers nothing until the feed has reported it.
    Unknown,
}

/// The cache of one client.
pub struct MetaCache {
    inner: Mutex<Inner>,
    /// Off (mount option `attr_timeout=0`): nothing is answered from here.
    enabled: AtomicBool,
    /// Lookups and getattrs answered from here.
    hits: AtomicU64,
}

impl Default for MetaCache {
    fn default() -> Self {
        MetaCache::with_capacity(META_CACHE_ATTRS, META_CACHE_ENTRIES)
    }
}

/// What the cache knows of a name.
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    /// The name's attributes.
    Found(Attr),
    /// The name does not exist.
    Absent,
}

impl MetaCache {
    pub fn with_capacity(attrs: usize, entries: usize) -> MetaCache {
        let cap = |n: usize| NonZeroUsize::new(n.max(1)).expect("at least 1");
        MetaCache {
            inner: Mutex::new(Inner {
                epoch: 1,
                valid_from: 1,
                attrs: LruCache::new(cap(attrs)),
                entries: LruCache::new(cap(entries)),
                complete: HashMap::new(),
                complete_names: 0,
                complete_names_max: COMPLETE_NAMES_MAX,
                feeds: HashMap::new(),
                session: 0,
                own_in_flight: HashMap::new(),
                own_unknown: Default::default(),
                own_answered: None,
            }),
            enabled: AtomicBool::new(true),
            hits: AtomicU64::new(0),
        }
    }

    /// Lookups and getattrs answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Turns answering from the cache on or off.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The epoch to stamp an answer about to be asked for with.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.inner.lock().unwrap().epoch)
    }

    /// This client is about to send a change naming `request_entries`: numbers it with
    /// `next_seq` (called under the cache's lock, so numbers and sends are in the same
    /// order) and returns the number to give [`MetaCache::own_answered`].
    pub fn own_change(
        &self,
        request_entries: Vec<(Ino, String)>,
        next_seq: impl FnOnce() -> u64,
    ) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let seq = next_seq();
        let in_flight = inner.own_in_flight.keys().copied().min();
        let unknown = inner.own_unknown.first().copied();
        let settled_below = in_flight.into_iter().chain(unknown).min().unwrap_or(seq);
        let f = InFlight {
            settled_below: settled_below.min(seq),
            named: Some(Vec::new()),
            request_entries,
            deferred: Vec::new(),
        };
        inner.own_in_flight.insert(seq, f);
        seq
    }

    /// The answer to change `seq` arrived: `results` are kept, except what a report that
    /// may be newer named meanwhile (that is evicted). `None`: the outcome is unknown (the
    /// call failed on the way), so everything is void.
    pub fn own_answered(&self, seq: u64, results: Option<Vec<OwnResult>>) {
        let mut inner = self.inner.lock().unwrap();
        let (named, deferred) = match inner.own_in_flight.remove(&seq) {
            Some(f) => (f.named, f.deferred),
            None => (None, Vec::new()),
        };
        let Some(results) = results else {
            inner.own_answered = Some(Instant::now());
            inner.own_unknown.insert(seq);
            if inner.own_unknown.len() > MAX_UNKNOWN_OUTCOMES {
                inner.own_unknown.pop_first();
            }
            inner.void_all();
            return;
        };
        let named = named.unwrap_or_else(|| vec![Change::All]);
        let newer_attr = |ino: Ino| {
            named
                .iter()
                .any(|c| matches!(c, Change::All) || *c == Change::Inode(ino))
        };
        let newer_entry = |parent: Ino, name: &str| {
            named.iter().any(|c| match c {
                Change::All => true,
                Change::Entry { parent: p, name: n } => *p == parent && n == name,
                Change::Inode(_) => false,
            })
        };
        // Reads in flight across this change are not kept.
        inner.epoch += 1;
        let epoch = inner.epoch;
        let mut pause = false;
        // Names this answer set (the rest of `deferred` is evicted below).
        let mut kept: Vec<(Ino, String)> = Vec::new();
        for r in results {
            match r {
                OwnResult::Attr(a) => {
                    keep_own_attr(&mut inner, &newer_attr, Stamped::new(a, epoch, seq))
                }
                OwnResult::Entry { parent, name, attr } => {
                    let key = (parent, name);
                    if newer_entry(key.0, &key.1) || key.1 == "." || key.1 == ".." {
                        inner.pop_entry(&key);
                    } else {
                        kept.push(key.clone());
                        inner
                            .put_entry(key, Stamped::new(attr.as_ref().map(|a| a.ino), epoch, seq));
                    }
                    if let Some(a) = attr {
                        keep_own_attr(&mut inner, &newer_attr, Stamped::new(a, epoch, seq));
                    }
                }
                OwnResult::Changed(ino) => {
                    inner.attrs.pop(&ino);
                }
                OwnResult::Unlinked { parent, name } => {
                    let key = (parent, name);
                    match inner.entry(&key) {
                        Some(Some(victim)) if !newer_entry(key.0, &key.1) => {
                            inner.attrs.pop(&victim);
                            inner.end_complete(victim);
                        }
                        _ => pause = true,
                    }
                }
                OwnResult::Released(ino) => {
                    if inner.attrs.peek(&ino).is_some_and(|a| a.value.nlink == 0) {
                        inner.attrs.pop(&ino);
                    }
                }
                OwnResult::NewDir(dir) => {
                    let touched = named.iter().any(|c| match c {
                        Change::All => true,
                        Change::Entry { parent, .. } => *parent == dir,
                        Change::Inode(_) => false,
                    });
                    if !touched && inner.complete.len() < META_CACHE_ENTRIES {
                        inner.end_complete(dir);
                        let names = HashSet::new();
                        inner.complete.insert(
                            dir,
                            Complete {
                                since: epoch,
                                names,
                            },
                        );
                    }
                }
                OwnResult::Renamed { from, to, exchange } => {
                    let moved = inner.entry(&from);
                    let replaced = inner.entry(&to);
                    for ino in [moved, replaced].into_iter().flatten().flatten() {
                        inner.attrs.pop(&ino);
                    }
                    let known = !newer_entry(from.0, &from.1) && !newer_entry(to.0, &to.1);
                    match (moved, replaced) {
                        // Both names known: so are the inodes the rename touched (their
                        // attributes went above), and nothing is left to wait for.
                        (Some(Some(m)), Some(r)) if known => {
                            if let (Some(r), false) = (r, exchange) {
                                inner.end_complete(r);
                            }
                            let left = if exchange { r } else { None };
                            kept.push(from.clone());
                            kept.push(to.clone());
                            inner.put_entry(from, Stamped::new(left, epoch, seq));
                            inner.put_entry(to, Stamped::new(Some(m), epoch, seq));
                        }
                        _ => {
                            pause = true;
                            inner.pop_entry(&from);
                            inner.pop_entry(&to);
                        }
                    }
                }
                OwnResult::Unknown => pause = true,
            }
        }
        for key in deferred {
            if !kept.contains(&key) {
                inner.pop_entry(&key);
            }
        }
        if pause {
            inner.own_answered = Some(Instant::now());
        }
    }

    /// Keeps attributes asked for at `asked`, unless something changed since.
    pub fn keep_attr(&self, asked: Epoch, attr: &Attr) {
        let mut inner = self.inner.lock().unwrap();
        if inner.epoch == asked.0 {
            let a = Stamped {
                value: attr.clone(),
                epoch: asked.0,
                by: 0,
            };
            inner.attrs.put(attr.ino, a);
        }
    }

    /// Keeps the answer to looking up `name` in `parent` (`None`: no such name) asked for at
    /// `asked`, unless something changed since.
    pub fn keep_entry(&self, asked: Epoch, parent: Ino, name: &str, attr: Option<&Attr>) {
        if name == "." || name == ".." {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        if inner.epoch != asked.0 {
            return;
        }
        if let Some(a) = attr {
            let a = Stamped {
                value: a.clone(),
                epoch: asked.0,
                by: 0,
            };
            inner.attrs.put(a.value.ino, a);
        }
        let e = Stamped {
            value: attr.map(|a| a.ino),
            epoch: asked.0,
            by: 0,
        };
        inner.put_entry((parent, name.to_string()), e);
    }

    /// The attributes of `ino`, if cached and the cache is trusted.
    pub fn getattr(&self, ino: Ino) -> Option<Attr> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut inner = self.inner.lock().unwrap();
        if !inner.trusted(Instant::now()) {
            return None;
        }
        let a = inner.attr(ino);
        if a.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        a
    }

    /// What looking up `name` in `parent` would answer, if the cache knows and is trusted.
    /// `creds` is asked for only when the caller's search permission on `parent` depends
    /// on its groups; permission is checked as the MDS does, on the cached attributes of
    /// `parent` (root needs none).
    pub fn lookup(
        &self,
        creds: impl FnOnce() -> Creds,
        uid: u32,
        parent: Ino,
        name: &str,
    ) -> Option<Known> {
        // A name the MDS refuses (too long, "..") gets the MDS's error, not "no such name".
        if validate_name(name).is_err() || !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut inner = self.inner.lock().unwrap();
        if !inner.trusted(Instant::now()) {
            return None;
        }
        if uid != 0 {
            let dir = inner.attr(parent)?;
            if dir.kind != FileKind::Dir {
                return None;
            }
            // The owner's bits apply to the owner whatever its groups; anyone else's
            // groups are read (from /proc, outside the lock).
            drop(inner);
            let c = if dir.uid == uid {
                Creds {
                    uid,
                    gid: u32::MAX,
                    groups: Vec::new(),
                }
            } else {
                creds()
            };
            if !may_access(&c, &dir, 1) {
                // The MDS answers EACCES (or knows better): ask it.
                return None;
            }
            inner = self.inner.lock().unwrap();
        }
        let ino = inner.entry(&(parent, name.to_string()))?;
        let known = match ino {
            None => Some(Known::Absent),
            Some(ino) => inner.attr(ino).map(Known::Found),
        };
        if known.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    /// Makes the feeds watched exactly those of `mds` (addresses). A feed that stops being
    /// watched may have had changes this client never heard of: everything is void.
    pub fn watch_only(&self, mds: &[String]) {
        let mut inner = self.inner.lock().unwrap();
        let before = inner.feeds.len();
        inner.feeds.retain(|addr, _| mds.contains(addr));
        if inner.feeds.len() != before {
            inner.void_all();
        }
        for addr in mds {
            inner.feeds.entry(addr.clone()).or_insert(FeedState {
                instance: 0,
                last: 0,
                fresh_as_of: None,
            });
        }
    }

    /// Where the watcher of `mds` should ask from: `(instance, after)`.
    pub fn feed_position(&self, mds: &str) -> Option<(u64, u64)> {
        let inner = self.inner.lock().unwrap();
        inner.feeds.get(mds).map(|f| (f.instance, f.last))
    }

    /// Applies an answer of `mds`'s feed to a request sent at `sent`, for the client whose
    /// session is `session`. An answer that does not follow on from the last one (lost
    /// changes, a new instance) voids everything.
    pub fn apply(&self, mds: &str, sent: Instant, session: u64, batch: &ChangeBatch) {
        let mut inner = self.inner.lock().unwrap();
        let Some(feed) = inner.feeds.get(mds).copied() else {
            // No longer watched: its answers mean nothing here.
            return;
        };
        inner.session = session;
        let follows = feed.instance == batch.instance && !batch.lost && batch.last >= feed.last;
        if follows {
            for c in &batch.changes {
                inner.apply(c);
            }
        } else {
            inner.void_all();
        }
        let f = inner.feeds.get_mut(mds).expect("checked above");
        f.instance = batch.instance;
        f.last = batch.last;
        f.fresh_as_of = Some(f.fresh_as_of.map_or(sent, |t| t.max(sent)));
    }
}

/// Answers `Known` as a lookup result.
impl From<Known> for Result<Attr, Error> {
    fn from(k: Known) -> Self {
        match k {
            Known::Found(a) => Ok(a),
            Known::Absent => Err(Error::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::Timestamp;

    const MDS: &str = "127.0.0.1:9500";
    /// This client's session in the tests.
    const ME: u64 = 7;

    fn attr(ino: Ino, kind: FileKind, perm: u32, uid: u32) -> Attr {
        let t = Timestamp { sec: 1, nsec: 0 };
        Attr {
            ino,
            kind,
            perm,
            nlink: 1,
            uid,
            gid: uid,
            size: 0,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            layout: None,
            truncate_version: 0,
        }
    }

    fn file(ino: Ino) -> Attr {
        attr(ino, FileKind::File, 0o644, 0)
    }

    fn by(request: (u64, u64), changes: Vec<Change>) -> Vec<FeedChange> {
        changes
            .into_iter()
            .map(|change| FeedChange { change, request })
            .collect()
    }

    fn batch(instance: u64, last: u64, changes: Vec<FeedChange>) -> ChangeBatch {
        ChangeBatch {
            instance,
            last,
            lost: false,
            changes,
        }
    }

    fn entry(parent: Ino, name: &str) -> Change {
        Change::Entry {
            parent,
            name: name.into(),
        }
    }

    fn root() -> Creds {
        Creds::root()
    }

    /// Feeds `changes` (made by `request`) to the cache as the next answer of the feed.
    fn report(cache: &MetaCache, request: (u64, u64), changes: Vec<Change>) {
        let last = cache.feed_position(MDS).unwrap().1 + changes.len() as u64;
        cache.apply(
            MDS,
            Instant::now(),
            ME,
            &batch(9, last, by(request, changes)),
        );
    }

    /// A cache watching one MDS, trusted from now on.
    fn trusted_cache() -> MetaCache {
        let cache = MetaCache::default();
        cache.watch_only(&[MDS.to_string()]);
        let first = ChangeBatch {
            lost: true,
            ..batch(9, 0, vec![])
        };
        cache.apply(MDS, Instant::now(), ME, &first);
        cache
    }

    #[tokio::test(start_paused = true)]
    async fn answers_only_while_every_feed_is_fresh() {
        let cache = MetaCache::default();
        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        // No feed watched: not trusted.
        assert_eq!(cache.getattr(5), None);
        cache.watch_only(&[MDS.to_string()]);
        assert_eq!(cache.getattr(5), None, "no answer from the feed yet");

        let cache = trusted_cache();
        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
        tokio::time::advance(FEED_LEASE).await;
        assert_eq!(cache.getattr(5), None, "the feed's answer is too old");
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
        // A second MDS joins the map: not trusted until its feed answers.
        cache.watch_only(&[MDS.to_string(), "127.0.0.2:9500".into()]);
        assert_eq!(cache.getattr(5), None);
    }

    #[test]
    fn feed_changes_evict_what_they_name() {
        let cache = trusted_cache();
        let e = cache.epoch();
        cache.keep_entry(e, 1, "a", Some(&file(5)));
        cache.keep_entry(e, 1, "b", Some(&file(6)));
        cache.keep_entry(e, 1, "gone", None);
        assert!(matches!(cache.lookup(root, 0, 1, "a"), Some(Known::Found(a)) if a.ino == 5));
        assert_eq!(cache.lookup(root, 0, 1, "gone"), Some(Known::Absent));
        report(&cache, (3, 1), vec![Change::Inode(5), entry(1, "gone")]);
        assert_eq!(cache.lookup(root, 0, 1, "a"), None, "attributes evicted");
        assert_eq!(cache.lookup(root, 0, 1, "gone"), None, "entry evicted");
        assert!(cache.lookup(root, 0, 1, "b").is_some());
        report(&cache, (0, 0), vec![Change::All]);
        assert_eq!(cache.lookup(root, 0, 1, "b"), None);
    }

    #[test]
    fn an_answer_in_flight_across_a_change_is_not_kept() {
        let cache = trusted_cache();
        let asked = cache.epoch();
        report(&cache, (3, 1), vec![Change::Inode(77)]);
        cache.keep_attr(asked, &file(5));
        assert_eq!(cache.getattr(5), None);
        // The same for the answer to an own change that raced another client's change of
        // the same name; what the other change did not name is kept.
        cache.own_change(Vec::new(), || 40);
        report(&cache, (3, 2), vec![entry(1, "x")]);
        let made = OwnResult::Entry {
            parent: 1,
            name: "x".into(),
            attr: Some(file(8)),
        };
        cache.own_answered(40, Some(vec![made]));
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.lookup(root, 0, 1, "x"), None);
        assert_eq!(cache.getattr(8).map(|a| a.ino), Some(8));
    }

    #[test]
    fn an_unlink_of_a_known_name_needs_no_feed_report() {
        let cache = trusted_cache();
        let e = cache.epoch();
        let linked_twice = Attr {
            nlink: 2,
            ..file(5)
        };
        cache.keep_entry(e, 1, "a", Some(&linked_twice));
        cache.keep_entry(e, 1, "b", Some(&linked_twice));
        cache.keep_attr(e, &file(6));
        let unlink = |name: &str| {
            vec![
                OwnResult::Unlinked {
                    parent: 1,
                    name: name.into(),
                },
                OwnResult::Entry {
                    parent: 1,
                    name: name.into(),
                    attr: None,
                },
                OwnResult::Changed(1),
            ]
        };
        cache.own_change(Vec::new(), || 60);
        cache.own_answered(60, Some(unlink("a")));
        // Answered at once: the name is gone, the other name stays, the inode's link
        // count is asked again.
        assert_eq!(cache.lookup(root, 0, 1, "a"), Some(Known::Absent));
        assert_eq!(cache.getattr(5), None);
        assert_eq!(cache.getattr(6).map(|a| a.ino), Some(6));
        // A name the cache did not know: which inode lost a link is unknown, so nothing is
        // answered until the feed reported the change.
        cache.own_change(Vec::new(), || 61);
        cache.own_answered(61, Some(unlink("unknown")));
        assert_eq!(cache.getattr(6), None);
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.getattr(6).map(|a| a.ino), Some(6));
    }

    #[test]
    fn a_last_release_drops_an_unlinked_inode_at_once() {
        let cache = trusted_cache();
        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        cache.keep_attr(
            e,
            &Attr {
                nlink: 0,
                ..file(6)
            },
        );
        for (seq, ino) in [(50, 5), (51, 6)] {
            cache.own_change(Vec::new(), || seq);
            cache.own_answered(seq, Some(vec![OwnResult::Released(ino)]));
        }
        // No pause, no feed report needed: the linked inode is still answered, the
        // unlinked one (maybe destroyed) is not.
        assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
        assert_eq!(cache.getattr(6), None);
    }

    #[test]
    fn own_changes_are_read_back_and_their_reports_evict_the_rest() {
        let cache = trusted_cache();
        let e = cache.epoch();
        // Directory 1 lists "old" (inode 5, two links); this client unlinks it and
        // creates "new".
        cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
        cache.keep_entry(
            e,
            1,
            "old",
            Some(&Attr {
                nlink: 2,
                ..file(5)
            }),
        );
        cache.own_change(Vec::new(), || 10);
        // The feed's report may come before the answer...
        report(
            &cache,
            (ME, 10),
            vec![entry(1, "old"), Change::Inode(5), Change::Inode(1)],
        );
        let gone = OwnResult::Entry {
            parent: 1,
            name: "old".into(),
            attr: None,
        };
        // An unlink does not name the inode it unlinked: the cache waits for the feed.
        let unlink = vec![gone, OwnResult::Changed(1), OwnResult::Unknown];
        cache.own_answered(10, Some(unlink));
        // ... and until a watch sent after the answer is answered, nothing is answered.
        assert_eq!(cache.lookup(root, 0, 1, "old"), None);
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.lookup(root, 0, 1, "old"), Some(Known::Absent));
        assert_eq!(
            cache.getattr(5),
            None,
            "the unlinked inode's link count changed"
        );
        assert_eq!(cache.getattr(1), None, "the directory's times changed");

        // ... or after it: what the answer put here stays, the rest goes. A create names
        // everything it touched, so its answer is read back at once, without waiting.
        let e = cache.epoch();
        cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
        cache.own_change(Vec::new(), || 11);
        let made = OwnResult::Entry {
            parent: 1,
            name: "new".into(),
            attr: Some(file(6)),
        };
        cache.own_answered(11, Some(vec![made, OwnResult::Changed(1)]));
        assert!(matches!(cache.lookup(root, 0, 1, "new"), Some(Known::Found(a)) if a.ino == 6));
        assert_eq!(cache.getattr(1), None, "the directory's times changed");
        let e = cache.epoch();
        cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
        report(
            &cache,
            (ME, 11),
            vec![entry(1, "new"), Change::Inode(6), Change::Inode(1)],
        );
        assert!(matches!(cache.lookup(root, 0, 1, "new"), Some(Known::Found(a)) if a.ino == 6));
        assert_eq!(cache.getattr(1), None);
        // Another client's later change to the same inode is not mistaken for ours.
        report(&cache, (3, 11), vec![Change::Inode(6)]);
        assert_eq!(cache.lookup(root, 0, 1, "new"), None);
    }

    #[test]
    fn a_directory_this_client_made_answers_missing_names() {
        let cache = MetaCache::with_capacity(16, 4);
        cache.watch_only(&[MDS.to_string()]);
        let first = ChangeBatch {
            lost: true,
            ..batch(9, 0, vec![])
        };
        cache.apply(MDS, Instant::now(), ME, &first);
        let mkdir = |seq: u64, dir: Ino| {
            cache.own_change(Vec::new(), || seq);
            let made = OwnResult::Entry {
                parent: 1,
                name: format!("d{dir}"),
                attr: Some(attr(dir, FileKind::Dir, 0o755, 0)),
            };
            cache.own_answered(seq, Some(vec![made, OwnResult::NewDir(dir)]));
        };
        mkdir(20, 2);
        assert_eq!(cache.lookup(root, 0, 2, "x"), Some(Known::Absent));
        // A name the MDS would refuse is left to the MDS (ENAMETOOLONG, not ENOENT).
        let long = "x".repeat(rustre_proto::msg::NAME_MAX_BYTES + 1);
        assert_eq!(cache.lookup(root, 0, 2, &long), None);
        // Its own files are known; the report of its own create keeps it complete.
        cache.own_change(Vec::new(), || 21);
        let made = OwnResult::Entry {
            parent: 2,
            name: "x".into(),
            attr: Some(file(7)),
        };
        cache.own_answered(21, Some(vec![made, OwnResult::Changed(2)]));
        report(
            &cache,
            (ME, 21),
            vec![entry(2, "x"), Change::Inode(7), Change::Inode(2)],
        );
        assert!(matches!(cache.lookup(root, 0, 2, "x"), Some(Known::Found(a)) if a.ino == 7));
        assert_eq!(cache.lookup(root, 0, 2, "y"), Some(Known::Absent));
        // ... and so does its report arriving before the answer.
        cache.own_change(vec![(2, "w".into())], || 25);
        report(&cache, (ME, 25), vec![entry(2, "w"), Change::Inode(2)]);
        let made = OwnResult::Entry {
            parent: 2,
            name: "w".into(),
            attr: Some(file(9)),
        };
        cache.own_answered(25, Some(vec![made, OwnResult::Changed(2)]));
        assert!(matches!(cache.lookup(root, 0, 2, "w"), Some(Known::Found(a)) if a.ino == 9));
        assert_eq!(cache.lookup(root, 0, 2, "y"), Some(Known::Absent));
        // Another client's change of any name in it: no longer complete.
        report(&cache, (3, 1), vec![entry(2, "z")]);
        assert_eq!(cache.lookup(root, 0, 2, "y"), None);

        // A name of a complete directory pushed out of the LRU must not read as missing.
        mkdir(22, 3);
        cache.own_change(Vec::new(), || 24);
        let made = OwnResult::Entry {
            parent: 3,
            name: "kept".into(),
            attr: Some(file(8)),
        };
        cache.own_answered(24, Some(vec![made, OwnResult::Changed(3)]));
        assert!(cache.lookup(root, 0, 3, "kept").is_some());
        let e = cache.epoch();
        for n in 0..4 {
            cache.keep_entry(e, 9, &format!("n{n}"), None);
        }
        assert_eq!(cache.lookup(root, 0, 3, "kept"), None);
        // ... but the directory stays complete: a name it never had is still known absent.
        assert_eq!(cache.lookup(root, 0, 3, "y"), Some(Known::Absent));

        // A report naming the directory while the mkdir was in flight: not complete.
        cache.own_change(Vec::new(), || 23);
        report(&cache, (3, 2), vec![entry(4, "early")]);
        let made = OwnResult::Entry {
            parent: 1,
            name: "d4".into(),
            attr: Some(attr(4, FileKind::Dir, 0o755, 0)),
        };
        cache.own_answered(23, Some(vec![made, OwnResult::NewDir(4)]));
        assert_eq!(cache.lookup(root, 0, 4, "y"), None);
    }

    #[test]
    fn a_complete_directory_outgrows_the_entry_lru_but_not_its_name_limit() {
        let cache = MetaCache::with_capacity(16, 4);
        cache.inner.lock().unwrap().complete_names_max = 100;
        cache.watch_only(&[MDS.to_string()]);
        let first = ChangeBatch {
            lost: true,
            ..batch(9, 0, vec![])
        };
        cache.apply(MDS, Instant::now(), ME, &first);
        cache.own_change(Vec::new(), || 1);
        let made = OwnResult::Entry {
            parent: 1,
            name: "big".into(),
            attr: Some(attr(2, FileKind::Dir, 0o755, 0)),
        };
        cache.own_answered(1, Some(vec![made, OwnResult::NewDir(2)]));
        let create = |seq: u64, name: String| {
            cache.own_change(Vec::new(), || seq);
            let made = OwnResult::Entry {
                parent: 2,
                name,
                attr: Some(file(1000 + seq)),
            };
            cache.own_answered(seq, Some(vec![made, OwnResult::Changed(2)]));
        };
        // 25 times more names than the LRU holds: every name not made is still known absent,
        // every name made is asked for (its entry went) or found, never called absent.
        for n in 0..100 {
            create(10 + n, format!("f{n}"));
        }
        for n in 0..100 {
            let known = cache.lookup(root, 0, 2, &format!("f{n}"));
            assert!(!matches!(known, Some(Known::Absent)), "f{n}: {known:?}");
        }
        let absent = (0..1000)
            .filter(|n| cache.lookup(root, 0, 2, &format!("g{n}")) == Some(Known::Absent))
            .count();
        // A 32-bit hash of 100 names shadows another name about once in 40 million.
        assert_eq!(absent, 1000);
        // The 101st name passes the limit: the directory is no longer complete.
        create(110, "f100".into());
        assert_eq!(cache.lookup(root, 0, 2, "g0"), None);
        assert_eq!(cache.inner.lock().unwrap().complete_names, 0);
    }

    #[test]
    fn a_rename_of_known_names_is_read_back_at_once_else_waits_for_the_feed() {
        let cache = trusted_cache();
        let e = cache.epoch();
        cache.keep_entry(e, 1, "a", Some(&file(5)));
        cache.keep_entry(e, 1, "b", None);
        let rename = |from: &str, to: &str| OwnResult::Renamed {
            from: (1, from.into()),
            to: (1, to.into()),
            exchange: false,
        };
        cache.own_change(vec![(1, "a".into()), (1, "b".into())], || 30);
        // The feed's report of the rename comes before its answer: it leaves the names the
        // request named alone, for the answer to set.
        report(
            &cache,
            (ME, 30),
            vec![entry(1, "a"), entry(1, "b"), Change::Inode(5)],
        );
        cache.own_answered(30, Some(vec![rename("a", "b"), OwnResult::Changed(1)]));
        assert_eq!(cache.lookup(root, 0, 1, "a"), Some(Known::Absent));
        assert_eq!(cache.getattr(5), None, "the moved inode's ctime changed");
        cache.keep_attr(cache.epoch(), &file(5));
        assert!(matches!(cache.lookup(root, 0, 1, "b"), Some(Known::Found(a)) if a.ino == 5));
        // The target "c" is not known (it may have held an inode that lost a link): nothing
        // is answered until the feed reported the rename.
        cache.own_change(vec![(1, "b".into()), (1, "c".into())], || 31);
        cache.own_answered(31, Some(vec![rename("b", "c")]));
        assert_eq!(cache.lookup(root, 0, 1, "b"), None, "paused");
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.lookup(root, 0, 1, "b"), None, "evicted, not known");
        // A refused change whose report came early: the names it named are evicted, as
        // the report may be of a commit after all.
        cache.keep_entry(cache.epoch(), 1, "d", Some(&file(7)));
        cache.own_change(vec![(1, "d".into())], || 32);
        report(&cache, (ME, 32), vec![entry(1, "d")]);
        assert!(
            cache.lookup(root, 0, 1, "d").is_some(),
            "left for the answer"
        );
        cache.own_answered(32, Some(vec![OwnResult::Unknown]));
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.lookup(root, 0, 1, "d"), None);
    }

    #[test]
    fn unknown_outcomes_and_lost_feeds_void_everything() {
        let cache = trusted_cache();
        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        cache.own_change(Vec::new(), || 12);
        cache.own_answered(12, None);
        report(&cache, (0, 0), vec![]);
        assert_eq!(cache.getattr(5), None);

        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        // A new instance (the MDS restarted): changes may be lost.
        cache.apply(MDS, Instant::now(), ME, &batch(10, 0, vec![]));
        assert_eq!(cache.getattr(5), None);

        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        let lost = ChangeBatch {
            lost: true,
            ..batch(10, 70_000, vec![])
        };
        cache.apply(MDS, Instant::now(), ME, &lost);
        assert_eq!(cache.getattr(5), None);

        let e = cache.epoch();
        cache.keep_attr(e, &file(5));
        // An MDS leaves the map: what its feed had not delivered is unknown.
        cache.watch_only(&[]);
        cache.watch_only(&[MDS.to_string()]);
        cache.apply(MDS, Instant::now(), ME, &lost);
        assert_eq!(cache.getattr(5), None);
    }

    #[test]
    fn lookups_check_search_permission_on_the_cached_directory() {
        let cache = trusted_cache();
        let e = cache.epoch();
        // Directory 2 owned by uid 1000, searchable by its owner only.
        cache.keep_attr(e, &attr(2, FileKind::Dir, 0o700, 1000));
        cache.keep_entry(e, 2, "f", Some(&attr(9, FileKind::File, 0o644, 1000)));
        let other = || Creds {
            uid: 2000,
            gid: 2000,
            groups: vec![],
        };
        assert!(cache.lookup(other, 1000, 2, "f").is_some(), "owner");
        assert_eq!(
            cache.lookup(other, 2000, 2, "f"),
            None,
            "others ask the MDS"
        );
        assert!(
            cache.lookup(root, 0, 2, "f").is_some(),
            "root searches anything"
        );
        // Without the directory's attributes only root is answered.
        let e = cache.epoch();
        cache.keep_entry(e, 3, "g", None);
        assert_eq!(cache.lookup(other, 2000, 3, "g"), None);
        assert_eq!(cache.lookup(root, 0, 3, "g"), Some(Known::Absent));
        // Group-searchable only: membership decides, so the groups are read.
        let e = cache.epoch();
        cache.keep_attr(
            e,
            &Attr {
                gid: 50,
                ..attr(4, FileKind::Dir, 0o710, 1000)
            },
        );
        cache.keep_entry(e, 4, "h", None);
        let member = || Creds {
            uid: 2000,
            gid: 2000,
            groups: vec![50],
        };
        assert_eq!(cache.lookup(member, 2000, 4, "h"), Some(Known::Absent));
        assert_eq!(cache.lookup(other, 2000, 4, "h"), None);
    }
}

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
//! answer showing it is evicted at once when it is named (a link's directory times), and
//! when it is not (a refused change's, an unknown outcome's) the cache answers nothing until
//! a watch *sent after the answer* has been answered, by when the report has evicted it (an
//! unlink, rmdir or rename answers every inode it touched) — so a client always reads
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
use rustre_proto::msg::{may_access, validate_name, Attr, Creds, FileKind, Ino, Timestamp};
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::time::Instant;

/// Attributes kept (one per inode).
pub(super) const META_CACHE_ATTRS: usize = 65_536;
/// Inodes remembered as orphans whose cached names are not answered ([`MetaCache::orphaned`]).
pub(super) const ORPHANS_KEPT: usize = 1024;
/// Names kept (positive and negative).
pub(super) const META_CACHE_ENTRIES: usize = 65_536;
/// How long after a watcher asked its MDS for changes the answer vouches for the cache.
pub const FEED_LEASE: Duration = Duration::from_secs(1);
/// Name hashes kept for complete directories, over all of them (about 5 bytes each, twice
/// that while a set grows): a directory whose next name would pass this stops being
/// complete, and lookups of names it lacks go to the MDS again.
pub(super) const COMPLETE_NAMES_MAX: usize = 2 << 20;
/// Own changes of unknown outcome remembered (see `Inner::own_unknown`).
pub(super) const MAX_UNKNOWN_OUTCOMES: usize = 1024;

/// A moment in the cache's history: answers fetched from the MDS are stamped with the
/// epoch at which they were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Epoch(u64);

/// What one MDS's feed has told this client.
#[derive(Debug, Clone, Copy)]
struct FeedState {
    instance: u64,
    last: u64,
    /// When the request of the newest answer was sent (`None`: no answer yet).
    fresh_as_of: Option<Instant>,
}

/// A cached answer: the epoch it was asked at, and the request of this client whose own
/// answer it is (0: a read), with that request's `settled_below` ([`InFlight`]).
#[derive(Debug, Clone)]
struct Stamped<T> {
    value: T,
    epoch: u64,
    by: u64,
    settled_below: u64,
}

impl<T> Stamped<T> {
    /// The answer to this client's own change `by`, sent when every own change numbered
    /// below `settled_below` was answered.
    fn own(value: T, epoch: u64, by: u64, settled_below: u64) -> Stamped<T> {
        Stamped {
            value,
            epoch,
            by,
            settled_below,
        }
    }

    /// The answer to a read asked at `epoch`.
    fn read(value: T, epoch: u64) -> Stamped<T> {
        Stamped::own(value, epoch, 0, 0)
    }

    /// Whether this answer already shows the change a feed reports for `request`, this
    /// client's own change `seq` when `own`: it is that change's own answer, or that
    /// change was answered (so committed) before this answer's request was sent.
    fn shows(&self, own: bool, seq: u64) -> bool {
        own && (self.by == seq || seq < self.settled_below)
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
pub(super) const MAX_NAMED_IN_FLIGHT: usize = 4096;

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
    /// Inodes an open found without links (`client/stale_open.rs`): a cached name that
    /// leads to one of them is not answered (the MDS is asked where it leads now).
    orphans: LruCache<Ino, ()>,
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

    /// Records own change `seq` as in flight; returns its `settled_below` ([`InFlight`]).
    fn begin_own(&mut self, seq: u64, request_entries: Vec<(Ino, String)>) -> u64 {
        let in_flight = self.own_in_flight.keys().copied().min();
        let unknown = self.own_unknown.first().copied();
        let settled_below = in_flight.into_iter().chain(unknown).min().unwrap_or(seq);
        let f = InFlight {
            settled_below: settled_below.min(seq),
            named: Some(Vec::new()),
            request_entries,
            deferred: Vec::new(),
        };
        self.own_in_flight.insert(seq, f);
        settled_below.min(seq)
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
            // What this client's own answers put here may already show the change.
            Change::Inode(ino) => {
                if self.attrs.peek(ino).is_some_and(|a| !a.shows(own, seq)) {
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
                if self.entries.peek(&key).is_none_or(|e| !e.shows(own, seq)) {
                    self.pop_entry(&key);
                }
            }
            Change::All => self.void_all(),
            // Not a change (taken out of the batch before it comes here).
            Change::Recall(_) => {}
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
pub(super) enum OwnResult {
    /// The inode's attributes now.
    Attr(Attr),
    /// What `name` in `parent` names now (`None`: nothing).
    Entry {
        parent: Ino,
        name: String,
        attr: Option<Attr>,
    },
    /// The inode's atime is now `atime`, nothing else changed (an atime update, which
    /// runs beside this client's other calls: an answer of one that committed before
    /// another call of this client may arrive after that call's answer, and must not
    /// bring back the older times of the rest).
    Atime(Ino, Timestamp),
    /// The inode's attributes changed in a way the answer does not show.
    Changed(Ino),
    /// The change destroyed the inode (its last name went, or an empty directory did): its
    /// attributes go, and a directory stops being complete.
    Gone(Ino),
    /// The last release of an inode with no names left destroys it: its attributes go if
    /// they show no links (a release of a linked inode changes nothing the cache holds).
    Released(Ino),
    /// This change made directory `dir`: it is empty, so every name in it is known.
    NewDir(Ino),
    /// The change may have touched inodes no answer names: the cache answers nothing until
    /// the feed has reported it.
    Unknown,
}

/// The cache of one client.
pub(super) struct MetaCache {
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

/// What the cache knows of a name. Only returned, never stored: boxing the attributes would
/// cost an allocation per lookup answered from the cache.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Known {
    /// The name's attributes.
    Found(Attr),
    /// The name does not exist.
    Absent,
}

impl MetaCache {
    pub(super) fn with_capacity(attrs: usize, entries: usize) -> MetaCache {
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
                orphans: LruCache::new(cap(ORPHANS_KEPT)),
            }),
            enabled: AtomicBool::new(true),
            hits: AtomicU64::new(0),
        }
    }

    /// Lookups and getattrs answered from the cache so far.
    pub(super) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Turns answering from the cache on or off.
    pub(super) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The epoch to stamp an answer about to be asked for with.
    pub(super) fn epoch(&self) -> Epoch {
        Epoch(lock(&self.inner).epoch)
    }

    /// This client is about to send a change naming `request_entries`: numbers it with
    /// `next_seq` (called under the cache's lock, so numbers and sends are in the same
    /// order) and returns the number to give [`MetaCache::own_answered`].
    pub(super) fn own_change(
        &self,
        request_entries: Vec<(Ino, String)>,
        next_seq: impl FnOnce() -> u64,
    ) -> u64 {
        let mut inner = lock(&self.inner);
        let seq = next_seq();
        inner.begin_own(seq, request_entries);
        seq
    }

    /// The answer to change `seq` arrived: `results` are kept, except what a report that
    /// may be newer named meanwhile (that is evicted). `None`: the outcome is unknown (the
    /// call failed on the way), so everything is void.
    pub(super) fn own_answered(&self, seq: u64, results: Option<Vec<OwnResult>>) {
        let mut inner = lock(&self.inner);
        let (named, deferred, settled_below) = match inner.own_in_flight.remove(&seq) {
            Some(f) => (f.named, f.deferred, f.settled_below),
            None => (None, Vec::new(), 0),
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
                Change::Inode(_) | Change::Recall(_) => false,
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
                OwnResult::Attr(a) => keep_own_attr(
                    &mut inner,
                    &newer_attr,
                    Stamped::own(a, epoch, seq, settled_below),
                ),
                OwnResult::Entry { parent, name, attr } => {
                    let key = (parent, name);
                    if newer_entry(key.0, &key.1) || key.1 == "." || key.1 == ".." {
                        inner.pop_entry(&key);
                    } else {
                        kept.push(key.clone());
                        inner.put_entry(
                            key,
                            Stamped::own(attr.as_ref().map(|a| a.ino), epoch, seq, settled_below),
                        );
                    }
                    if let Some(a) = attr {
                        keep_own_attr(
                            &mut inner,
                            &newer_attr,
                            Stamped::own(a, epoch, seq, settled_below),
                        );
                    }
                }
                OwnResult::Atime(ino, atime) => {
                    if newer_attr(ino) {
                        inner.attrs.pop(&ino);
                    } else if let Some(a) = inner.attrs.get_mut(&ino) {
                        a.value.atime = atime;
                    }
                }
                OwnResult::Changed(ino) => {
                    inner.attrs.pop(&ino);
                }
                OwnResult::Gone(ino) => {
                    inner.attrs.pop(&ino);
                    inner.end_complete(ino);
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
                        Change::Inode(_) | Change::Recall(_) => false,
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
    pub(super) fn keep_attr(&self, asked: Epoch, attr: &Attr) {
        let mut inner = lock(&self.inner);
        if inner.epoch == asked.0 {
            let a = Stamped::read(attr.clone(), asked.0);
            inner.attrs.put(attr.ino, a);
        }
    }

    /// Drops the cached attributes of `ino` and voids every answer in flight (an answer
    /// asked for before this is not kept): the next ones come from the MDS.
    pub(super) fn forget_attr(&self, ino: Ino) {
        let mut inner = lock(&self.inner);
        inner.epoch += 1;
        inner.attrs.pop(&ino);
    }

    /// Other clients may add names to `dir` from now on (its capability went back before
    /// they could): a name missing here is asked for, not answered absent at once, even
    /// before the feed reports their change.
    pub(super) fn shared_from_now(&self, dir: Ino) {
        lock(&self.inner).end_complete(dir);
    }

    /// Forgets `ino`'s attributes and stops answering, from now on, the cached names that
    /// lead to it: an open found it without links, so those names are stale.
    pub(super) fn orphaned(&self, ino: Ino) {
        let mut inner = lock(&self.inner);
        inner.epoch += 1;
        inner.attrs.pop(&ino);
        inner.orphans.put(ino, ());
    }

    /// Keeps the answer to looking up `name` in `parent` (`None`: no such name) asked for at
    /// `asked`, unless something changed since.
    pub(super) fn keep_entry(&self, asked: Epoch, parent: Ino, name: &str, attr: Option<&Attr>) {
        if name == "." || name == ".." {
            return;
        }
        let mut inner = lock(&self.inner);
        if inner.epoch != asked.0 {
            return;
        }
        if let Some(a) = attr {
            let a = Stamped::read(a.clone(), asked.0);
            inner.attrs.put(a.value.ino, a);
        }
        let e = Stamped::read(attr.map(|a| a.ino), asked.0);
        inner.put_entry((parent, name.to_string()), e);
    }

    /// The stamp of `ino`'s cached attributes (the epoch they were kept at), if cached and
    /// the cache is trusted: while it stays the same, nothing this client learnt of (its
    /// own changes, every MDS's feed) changed the inode.
    pub(super) fn attr_stamp(&self, ino: Ino) -> Option<Epoch> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let inner = lock(&self.inner);
        if !inner.trusted(Instant::now()) {
            return None;
        }
        let a = inner.attrs.peek(&ino)?;
        (a.epoch >= inner.valid_from).then_some(Epoch(a.epoch))
    }

    /// The attributes of `ino`, if cached and the cache is trusted.
    pub(super) fn getattr(&self, ino: Ino) -> Option<Attr> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut inner = lock(&self.inner);
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
    pub(super) fn lookup(
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
        let mut inner = lock(&self.inner);
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
            inner = lock(&self.inner);
        }
        let ino = inner.entry(&(parent, name.to_string()))?;
        if ino.is_some_and(|i| inner.orphans.contains(&i)) {
            return None;
        }
        let known = match ino {
            None => Some(Known::Absent),
            Some(ino) => inner.attr(ino).map(Known::Found),
        };
        if known.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    /// The inode `name` in `parent` names, if cached and the cache is trusted; no
    /// permission check (for this client's own bookkeeping, never for an answer).
    pub(super) fn entry_ino(&self, parent: Ino, name: &str) -> Option<Ino> {
        let mut inner = lock(&self.inner);
        if !self.enabled.load(Ordering::Relaxed) || !inner.trusted(Instant::now()) {
            return None;
        }
        inner.entry(&(parent, name.to_string()))?
    }

    /// Whether every MDS of the map has a watcher whose last answer was asked for less than
    /// [`FEED_LEASE`] ago: the feeds vouch for what is cached, here and in the kernel.
    pub(super) fn feeds_live(&self) -> bool {
        let inner = lock(&self.inner);
        let now = Instant::now();
        !inner.feeds.is_empty()
            && inner
                .feeds
                .values()
                .all(|f| f.fresh_as_of.is_some_and(|t| now < t + FEED_LEASE))
    }

    /// Makes the feeds watched exactly those of `mds` (addresses). A feed that stops being
    /// watched may have had changes this client never heard of: everything is void.
    pub(super) fn watch_only(&self, mds: &[String]) {
        let mut inner = lock(&self.inner);
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
    pub(super) fn feed_position(&self, mds: &str) -> Option<(u64, u64)> {
        let inner = lock(&self.inner);
        inner.feeds.get(mds).map(|f| (f.instance, f.last))
    }

    /// Applies an answer of `mds`'s feed to a request sent at `sent`, for the client whose
    /// session is `session`. An answer that does not follow on from the last one (lost
    /// changes, a new instance) voids everything. Answers whether it followed on (`None`:
    /// `mds` is no longer watched, and the answer was ignored).
    pub(super) fn apply(
        &self,
        mds: &str,
        sent: Instant,
        session: u64,
        batch: &ChangeBatch,
    ) -> Option<bool> {
        let mut inner = lock(&self.inner);
        let Some(feed) = inner.feeds.get(mds).copied() else {
            // No longer watched: its answers mean nothing here.
            return None;
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
        Some(follows)
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

mod ahead;
pub(super) use ahead::Ahead;
#[cfg(test)]
mod tests;

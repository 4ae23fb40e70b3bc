//! Unlinks and renames answered ahead of the MDS (asynchronous directory operations, as
//! CephFS's): the reply goes to the application as soon as the request is on the wire, and
//! the MDS's answer is waited for in the background.
//!
//! An unlink or a rename is one MDS round trip that the application waits for; `rm -r`, a
//! build's clean and rsync's rename of every file it wrote make thousands in a row. When
//! this client's metadata cache already knows everything the MDS checks
//! (`MetaCache::unlink_ahead`, `MetaCache::rename_ahead`: the directory's attributes and
//! the caller's permission on it, the names and the inodes they lead to, the sticky rule),
//! the outcome is known before the MDS answers: the change is numbered, shown in the cache
//! at once, written to the MDS's connection on the calling thread (or, while an earlier
//! one is on its way, queued for the next batch: [`super::dirops_send`]) and answered. The next one does not wait for the previous one's answer, so a loop of them
//! overlaps its round trips. At most [`DIROPS_AHEAD_MAX`] are in flight (the next one
//! waits for a place, not for all of them). Renames go ahead
//! only within one directory, without flags, of a non-directory. None goes ahead while an
//! open answered ahead is not recorded at the MDS yet ([`super::open_ahead`]).
//!
//! Order: every other metadata call of this client comes after the changes answered
//! before it, as if each had waited: a create of a name just unlinked, an `fsync` of the
//! directory (`SyncMeta`) and the close of the session at unmount wait until none is in
//! flight ([`Client::dirops_settled`]); an rmdir and the lookups, getattrs and listings
//! the cache cannot answer go behind them in their stream instead
//! ([`super::dirops_send`]). What the cache answers already shows them.
//!
//! Other clients: a change answered ahead reaches the MDS a round trip after the process
//! that made it went on. In a directory this client made and holds the capability of
//! ([`super::dir_caps`]; a mount's default, [`AsyncDirops::Capped`]) no other client can
//! look meanwhile: the MDS holds its request, recalls the capability, and runs the request
//! once this client's changes in flight are answered. Anywhere else (`-o async_dirops`,
//! [`AsyncDirops::Everywhere`]) another client's open or lookup in that moment still finds
//! the old names, even one the test process orders after the change (tests/coherence.rs
//! replaces a file through one mount and opens it through another at once: 3 of 100 opens
//! read the old file that way), which breaks the cross-client rule of docs/mount.md: it
//! is for directories one client works in (scratch, build trees).
//!
//! Failures: another client can still change the directory between this client's look and
//! the MDS's transaction (the cache is only as fresh as the change feeds, docs/
//! metadata-cache.md). An unlink whose name is gone by then happened, in effect, first.
//! Any other refusal (the directory's permission changed by another client meanwhile, this
//! client's session fenced) is logged and counted (`rustre_client_dirops_ahead_failed`),
//! and the cache and the kernel forget what they were shown, so the names show what the
//! MDS holds. A client
//! killed before its requests left loses the changes it answered but had not written (the
//! socket was full); docs/operations.md states the rule.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustre_proto::msg::mds::MdsOp;
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::sync::lock;
use tokio::sync::Notify;

use super::dir_caps::DirCaps;
use super::dirops_send::{InFlight, Outgoing, Queued, Waiter};
use super::meta_cache::Ahead;
use super::meta_ops::request_entries;
use super::open_ahead::OpenRecords;
use super::{metrics, Client};

/// Most changes answered ahead whose MDS answer has not arrived; the next one waits for a
/// place.
pub(super) const DIROPS_AHEAD_MAX: usize = 64;

/// Where unlinks and renames may be answered ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsyncDirops {
    /// Nowhere: every change waits for the MDS (`-o noasync_dirops`, a `sync` mount, and
    /// the library's other users: the `rustre` commands, the simulation).
    #[default]
    Off,
    /// In the directories this client made and holds the capability of ([`DirCaps`]),
    /// which the MDS recalls before another client looks into them: a mount's default.
    Capped,
    /// In every directory (`-o async_dirops`): another client may see a change a round trip
    /// late (see the module documentation).
    Everywhere,
}

/// The changes answered ahead and still in flight.
#[derive(Default)]
pub(super) struct DiropsAhead {
    /// An [`AsyncDirops`] as a number.
    mode: AtomicU8,
    /// The directories this client may go ahead in with [`AsyncDirops::Capped`].
    pub(super) caps: DirCaps,
    in_flight: AtomicUsize,
    /// The records of opens answered ahead (`super::open_ahead`): no unlink or rename goes
    /// ahead of one the MDS has not heard of.
    pub(super) records: OpenRecords,
    /// Woken when `in_flight` drops to 0.
    settled: Notify,
    /// Woken once per place given back.
    freed: Notify,
    /// When the last change was answered ahead.
    last_answered: Mutex<Option<Instant>>,
    /// The changes answered ahead not yet sent ([`super::dirops_send`]).
    pub(super) outgoing: Outgoing,
}

impl DiropsAhead {
    /// Takes a place in flight, waiting for one while all are taken (for one answer,
    /// rather than for every one as a waited change would). False when off.
    async fn take(&self) -> bool {
        if self.mode() == AsyncDirops::Off {
            return false;
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let took = self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < DIROPS_AHEAD_MAX).then_some(n + 1)
                });
            if took.is_ok() {
                return true;
            }
            freed.await;
        }
    }

    fn mode(&self) -> AsyncDirops {
        match self.mode.load(Ordering::Relaxed) {
            1 => AsyncDirops::Capped,
            2 => AsyncDirops::Everywhere,
            _ => AsyncDirops::Off,
        }
    }

    /// Whether a `Mkdir` asks for the new directory's capability: only where changes go
    /// ahead in capped directories alone.
    pub(super) fn asks_dir_caps(&self) -> bool {
        self.mode() == AsyncDirops::Capped
    }

    /// Whether a change in `dir` may go ahead, asked after a place was taken: a recall
    /// that ends the capability first sees that place in flight and waits for it
    /// ([`Client::return_dir_caps`]).
    fn may_go_ahead_in(&self, dir: Ino) -> bool {
        match self.mode() {
            AsyncDirops::Off => false,
            AsyncDirops::Capped => self.caps.holds(dir),
            AsyncDirops::Everywhere => true,
        }
    }

    /// [`Self::may_go_ahead_in`], and every open answered ahead is recorded at the MDS: an
    /// unlink or rename reaching the MDS before an open's record could destroy the file it
    /// opened (waited, it comes after it).
    fn may_go_ahead_of_opens(&self, dir: Ino) -> bool {
        self.records.none_unsent() && self.may_go_ahead_in(dir)
    }

    /// Whether a change was answered ahead within `within` (an `rm -r` at work, say).
    pub(super) fn answered_within(&self, within: Duration) -> bool {
        lock(&self.last_answered).is_some_and(|at| at.elapsed() < within)
    }

    /// Whether a change answered ahead is in flight.
    pub(super) fn any_in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) != 0
    }

    /// Gives a place back.
    pub(super) fn give_back(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_one();
        if before == 1 {
            self.settled.notify_waiters();
        }
    }
}

impl Client {
    /// Where unlinks and renames may be answered ahead (nowhere unless a mount asks).
    pub fn set_async_dirops(&self, mode: AsyncDirops) {
        let n = match mode {
            AsyncDirops::Off => 0,
            AsyncDirops::Capped => 1,
            AsyncDirops::Everywhere => 2,
        };
        self.dirops_ahead.mode.store(n, Ordering::Relaxed);
    }

    /// Waits until no change answered ahead is in flight.
    pub(super) async fn dirops_settled(&self) {
        let u = &self.dirops_ahead;
        // The common case, every metadata call's: nothing in flight, no waiter registered.
        if u.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(m) = metrics::get() {
            m.dirops_ahead_waits.inc();
        }
        while u.in_flight.load(Ordering::Acquire) != 0 {
            let notified = u.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if u.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Answers the unlink of `name` from `parent` ahead of the MDS if the cache settles its
    /// outcome (see the module documentation): sends it, and returns true. False: the
    /// caller sends it and waits, as always.
    pub(super) async fn try_unlink_ahead(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
    ) -> bool {
        if !self.dirops_ahead.may_go_ahead_of_opens(parent) || !self.dirops_ahead.take().await {
            return false;
        }
        let next_seq = || self.seq.fetch_add(1, Ordering::Relaxed);
        let planned = self
            .dirops_ahead
            .may_go_ahead_of_opens(parent)
            .then(|| self.meta_cache.unlink_ahead(creds, parent, name, next_seq))
            .flatten();
        let Some(ahead) = planned else {
            self.dirops_ahead.give_back();
            return false;
        };
        if let Some(m) = metrics::get() {
            m.unlinks_ahead.inc();
        }
        let name = name.to_string();
        self.send_ahead(creds, ahead, MdsOp::Unlink { parent, name })
            .await;
        true
    }

    /// As [`Client::try_unlink_ahead`], for renaming `name` to `new_name` within `parent`.
    pub(super) async fn try_rename_ahead(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
        new_name: &str,
    ) -> bool {
        if !self.dirops_ahead.may_go_ahead_of_opens(parent) || !self.dirops_ahead.take().await {
            return false;
        }
        let next_seq = || self.seq.fetch_add(1, Ordering::Relaxed);
        let planned = self
            .dirops_ahead
            .may_go_ahead_of_opens(parent)
            .then(|| {
                self.meta_cache
                    .rename_ahead(creds, parent, name, new_name, next_seq)
            })
            .flatten();
        let Some(ahead) = planned else {
            self.dirops_ahead.give_back();
            return false;
        };
        if let Some(m) = metrics::get() {
            m.renames_ahead.inc();
        }
        let op = MdsOp::Rename {
            parent,
            name: name.to_string(),
            new_parent: parent,
            new_name: new_name.to_string(),
            flags: 0,
        };
        self.send_ahead(creds, ahead, op).await;
        true
    }

    /// Sends `op`, answered ahead as `ahead`; polled here until it waits for the answer,
    /// so the request is written before the caller replies to the kernel. Open listings
    /// stop handing out its names first, as after a waited change.
    async fn send_ahead(self: &Arc<Self>, creds: &Creds, ahead: Ahead, op: MdsOp) {
        for (parent, name) in request_entries(&op) {
            self.dirs.drop_listed(parent, &name).await;
        }
        *lock(&self.dirops_ahead.last_answered) = Some(Instant::now());
        let f = InFlight::new(self.clone(), ahead.seq);
        let creds = creds.clone();
        self.send_in_order(Queued {
            creds,
            op,
            waiter: Waiter::Ahead { f, ahead },
        });
    }
}

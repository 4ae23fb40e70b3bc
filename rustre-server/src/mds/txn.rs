//! The transaction engine: every MDS operation runs as one transaction on the metadata KV,
//! under the striped locks of the directories it changes, recorded under its request id
//! when it has one, with what it writes published on the change feed; mutations of a
//! durable MDS (and records others rely on, on any MDS) are answered only after the group
//! commit. Inode numbers are handed out here
//! too, in batches taken from a shared counter.

use std::sync::{Arc, MutexGuard};

use rustre_proto::msg::mds::Change;
use rustre_proto::msg::{Creds, Ino, ROOT_INO};
use rustre_proto::sync::lock;
use rustre_proto::Error;
use serde::{de::DeserializeOwned, Serialize};

use super::config::{DIR_LOCK_STRIPES, INO_BATCH};
use super::error::MdsError;
use super::namespace::Ctx;
use super::{feed, requests, store, Mds};
use crate::meta::{KvError, PrefixSet, Transaction};
use crate::schema;

/// Whether a transaction changes anything, under which request id it is recorded, and
/// when its answer waits for it to be on disk.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mutation {
    ReadOnly,
    Write {
        record: Option<(u64, u64)>,
        ack: Ack,
    },
}

/// When the answer to a mutation waits for its commit to be on disk (the group commit).
/// Every commit is in the OS page cache before any answer, so an MDS process crash loses
/// none; this is about a power loss (docs/operations.md, "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ack {
    /// Bookkeeping (opens, closes, size reports, background work): on disk by the next sync.
    NextSync,
    /// A namespace or attribute change: on disk before the answer on an MDS run with
    /// `--durable`, by the next sync (at most `COMMIT_INTERVAL` later) otherwise.
    Change,
    /// A record something outside the store relies on as soon as it is answered (a stale
    /// mark an fsync returns on, a settled cut, a lock, a migration step, a layout change
    /// that fences OSTs): on disk before the answer in every mode.
    OnDisk,
}

impl Mutation {
    /// Bookkeeping with no request id (background work, sessions).
    pub(super) const WRITE: Mutation = Mutation::Write {
        record: None,
        ack: Ack::NextSync,
    };

    /// A record that must be on disk before the answer in every mode, with no request id.
    pub(super) const ON_DISK: Mutation = Mutation::Write {
        record: None,
        ack: Ack::OnDisk,
    };
}

/// What a transaction body may fail with: the wire error of an answer, or the MDS's own
/// [`MdsError`] (which a body needs only to say it waits for OSTs).
pub(super) trait BodyError:
    From<KvError> + From<Error> + Into<MdsError> + Send + 'static
{
}
impl<E: From<KvError> + From<Error> + Into<MdsError> + Send + 'static> BodyError for E {}

/// The lock stripes of `dirs`, sorted and without repeats (the order locks are taken in).
fn lock_stripes(dirs: &[Ino]) -> Vec<usize> {
    let mut stripes: Vec<usize> = dirs
        .iter()
        .map(|d| (*d as usize) % DIR_LOCK_STRIPES)
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    stripes
}

/// The held directory locks of one transaction; the body runs only while they are held.
pub(super) struct DirGuards<'a>(#[allow(dead_code)] Vec<MutexGuard<'a, ()>>);

/// What one try of a transaction wrote: the changes clients see, and the key prefixes it
/// set keys under.
#[derive(Default)]
struct Noted {
    changes: Vec<Change>,
    written: PrefixSet,
}

impl Mds {
    /// Runs `f` as one transaction holding the stripe locks of `dirs` (on the embedded store
    /// in place when it can, else on a blocking thread), then (for mutations of a durable
    /// MDS) waits for the group commit. A mutation carrying a request id returns the recorded
    /// result if that request already committed (a retry after a lost reply or a dead MDS),
    /// and otherwise records its result in the same transaction.
    pub(super) async fn txn<T, E, F>(
        self: &Arc<Self>,
        creds: Creds,
        dirs: Vec<Ino>,
        kind: Mutation,
        f: F,
    ) -> Result<T, MdsError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: BodyError,
        F: Fn(&mut dyn Transaction, &Ctx) -> Result<T, E> + Send + 'static,
    {
        let nothing = |_: &mut dyn Transaction, _: &T| Ok::<(), E>(());
        let (out, ()) = self.txn_then(creds, dirs, kind, f, nothing).await?;
        Ok(out)
    }

    /// [`Mds::txn`], and then `then` in the same transaction, given `f`'s result (or the
    /// recorded one, for a retried request): what `then` answers goes with the answer but
    /// is not recorded (the bytes an open hands out with the attributes, which a record
    /// would keep for thousands of requests).
    pub(super) async fn txn_then<T, R, E, F, G>(
        self: &Arc<Self>,
        creds: Creds,
        dirs: Vec<Ino>,
        kind: Mutation,
        f: F,
        then: G,
    ) -> Result<(T, R), MdsError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        R: Send + 'static,
        E: BodyError,
        F: Fn(&mut dyn Transaction, &Ctx) -> Result<T, E> + Send + 'static,
        G: Fn(&mut dyn Transaction, &T) -> Result<R, E> + Send + 'static,
    {
        let body = (f, then);
        let writes = matches!(kind, Mutation::Write { .. });
        let (record, wait_durable) = match kind {
            Mutation::Write { record, ack } => (
                record,
                ack == Ack::OnDisk || (ack == Ack::Change && self.cfg.durable),
            ),
            Mutation::ReadOnly => (None, false),
        };
        let stripes = lock_stripes(&dirs);
        // On the embedded store a transaction takes microseconds: when no other call holds
        // its directories' locks, one try runs in place, saving two thread hops. A
        // conflict, a lock held, or a store across the network go to a blocking thread.
        // Writes tried in place take turns: the store commits one transaction at a time
        // under a mutex it holds across its journal write, so two workers committing at
        // once put one thread to sleep on it (a futex wait and wake, two context switches,
        // about once per transaction under load: 17 % of the MDS's CPU in 4-process
        // unlinks); a call waiting for its turn leaves its worker free for other calls
        // instead. Reads commit nothing and run side by side.
        let in_place = if self.kv.is_local() {
            let _turn = match writes {
                true => Some(self.in_place_turn.lock().await),
                false => None,
            };
            self.try_lock_stripes(&stripes).and_then(|guards| {
                let mut noted = Noted::default();
                let out = self.kv.try_transact(|tx| {
                    self.attempt(&guards, &creds, record, &body, tx, &mut noted)
                })?;
                self.publish(record, noted);
                Some(out)
            })
        } else {
            None
        };
        let out = match in_place {
            Some(out) => out.map_err(Into::into)?,
            None => {
                let this = self.clone();
                rustre_proto::blocking::unblock(move || {
                    let guards = this.lock_stripes(&stripes);
                    let mut noted = Noted::default();
                    let out = this.kv.transact(|tx| {
                        this.attempt(&guards, &creds, record, &body, tx, &mut noted)
                    });
                    this.publish(record, noted);
                    out.map_err(Into::into)
                })
                .await??
            }
        };
        if wait_durable {
            self.kv.durable().await?;
        }
        Ok(out)
    }

    /// What a transaction wrote goes on the change feed and into the store's written
    /// prefixes, committed or not (a needless eviction from a client's cache, or a needless
    /// scan of a queue, is harmless; a missed one is not).
    fn publish(&self, record: Option<(u64, u64)>, noted: Noted) {
        self.kv.note_written(&noted.written);
        self.feed.publish(record.unwrap_or((0, 0)), noted.changes);
    }

    /// One try of a transaction body `(f, then)`: `f` under the caller's credentials,
    /// recorded under its request id if it has one, then `then` (not recorded), with every
    /// key they write noted in `noted`. `_locks` are the directory locks the body must run
    /// under.
    fn attempt<T, R, E, F, G>(
        &self,
        _locks: &DirGuards<'_>,
        creds: &Creds,
        record: Option<(u64, u64)>,
        (f, then): &(F, G),
        tx: &mut dyn Transaction,
        noted: &mut Noted,
    ) -> Result<(T, R), E>
    where
        T: Serialize + DeserializeOwned,
        E: BodyError,
        F: Fn(&mut dyn Transaction, &Ctx) -> Result<T, E>,
        G: Fn(&mut dyn Transaction, &T) -> Result<R, E>,
    {
        noted.changes.clear();
        noted.written = PrefixSet::default();
        let ctx = Ctx {
            creds,
            now: rustre_proto::host::now(),
        };
        let mut tx = feed::Recorder {
            tx,
            changes: &mut noted.changes,
            written: &mut noted.written,
        };
        let out = match record {
            None => f(&mut tx, &ctx),
            Some((session, seq)) => requests::run_once(&mut tx, session, seq, |tx| f(tx, &ctx)),
        }?;
        let more = then(&mut tx, &out)?;
        Ok((out, more))
    }

    /// The directory locks of `stripes` if every one is free now, else `None`.
    fn try_lock_stripes(&self, stripes: &[usize]) -> Option<DirGuards<'_>> {
        stripes
            .iter()
            .map(|s| self.dir_locks[*s].try_lock().ok())
            .collect::<Option<Vec<_>>>()
            .map(DirGuards)
    }

    /// The directory locks of `stripes`, waiting for each in order. The locks guard no data
    /// (only the order of transactions), so a poisoned one is taken as it is.
    fn lock_stripes(&self, stripes: &[usize]) -> DirGuards<'_> {
        DirGuards(stripes.iter().map(|s| lock(&self.dir_locks[*s])).collect())
    }

    /// A fresh inode number. The common case takes one from the batch in memory, with no
    /// thread hop; an empty batch is refilled from the shared counter on a blocking thread.
    pub(super) async fn alloc_ino(self: &Arc<Self>) -> Result<Ino, MdsError> {
        if let Some(ino) = self.take_ino() {
            return Ok(ino);
        }
        let this = self.clone();
        rustre_proto::blocking::unblock(move || this.alloc_ino_blocking()).await?
    }

    /// The next number of the batch in memory, if it has one left.
    fn take_ino(&self) -> Option<Ino> {
        let mut batch = lock(&self.inos);
        (batch.0 < batch.1).then(|| {
            batch.0 += 1;
            batch.0 - 1
        })
    }

    /// [`Mds::alloc_ino`] on a blocking thread: may run a transaction for a new batch.
    fn alloc_ino_blocking(&self) -> Result<Ino, MdsError> {
        let mut batch = lock(&self.inos);
        if batch.0 >= batch.1 {
            let start = self.kv.transact(|tx| {
                let next = store::counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)?;
                store::put_counter(tx, schema::COUNTER_NEXT_INO, next + INO_BATCH)?;
                Ok::<_, Error>(next)
            })?;
            // On disk before any number of the batch is used, so a power loss can never
            // hand out an inode number twice (its objects might still exist).
            self.kv.sync()?;
            *batch = (start, start + INO_BATCH);
        }
        let ino = batch.0;
        batch.0 += 1;
        Ok(ino)
    }
}

//! The embedded metadata store: one fjall 3 keyspace driven through fjall's optimistic
//! (serializable snapshot isolation) transactions.
//!
//! # Isolation
//!
//! `OptimisticTxDatabase::write_tx` takes a snapshot; every `get` and every `range` made
//! through the transaction records a read (a point read for `get`, the whole requested
//! `[start, end)` interval for `range`, so phantoms count), and every write records a write.
//! At commit fjall checks this transaction's reads against the writes of every transaction
//! that committed after the snapshot was taken, and refuses the commit (`Conflict`) if they
//! intersect. That is backward-validating optimistic concurrency control: the committed
//! history is equivalent to running the transactions one at a time in commit order, i.e.
//! serializable, which is the isolation FoundationDB gives. Write skew (two transactions that
//! each read `a` and `b` and write one of them) is therefore detected. A conflict is returned
//! as [`KvError::Retryable`] and [`super::Kv::transact`] re-runs the closure.
//!
//! Differences from FoundationDB, all in the strict direction (more conflicts, never fewer):
//! - `atomic_add` is a read-modify-write, so concurrent adds to one key conflict (FDB's ADD
//!   mutation does not). Keep hot counters batched.
//! - `clear_range` reads the range to find the keys to delete, so it conflicts with a
//!   concurrent insert into that range.
//! - A `range` read with a `limit` conflicts on the whole requested interval, not just on the
//!   part that was returned.
//! - Read-only transactions are not validated at all (as in FDB): they read one consistent
//!   snapshot, which is serializable at the snapshot's point in time.
//!
//! # Durability (finding from reading fjall 3.1.13's source)
//!
//! A commit appends the batch to the journal through an 8 KiB `BufWriter`
//! (`journal/writer.rs`). `OptimisticTxDatabase::write_tx` gives every transaction the
//! durability `Some(PersistMode::Buffer)` unless the database was opened with
//! `manual_journal_persist(true)`, and `WriteBatch::commit` (`batch/mod.rs`) calls
//! `journal_writer.persist(mode)` right after writing the batch, while still holding the
//! journal lock and *before* publishing the new sequence number. `PersistMode::Buffer`
//! flushes the `BufWriter`, i.e. issues the `write(2)` into the OS page cache, but does not
//! fsync. So a transaction whose commit returned `Ok` is in the kernel's page cache and
//! survives the process being killed (SIGKILL, panic=abort, OOM kill); only a power loss or
//! kernel crash can lose it until the next [`FjallStore::sync`]. With `durability(None)` (or
//! `manual_journal_persist`) the batch could sit in the user-space buffer and be lost on
//! SIGKILL. We do not rely on the default: [`FjallStore::run_once`] sets
//! `durability(Some(PersistMode::Buffer))` on every transaction explicitly. The
//! `commit_survives_sigkill` test in `conformance.rs` checks this with a real SIGKILL.
//! Recovery replays the journal; batches carry a checksum, so a torn tail is discarded as a
//! whole batch, never half-applied.
//!
//! # Sync without stalling commits
//!
//! `OptimisticTxDatabase::persist(PersistMode::SyncAll)` holds the journal writer's mutex
//! for the whole fsync (`Journal::persist` in `journal/mod.rs`), and every commit needs that
//! mutex (under the transaction oracle's lock, which `write_tx` also takes). So while it
//! fsyncs, every commit *and every transaction start* waits, and group commit degenerates:
//! measured here with 64 writers, about 1.7 commits per fsync and fewer creates/s than with
//! 4 writers (see `docs/metadata-store.md`). [`FjallStore::sync`] therefore
//! 1. calls `persist(PersistMode::Buffer)`: takes the mutex only to flush the journal's
//!    user-space buffer to the OS (a no-op after our commits, which already did that), then
//! 2. fsyncs the active journal through a file descriptor of its own, without fjall's
//!    mutex, so commits continue during the fsync (Linux `fsync` flushes the file's dirty
//!    pages whichever descriptor it is called on).
//!
//! This relies on fjall 3's journal layout, checked against its source: journals are
//! `{dir}/{id}.jnl`, the highest id is the active one (`journal/recovery.rs`), and a journal
//! is fsynced (`persist(SyncAll)`) before the next one is created, and the directory fsynced
//! after (`Writer::rotate`). So every commit acknowledged before `sync` was called is either
//! in the journal with the highest id found when `sync` lists the directory, or in an older
//! journal already fsynced at rotation, or (once flushed, and the journal deleted) in tables
//! fjall fsynced itself. If no journal file is found (a layout change), `sync` falls back to
//! `persist(SyncAll)`; the `fjall_journal_layout` test fails on such a change. After `sync`
//! returns `Ok`, every commit acknowledged before the call survives power loss.
//!
//! # A poisoned store
//!
//! A journal write that fails (the disk full past the reserve, an I/O error) poisons fjall:
//! every later commit fails with `Poisoned` until the database is opened again, which only
//! a new process does. The server then exits with [`STORE_POISONED_EXIT`] rather than
//! answer every change with EIO: its service manager starts it again, and the journal
//! replays every commit acknowledged before the failure (the failed one never was).
//!
//! # Limits
//!
//! Both backends enforce FoundationDB's limits ([`limits`]: key, value and transaction sizes)
//! so that code which would fail on FDB fails in tests here too. A write
//! that breaks a limit is not applied; the transaction then fails with
//! [`KvError::Storage`] whatever the closure returned.

use super::limits::{self, TxChecks};
use super::{Backend, KeyValue, KvError, Transaction};
use fjall::{
    Conflict, KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace,
    OptimisticWriteTx as WriteTransaction, PersistMode, Readable,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the single keyspace holding all metadata.
const KEYSPACE: &str = "meta";

/// fjall 3.1 keeps the conflict set of every commit newer than its "oldest snapshot in use"
/// mark and scans that whole list at each commit (`Oracle::with_commit` prunes it with a
/// `retain`), but recomputes the mark only once every 10,000 snapshot closes: the list grows
/// to thousands of entries and that scan was 11 % of the MDS's CPU time in a create storm.
/// Every this many commits the store closes [`FJALL_GC_SNAPSHOTS`] empty snapshots, which
/// crosses fjall's 10,000 once and so recomputes the mark (about a millisecond, on a
/// blocking thread). Only speed depends on this: with another fjall it is wasted work.
const ORACLE_PRUNE_EVERY: u64 = 512;
/// fjall's snapshot closes between two recomputations of the oldest snapshot in use.
const FJALL_GC_SNAPSHOTS: u32 = 10_000;
/// TEST ONLY: set to `1`, the store commits without handing the journal to the OS (fjall
/// keeps the last few KiB of commits in its own buffer until [`FjallStore::sync`]), so
/// that `kill -9` of the MDS loses what a power cut would: acknowledged commits no sync
/// covered (tests/mds_power.rs). Never in production: a process crash then loses them.
pub(crate) const VOLATILE_META_ENV: &str = "RUSTRE_TEST_VOLATILE_META";
/// Largest memtable of a store (fjall's default, kept in the store when it is created). A
/// flush writes up to that much before the journal it empties goes, so the MDS's space
/// reserve must hold it (`crate::space`): a store that cannot write its flush poisons
/// itself. 8 MiB was tried (a flush fits any reserve) and not kept: the build with it and
/// the space reserves ran 20,000 small writes, chmods and unlinks 15-25 % slower than the
/// build before them (alternated twice, not isolated to the memtable; to be measured).
pub(crate) const MEMTABLE_BYTES: u64 = 64 << 20;

/// File name suffix of fjall's journals (`{id}.jnl` in the database directory).
const JOURNAL_SUFFIX: &str = ".jnl";

/// Exit status of a server whose metadata store poisoned itself (module doc, "A poisoned
/// store"): EX_TEMPFAIL, a failure a restart may cure.
pub(crate) const STORE_POISONED_EXIT: i32 = 75;

/// Maps an error of fjall; a poisoned store ends the process (module doc, "A poisoned
/// store").
fn fjall_error(e: fjall::Error) -> KvError {
    if matches!(e, fjall::Error::Poisoned) {
        tracing::error!(
            "the metadata store refuses every change after a failed journal write (poisoned): \
             exiting with status {STORE_POISONED_EXIT} so that a restart replays its journal"
        );
        std::process::exit(STORE_POISONED_EXIT);
    }
    storage(e)
}

/// Maps any fjall error to a storage error.
fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}

/// The embedded store: a fjall database with one keyspace.
pub(crate) struct FjallStore {
    /// The database directory, which holds the journals.
    dir: PathBuf,
    db: OptimisticTxDatabase,
    keyspace: OptimisticTxKeyspace,
    /// Write transactions committed since the store was opened.
    commits: AtomicU64,
    /// Commits stay in fjall's buffer until a sync ([`VOLATILE_META_ENV`]).
    volatile: bool,
}

impl FjallStore {
    /// Opens (creating if needed) the store in `dir`, replaying its journal.
    pub(crate) fn open(dir: &Path) -> Result<FjallStore, KvError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| KvError::Storage(format!("create {}: {e}", dir.display())))?;
        let db = OptimisticTxDatabase::builder(dir)
            .open()
            .map_err(|e| match e {
                // fjall holds an exclusive lock on the directory while it is open.
                fjall::Error::Locked => KvError::Storage(format!(
                    "{} is in use by another rustre server (locked)",
                    dir.display()
                )),
                e => KvError::Storage(format!("open {}: {e}", dir.display())),
            })?;
        let keyspace = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
            .map_err(storage)?;
        Ok(FjallStore {
            dir: dir.to_path_buf(),
            db,
            keyspace,
            commits: AtomicU64::new(0),
            volatile: std::env::var(VOLATILE_META_ENV).is_ok_and(|v| v == "1"),
        })
    }

    /// Keeps fjall's list of recent commits short (see [`ORACLE_PRUNE_EVERY`]): every that
    /// many commits, opens and drops [`FJALL_GC_SNAPSHOTS`] snapshots on a blocking thread,
    /// which makes fjall recompute the oldest snapshot in use and forget older commits.
    fn after_commit(&self) {
        if !self
            .commits
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(ORACLE_PRUNE_EVERY)
        {
            return;
        }
        let db = self.db.clone();
        rustre_proto::blocking::spawn_blocking_detached(move || {
            for _ in 0..FJALL_GC_SNAPSHOTS {
                drop(db.read_tx());
            }
        });
    }
}

impl Backend for FjallStore {
    fn is_local(&self) -> bool {
        true
    }

    fn capacity(&self) -> Option<rustre_proto::msg::Capacity> {
        crate::space::statvfs(&self.dir).ok()
    }

    fn run_once(&self, body: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError> {
        // Explicit, see the module comment: commits reach the OS page cache before they are
        // acknowledged, so they survive SIGKILL; only `sync` makes them survive power loss.
        let mut tx = self
            .db
            .write_tx()
            .map_err(fjall_error)?
            .durability((!self.volatile).then_some(PersistMode::Buffer));
        let (commit, error, wrote) = {
            let mut ftx = FjallTx {
                tx: &mut tx,
                keyspace: &self.keyspace,
                checks: TxChecks::default(),
                wrote: false,
            };
            let commit = body(&mut ftx);
            (commit, ftx.checks.into_error(), ftx.wrote)
        };
        if let Some(e) = error {
            tx.rollback();
            return Err(e);
        }
        // A transaction that wrote nothing has nothing to commit: its reads came from one
        // snapshot, and a commit would only take the oracle's mutex, which writers wait on.
        if !commit || !wrote {
            tx.rollback();
            return Ok(());
        }
        match tx.commit() {
            Ok(Ok(())) => {
                self.after_commit();
                Ok(())
            }
            Ok(Err(Conflict)) => Err(KvError::Retryable("transaction conflict".into())),
            Err(e) => Err(fjall_error(e)),
        }
    }

    /// See "Sync without stalling commits" in the module comment.
    fn sync(&self) -> Result<(), KvError> {
        self.db.persist(PersistMode::Buffer).map_err(fjall_error)?;
        match active_journal(&self.dir)? {
            Some(path) => std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| KvError::Storage(format!("fsync {}: {e}", path.display()))),
            None => self.db.persist(PersistMode::SyncAll).map_err(fjall_error),
        }
    }
}

/// The active journal of the fjall database in `dir`: the `{id}.jnl` with the highest id.
pub(crate) fn active_journal(dir: &Path) -> Result<Option<PathBuf>, KvError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| KvError::Storage(format!("list {}: {e}", dir.display())))?;
    let mut active: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| KvError::Storage(format!("list {}: {e}", dir.display())))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(JOURNAL_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if active.as_ref().is_none_or(|(best, _)| id > *best) {
            active = Some((id, entry.path()));
        }
    }
    Ok(active.map(|(_, path)| path))
}

/// One transaction as seen by the closure. The first error an operation hits is remembered
/// and fails the whole transaction, even if the closure swallows it.
struct FjallTx<'a> {
    tx: &'a mut WriteTransaction,
    keyspace: &'a OptimisticTxKeyspace,
    /// The limits (see [`limits::MAX_TX_BYTES`]) and the error that ends the transaction.
    checks: TxChecks,
    /// Whether the closure set or cleared anything.
    wrote: bool,
}

impl Transaction for FjallTx<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.checks.check_key(key)?;
        match self.tx.get(self.keyspace, key) {
            Ok(v) => Ok(v.map(|v| v.to_vec())),
            Err(e) => Err(self.checks.fail(storage(e))),
        }
    }

    fn range(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, KvError> {
        // An empty or inverted interval reads nothing; never hand fjall an inverted range
        // (its conflict check would panic on it at commit).
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for guard in self.tx.range(self.keyspace, start..end).take(limit) {
            match guard.into_inner() {
                Ok((k, v)) => out.push((k.to_vec(), v.to_vec())),
                Err(e) => return Err(self.checks.fail(storage(e))),
            }
        }
        Ok(out)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        if self.checks.check_write(key, value).is_ok() {
            self.tx.insert(self.keyspace, key, value);
            self.wrote = true;
        }
    }

    fn clear(&mut self, key: &[u8]) {
        if self.checks.check_write(key, &[]).is_ok() {
            self.tx.remove(self.keyspace, key);
            self.wrote = true;
        }
    }

    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        if start >= end {
            return Ok(());
        }
        self.checks.check_clear_range(start, end)?;
        // The range read merges this transaction's own writes, so keys set earlier in the
        // transaction are found (and removed) too.
        let mut keys = Vec::new();
        for guard in self.tx.range(self.keyspace, start..end) {
            match guard.key() {
                Ok(k) => keys.push(k),
                Err(e) => return Err(self.checks.fail(storage(e))),
            }
        }
        for k in keys {
            self.tx.remove(self.keyspace, k);
            self.wrote = true;
        }
        Ok(())
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<(), KvError> {
        let old = self.get(key)?;
        let new = limits::add_le(old.as_deref(), delta);
        self.set(key, &new);
        self.checks.result()
    }
}

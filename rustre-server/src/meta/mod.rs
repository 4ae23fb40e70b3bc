//! The metadata key-value store: a small transactional API modelled on FoundationDB's, and
//! its backends.
//!
//! - [`Transaction`]: what a transaction closure may do (get, ordered range, set, clear,
//!   clear_range, atomic add).
//! - [`Kv`]: the handle the MDS and MGS hold. [`Kv::transact`] runs a closure as one
//!   serializable transaction and re-runs it on conflict, so the closure must be re-runnable
//!   (no side effects outside the transaction). [`Kv::durable`] waits for a group commit.
//! - Backends: `fjall_store` (embedded, on disk, optimistic SSI transactions, the default),
//!   `fdb_store` (FoundationDB, behind the cargo feature `fdb`) and `mem_store` (in memory,
//!   one transaction at a time, for the simulation); [`StoreConfig`] picks
//!   one for a server role.

mod config;
#[cfg(test)]
pub(crate) mod conformance;
#[cfg(feature = "fdb")]
mod fdb_store;
mod fjall_store;
mod group_commit;
mod limits;
mod mem_store;
mod written;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use config::{default_fdb_prefix, StoreConfig, DEFAULT_FDB_PREFIX_ROOT};
pub use written::PrefixSet;

/// How many times a conflicting transaction is re-run before giving up.
pub const KV_MAX_RETRIES: u32 = 100;
/// First back-off between retries; doubled up to [`KV_RETRY_BACKOFF_MAX`].
pub const KV_RETRY_BACKOFF_MIN: Duration = Duration::from_micros(100);
/// Longest back-off between retries.
pub const KV_RETRY_BACKOFF_MAX: Duration = Duration::from_millis(20);

/// Errors of the store itself (never the caller's own aborts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The transaction conflicted or hit a transient failure; [`Kv::transact`] retries it.
    #[error("transaction must be retried: {0}")]
    Retryable(String),
    /// The transaction conflicted [`KV_MAX_RETRIES`] times.
    #[error("transaction retried too often")]
    RetriesExhausted,
    /// The store failed (I/O, corruption, closed).
    #[error("metadata store: {0}")]
    Storage(String),
}

impl From<KvError> for rustre_proto::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Retryable(_) | KvError::RetriesExhausted => rustre_proto::Error::Busy,
            KvError::Storage(m) => rustre_proto::Error::Io(m),
        }
    }
}

/// A key-value pair from a range scan.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Operations inside one transaction. Reads see the transaction's own writes.
pub trait Transaction {
    /// The value of `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Up to `limit` pairs with `start <= key < end`, in key order.
    fn range(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, KvError>;
    /// Sets `key` to `value`.
    fn set(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn clear(&mut self, key: &[u8]);
    /// Removes `key` if it is there. For a key that is often absent under a prefix some
    /// worker scans: the embedded store keeps a tombstone for every removal, present key or
    /// not, and every later range read of the prefix walks it until a compaction drops it
    /// (`written`). The default reads first; a store whose removals leave nothing behind
    /// may clear blindly.
    fn clear_if_set(&mut self, key: &[u8]) -> Result<(), KvError> {
        if self.get(key)?.is_some() {
            self.clear(key);
        }
        Ok(())
    }
    /// Removes every key in `start <= key < end`.
    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError>;
    /// Adds `delta` to the little-endian i64 at `key` (absent counts as 0), as FDB's ADD.
    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<(), KvError>;
}

/// What a backend provides. `run_once` runs `body` in a fresh transaction and commits it when
/// `body` returns true (rolls back on false). It returns `Retryable` on a conflict or on a
/// transient failure seen by any operation inside `body`, whatever `body` returned.
pub(crate) trait Backend: Send + Sync {
    fn run_once(&self, body: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError>;
    /// Makes every transaction committed so far durable (survives power loss).
    fn sync(&self) -> Result<(), KvError>;
    /// Whether a transaction runs in this process's memory and local disk in microseconds,
    /// never waiting on a network (so one try may run on an async worker).
    fn is_local(&self) -> bool {
        false
    }
    /// The capacity of the local file system the store writes to; `None` for a store that
    /// manages its own space (FoundationDB) or keeps none (memory).
    fn capacity(&self) -> Option<rustre_proto::msg::Capacity> {
        None
    }
}

/// The metadata store handle: cheap to clone, shared by all tasks of a server.
#[derive(Clone)]
pub struct Kv {
    backend: Arc<dyn Backend>,
    group: Arc<group_commit::GroupCommit>,
    /// The key prefixes written through this handle's clones ([`Kv::take_written`]).
    written: Arc<written::Written>,
}

impl Kv {
    fn with_backend(backend: Arc<dyn Backend>) -> Kv {
        Kv {
            group: Arc::new(group_commit::GroupCommit::new(backend.clone())),
            backend,
            written: Arc::new(written::Written::all()),
        }
    }

    /// Opens (creating if needed) the embedded on-disk store in `dir`.
    pub fn open_embedded(dir: &Path) -> Result<Kv, KvError> {
        Ok(Kv::with_backend(Arc::new(fjall_store::FjallStore::open(
            dir,
        )?)))
    }

    /// A fresh in-memory store (the deterministic simulation's; see `mem_store`). Clones
    /// share it; it lives as long as one of them does.
    pub fn open_memory() -> Kv {
        Kv::with_backend(Arc::new(mem_store::MemStore::default()))
    }

    /// Connects to FoundationDB through `cluster_file`, keeping keys under `prefix`.
    #[cfg(feature = "fdb")]
    pub fn open_fdb(cluster_file: &Path, prefix: &[u8]) -> Result<Kv, KvError> {
        Ok(Kv::with_backend(Arc::new(fdb_store::FdbStore::open(
            cluster_file,
            prefix,
        )?)))
    }

    /// Runs `f` as one serializable transaction, re-running it on conflict (with back-off, at
    /// most [`KV_MAX_RETRIES`] times). An `Err` from `f` rolls back and is returned as is.
    /// Blocking: call it from a blocking-capable thread (`spawn_blocking`).
    pub fn transact<T, E, F>(&self, mut f: F) -> Result<T, E>
    where
        E: From<KvError>,
        F: FnMut(&mut dyn Transaction) -> Result<T, E>,
    {
        let mut backoff = KV_RETRY_BACKOFF_MIN;
        for _ in 0..KV_MAX_RETRIES {
            if let Some(out) = self.try_transact(&mut f) {
                return out;
            }
            tracing::trace!("transaction conflict, retried after {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(KV_RETRY_BACKOFF_MAX);
        }
        Err(KvError::RetriesExhausted.into())
    }

    /// Whether transactions are quick local work (the embedded store) that an async task may
    /// try in place instead of handing them to a blocking thread.
    pub fn is_local(&self) -> bool {
        self.backend.is_local()
    }

    /// Notes that a transaction wrote keys under the prefixes of `set` (see
    /// [`Kv::take_written`]); called once it is over, committed or not.
    pub fn note_written(&self, set: &PrefixSet) {
        if !set.is_empty() {
            self.written.note(set);
        }
    }

    /// Whether keys under `prefix` may have been written since its last
    /// [`Kv::take_written`], without taking it: false means the last taker found nothing
    /// under it, and nothing was written since.
    pub fn peek_written(&self, prefix: u8) -> bool {
        self.written.peek(prefix) || !self.is_local()
    }

    /// Marks `prefix` written: a worker whose scan left work in its queue, or failed, has
    /// the next scan run.
    pub fn mark_written(&self, prefix: u8) {
        let mut set = PrefixSet::default();
        set.add_key(&[prefix]);
        self.written.note(&set);
    }

    /// Whether keys under `prefix` may have been written (as noted by
    /// [`Kv::note_written`]) since the last call for `prefix`, which this call forgets: a
    /// worker that takes `false` may skip its scan of a queue its last scan found empty.
    /// Always true at first, and always for a store other processes write too
    /// (FoundationDB).
    pub fn take_written(&self, prefix: u8) -> bool {
        self.written.take(prefix) || !self.is_local()
    }

    /// The capacity of the local file system the store writes to, if it writes to one
    /// (the embedded store); see [`crate::space`].
    pub fn capacity(&self) -> Option<rustre_proto::msg::Capacity> {
        self.backend.capacity()
    }

    /// One try of [`Kv::transact`], without back-off: `None` when the transaction conflicted
    /// and was rolled back, for the caller to run it with [`Kv::transact`] (which may sleep)
    /// on a blocking thread. For a local store ([`Kv::is_local`]) this never blocks for long.
    pub fn try_transact<T, E, F>(&self, mut f: F) -> Option<Result<T, E>>
    where
        E: From<KvError>,
        F: FnMut(&mut dyn Transaction) -> Result<T, E>,
    {
        let mut out: Option<Result<T, E>> = None;
        let run = self.backend.run_once(&mut |tx| {
            let r = f(tx);
            let commit = r.is_ok();
            out = Some(r);
            commit
        });
        match run {
            Ok(()) => Some(out.expect("body ran")),
            Err(KvError::Retryable(_)) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Makes every committed transaction durable now, on this thread (blocking).
    pub fn sync(&self) -> Result<(), KvError> {
        self.backend.sync()
    }

    /// Waits until every transaction committed before this call is durable. Concurrent
    /// callers share one sync (group commit).
    pub async fn durable(&self) -> Result<(), KvError> {
        self.group.wait().await
    }
}

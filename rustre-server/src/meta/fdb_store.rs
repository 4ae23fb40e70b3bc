//! The FoundationDB metadata backend (cargo feature `fdb`).
//!
//! Each [`Backend::run_once`] is exactly one FDB transaction: the closure's reads and writes
//! go to that transaction (FDB gives read-your-own-writes and serializable isolation with
//! conflict detection at commit), and the transaction is committed if the closure asks for
//! it. Re-running on conflict is done by [`super::Kv::transact`], not by FDB's `on_error`
//! loop, so both backends share one retry policy.
//!
//! The [`Backend`] trait is synchronous (the MDS calls it from `spawn_blocking`), so every
//! FDB future is driven to completion with `futures::executor::block_on`; the FDB network
//! thread does the actual I/O. Do not call it from an async task directly.
//!
//! Every key is stored under the store's `prefix`, so several clusters (or test runs) can
//! share one FDB database. `atomic_add` is FDB's conflict-free `ADD` mutation.
//!
//! Errors: an FDB error seen by any operation is remembered, and the transaction then ends
//! with it whatever the closure returned: [`KvError::Retryable`] if FDB says the error is
//! retryable (`fdb_error_predicate(RETRYABLE)`, e.g. `not_committed` 1020,
//! `transaction_too_old` 1007, `commit_unknown_result` 1021), otherwise
//! [`KvError::Storage`]. Commit errors are classified the same way. Note that
//! `commit_unknown_result` means the commit *may* have been applied; re-running a closure that
//! is not idempotent (a blind `atomic_add`, say) can then apply it twice. The MDS's
//! transactions read before they write (create checks the dentry is absent), which makes a
//! re-run after an applied commit fail visibly instead of silently double-applying.
//!
//! FDB limits (see <https://apple.github.io/foundationdb/known-limitations.html>):
//! - a transaction may live at most 5 seconds (the MVCC window): later reads fail with
//!   `transaction_too_old`. We also set [`FDB_TX_TIMEOUT_MS`], so a transaction blocked on an
//!   unavailable cluster fails instead of hanging a blocking thread forever.
//! - a transaction may write at most 10,000,000 bytes ([`MAX_TX_BYTES`], set explicitly as
//!   the size limit); keys at most 10,000 bytes ([`MAX_KEY_BYTES`], including our prefix),
//!   values at most 100,000 bytes ([`MAX_VALUE_BYTES`]). Oversized keys and values are
//!   refused before they reach FDB, with the same errors the embedded backend gives.
//!
//! The FDB client network thread is started once per process, on the first [`FdbStore::open`];
//! its stop guard lives in a static and is dropped by an `atexit` handler, because FDB
//! requires the network to be stopped before the process exits. Nothing else in the process
//! may select the FDB API version or boot the network.

use super::limits::{TxChecks, MAX_KEY_BYTES, MAX_TX_BYTES};
use super::{Backend, KeyValue, KvError, Transaction, KV_MAX_RETRIES};
use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
use foundationdb::options::{DatabaseOption, MutationType, StreamingMode};
use foundationdb::{Database, FdbError, KeySelector, RangeOption};
use futures::executor::block_on;
use futures::TryStreamExt;
use rustre_proto::sync::lock;
use std::panic::catch_unwind;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Timeout of one transaction attempt, in milliseconds: FDB's 5-second transaction lifetime.
pub(crate) const FDB_TX_TIMEOUT_MS: i32 = 5_000;
/// Retry limit for FDB's own `on_error` loop. We do not use that loop (each attempt is a new
/// transaction driven by `Kv::transact`), so this only bounds retries should anything use it.
pub(crate) const FDB_RETRY_LIMIT: i32 = KV_MAX_RETRIES as i32;

/// Outcome of booting the FDB client network (done once per process).
static NETWORK: OnceLock<Result<(), String>> = OnceLock::new();
/// Stops the network thread when dropped; taken and dropped by [`stop_network`] at exit.
static NETWORK_GUARD: Mutex<Option<NetworkAutoStop>> = Mutex::new(None);

/// Stops the FDB network thread and waits for it; registered with `atexit`.
extern "C" fn stop_network() {
    // Never unwind into C.
    let _ = catch_unwind(|| {
        let guard = lock(&NETWORK_GUARD).take();
        drop(guard);
    });
}

/// Selects the API version and starts the network thread, the first time only.
fn boot_network() -> Result<(), KvError> {
    NETWORK
        .get_or_init(|| {
            let builder = FdbApiBuilder::default()
                .build()
                .map_err(|e| format!("select FDB API version: {e}"))?;
            // SAFETY: the returned guard must be dropped before the process exits; it is kept
            // in NETWORK_GUARD and dropped by `stop_network`, registered with atexit below.
            let guard =
                unsafe { builder.boot() }.map_err(|e| format!("start FDB network thread: {e}"))?;
            *NETWORK_GUARD.lock().unwrap_or_else(PoisonError::into_inner) = Some(guard);
            // SAFETY: `stop_network` is a plain extern "C" fn that does not unwind.
            if unsafe { libc::atexit(stop_network) } != 0 {
                tracing::warn!("could not register the FDB network stop handler");
            }
            Ok(())
        })
        .clone()
        .map_err(KvError::Storage)
}

/// Maps an FDB error to [`KvError`] by FDB's own retryable predicate.
fn classify(e: FdbError) -> KvError {
    if e.is_retryable() {
        KvError::Retryable(format!("fdb error {}: {e}", e.code()))
    } else {
        KvError::Storage(format!("fdb error {}: {e}", e.code()))
    }
}

/// A FoundationDB database, all keys under one prefix.
pub(crate) struct FdbStore {
    db: Database,
    prefix: Vec<u8>,
}

impl FdbStore {
    /// Connects through `cluster_file`, keeping every key under `prefix`.
    pub(crate) fn open(cluster_file: &Path, prefix: &[u8]) -> Result<Self, KvError> {
        let path = cluster_file
            .to_str()
            .filter(|p| !p.contains('\0'))
            .ok_or_else(|| {
                KvError::Storage(format!(
                    "cluster file path {} is not valid UTF-8 without NULs",
                    cluster_file.display()
                ))
            })?;
        if prefix.len() >= MAX_KEY_BYTES {
            return Err(KvError::Storage(format!(
                "key prefix of {} bytes leaves no room under the {MAX_KEY_BYTES}-byte key limit",
                prefix.len()
            )));
        }
        boot_network()?;
        let db = Database::from_path(path).map_err(classify_open)?;
        db.set_option(DatabaseOption::TransactionTimeout(FDB_TX_TIMEOUT_MS))
            .map_err(classify_open)?;
        db.set_option(DatabaseOption::TransactionRetryLimit(FDB_RETRY_LIMIT))
            .map_err(classify_open)?;
        // MAX_TX_BYTES is FDB's own maximum, well within i32.
        db.set_option(DatabaseOption::TransactionSizeLimit(MAX_TX_BYTES as i32))
            .map_err(classify_open)?;
        Ok(FdbStore {
            db,
            prefix: prefix.to_vec(),
        })
    }
}

/// Errors while opening are never retried.
fn classify_open(e: FdbError) -> KvError {
    KvError::Storage(format!("fdb open: error {}: {e}", e.code()))
}

impl Backend for FdbStore {
    fn run_once(&self, body: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError> {
        let trx = self.db.create_trx().map_err(classify)?;
        let (commit, error) = {
            let mut ftx = FdbTx {
                trx: &trx,
                prefix: &self.prefix,
                checks: TxChecks::with_key_prefix(self.prefix.len()),
            };
            let commit = body(&mut ftx);
            (commit, ftx.checks.into_error())
        };
        // Dropping `trx` without committing cancels (rolls back) it.
        if let Some(e) = error {
            return Err(e);
        }
        if !commit {
            return Ok(());
        }
        match block_on(trx.commit()) {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(*e)),
        }
    }

    /// FDB commits are durable (fsynced on the transaction logs of every replica) when the
    /// commit returns, so there is nothing left to sync.
    fn sync(&self) -> Result<(), KvError> {
        Ok(())
    }
}

/// One FDB transaction as seen by the closure.
struct FdbTx<'a> {
    trx: &'a foundationdb::Transaction,
    prefix: &'a [u8],
    /// The limits (see [`MAX_TX_BYTES`]) and the error that ends the transaction.
    checks: TxChecks,
}

impl FdbTx<'_> {
    /// The stored key for `key`.
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix);
        k.extend_from_slice(key);
        k
    }
}

impl Transaction for FdbTx<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.checks.check_key(key)?;
        let k = self.key(key);
        match block_on(self.trx.get(&k, false)) {
            Ok(v) => Ok(v.map(|v| v.to_vec())),
            Err(e) => Err(self.checks.fail(classify(e))),
        }
    }

    fn range(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, KvError> {
        // FDB's limit 0 means "no limit"; ours means nothing. Inverted ranges read nothing.
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let opt = RangeOption {
            begin: KeySelector::first_greater_or_equal(self.key(start)),
            end: KeySelector::first_greater_or_equal(self.key(end)),
            limit: Some(limit),
            // The limit bounds the transfer, so fetch it all in as few round trips as possible.
            mode: StreamingMode::WantAll,
            ..RangeOption::default()
        };
        let prefix_len = self.prefix.len();
        let result = block_on(
            self.trx
                .get_ranges_keyvalues(opt, false)
                .map_ok(|kv| {
                    // Every key in the range starts with the prefix; strip it.
                    let key = kv.key().get(prefix_len..).unwrap_or_default();
                    (key.to_vec(), kv.value().to_vec())
                })
                .try_collect::<Vec<KeyValue>>(),
        );
        result.map_err(|e| self.checks.fail(classify(e)))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        if self.checks.check_write(key, value).is_ok() {
            self.trx.set(&self.key(key), value);
        }
    }

    fn clear(&mut self, key: &[u8]) {
        if self.checks.check_write(key, &[]).is_ok() {
            self.trx.clear(&self.key(key));
        }
    }

    /// FoundationDB keeps nothing for a clear: no read first.
    fn clear_if_set(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.clear(key);
        self.checks.result()
    }

    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        if start >= end {
            return Ok(());
        }
        self.checks.check_clear_range(start, end)?;
        self.trx.clear_range(&self.key(start), &self.key(end));
        Ok(())
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<(), KvError> {
        let param = delta.to_le_bytes();
        self.checks.check_write(key, &param)?;
        self.trx
            .atomic_op(&self.key(key), &param, MutationType::Add);
        Ok(())
    }
}

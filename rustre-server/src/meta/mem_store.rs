//! An in-memory backend, for the deterministic simulation (`sim/`): the store outlives the
//! simulated MDS and MGS processes that crash and restart over it, as FoundationDB outlives
//! the stateless servers that use it.
//!
//! One transaction runs at a time (the whole map is locked from the first operation to the
//! commit), so transactions are serializable by construction and never conflict. A
//! transaction that waits for another one would deadlock; no MDS or MGS transaction does
//! (their closures never block on anything but the store). Writes go to an overlay that the
//! commit applies, so a rolled-back transaction leaves nothing. Limits are those of the other
//! backends ([`super::limits`]). `sync` has nothing to do: the data lives as long as the
//! process.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::limits::{self, TxChecks};
use super::{Backend, KeyValue, KvError, Transaction};

/// The store: ordered keys and their values.
#[derive(Default)]
pub(crate) struct MemStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Backend for MemStore {
    fn is_local(&self) -> bool {
        true
    }

    fn run_once(&self, body: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError> {
        // The map is only changed by the commit below, so a panic elsewhere leaves it whole.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = MemTx {
            base: &map,
            overlay: BTreeMap::new(),
            checks: TxChecks::default(),
        };
        let commit = body(&mut tx);
        tx.checks.result()?;
        if commit {
            let overlay = tx.overlay;
            for (k, v) in overlay {
                match v {
                    Some(v) => map.insert(k, v),
                    None => map.remove(&k),
                };
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), KvError> {
        Ok(())
    }
}

/// One transaction: the committed map and this transaction's changes (`None`: removed).
struct MemTx<'a> {
    base: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The limits and the error that ends the transaction (even if the closure ignores it).
    checks: TxChecks,
}

impl MemTx<'_> {
    /// Every key in `start..end` as this transaction sees it, in order, up to `limit`.
    fn merged(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<KeyValue> {
        let range = start.to_vec()..end.to_vec();
        let mut base = self.base.range(range.clone()).peekable();
        let mut mine = self.overlay.range(range).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let take_mine = match (base.peek(), mine.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((mk, _))) => mk <= bk,
            };
            if take_mine {
                let (k, v) = mine.next().expect("peeked");
                // An overlay entry hides the committed value of the same key.
                if base.peek().is_some_and(|(bk, _)| *bk == k) {
                    base.next();
                }
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else {
                let (k, v) = base.next().expect("peeked");
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

impl Transaction for MemTx<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.checks.check_key(key)?;
        Ok(match self.overlay.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key).cloned(),
        })
    }

    fn range(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, KvError> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        Ok(self.merged(start, end, limit))
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        if self.checks.check_write(key, value).is_ok() {
            self.overlay.insert(key.to_vec(), Some(value.to_vec()));
        }
    }

    fn clear(&mut self, key: &[u8]) {
        if self.checks.check_write(key, &[]).is_ok() {
            self.overlay.insert(key.to_vec(), None);
        }
    }

    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        if start >= end {
            return Ok(());
        }
        self.checks.check_clear_range(start, end)?;
        for (k, _) in self.merged(start, end, usize::MAX) {
            self.overlay.insert(k, None);
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

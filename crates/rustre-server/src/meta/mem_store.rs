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

use super::limits::{self, TxBudget};
use super::{Backend, KeyValue, KvError, Transaction};

/// The store: ordered keys and their values.
#[derive(Default)]
pub(crate) struct MemStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Backend for MemStore {
    fn reads_are_local(&self) -> bool {
        true
    }

    fn run_once(&self, body: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError> {
        // The map is only changed by the commit below, so a panic elsewhere leaves it whole.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = MemTx {
            base: &map,
            overlay: BTreeMap::new(),
            error: None,
            bytes: TxBudget::default(),
        };
        let commit = body(&mut tx);
        if let Some(e) = tx.error {
            return Err(e);
        }
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
    error: Option<KvError>,
    bytes: TxBudget,
}

impl MemTx<'_> {
    /// Remembers the first error, which fails the transaction even if the closure ignores it.
    fn fail(&mut self, e: KvError) -> KvError {
        if self.error.is_none() {
            self.error = Some(e.clone());
        }
        e
    }

    fn check_key(&mut self, key: &[u8]) -> Result<(), KvError> {
        limits::check_key(key.len()).map_err(|e| self.fail(e))
    }

    fn check_write(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.check_key(key)?;
        limits::check_value(value.len()).map_err(|e| self.fail(e))?;
        self.bytes
            .count(key.len() + value.len())
            .map_err(|e| self.fail(e))
    }

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
        self.check_key(key)?;
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
        if self.check_write(key, value).is_ok() {
            self.overlay.insert(key.to_vec(), Some(value.to_vec()));
        }
    }

    fn clear(&mut self, key: &[u8]) {
        if self.check_write(key, &[]).is_ok() {
            self.overlay.insert(key.to_vec(), None);
        }
    }

    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        if start >= end {
            return Ok(());
        }
        // Counted as its two bounds, as FoundationDB does.
        self.check_key(start)?;
        self.check_key(end)?;
        self.bytes
            .count(start.len() + end.len())
            .map_err(|e| self.fail(e))?;
        for (k, _) in self.merged(start, end, usize::MAX) {
            self.overlay.insert(k, None);
        }
        Ok(())
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<(), KvError> {
        let old = self.get(key)?;
        // FDB's ADD: the old value is zero-extended or truncated to the operand's 8 bytes.
        let mut buf = [0u8; 8];
        if let Some(old) = old {
            let n = old.len().min(8);
            buf[..n].copy_from_slice(&old[..n]);
        }
        let new = i64::from_le_bytes(buf).wrapping_add(delta).to_le_bytes();
        self.set(key, &new);
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

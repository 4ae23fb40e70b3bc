//! FoundationDB's transaction limits, enforced by every backend so that code which would
//! fail on FDB fails in tests on the embedded store too. Each backend keeps one
//! [`TxBudget`] per transaction and records the error these checks return as the
//! transaction's failure.

use super::KvError;

/// Largest key, in bytes (FoundationDB's limit; fjall's own is 65,536).
pub(crate) const MAX_KEY_BYTES: usize = 10_000;
/// Largest value, in bytes (FoundationDB's limit).
pub(crate) const MAX_VALUE_BYTES: usize = 100_000;
/// Largest transaction, in bytes of keys and values written (FoundationDB's hard limit is
/// 10,000,000 bytes of mutations and conflict ranges; a clear_range counts its two bounds).
pub(crate) const MAX_TX_BYTES: usize = 10_000_000;

/// Checks a stored key's length (`len` includes any prefix the backend adds).
pub(crate) fn check_key(len: usize) -> Result<(), KvError> {
    if len > MAX_KEY_BYTES {
        return Err(KvError::Storage(format!(
            "key of {len} bytes exceeds the {MAX_KEY_BYTES}-byte limit"
        )));
    }
    Ok(())
}

/// Checks a value's length.
pub(crate) fn check_value(len: usize) -> Result<(), KvError> {
    if len > MAX_VALUE_BYTES {
        return Err(KvError::Storage(format!(
            "value of {len} bytes exceeds the {MAX_VALUE_BYTES}-byte limit"
        )));
    }
    Ok(())
}

/// What every backend's transaction checks and remembers: the limits above, the bytes
/// written so far, and the error that ends the transaction.
#[derive(Debug, Default)]
pub(crate) struct TxChecks {
    /// Bytes every stored key carries in front of the caller's (FDB's key prefix).
    key_prefix: usize,
    bytes: usize,
    error: Option<KvError>,
}

impl TxChecks {
    /// Checks for a store whose keys carry `key_prefix` more bytes.
    #[cfg_attr(not(feature = "fdb"), allow(dead_code))] // only FDB prefixes its keys
    pub(crate) fn with_key_prefix(key_prefix: usize) -> TxChecks {
        TxChecks {
            key_prefix,
            ..TxChecks::default()
        }
    }

    /// Remembers `e` and returns it: the first error ends the transaction, unless a
    /// retryable one follows (so it is re-run whenever the store asked for that).
    pub(crate) fn fail(&mut self, e: KvError) -> KvError {
        let replace = match &self.error {
            None => true,
            Some(KvError::Retryable(_)) => false,
            Some(_) => matches!(e, KvError::Retryable(_)),
        };
        if replace {
            self.error = Some(e.clone());
        }
        e
    }

    /// Checks a key against [`MAX_KEY_BYTES`].
    pub(crate) fn check_key(&mut self, key: &[u8]) -> Result<(), KvError> {
        check_key(self.key_prefix + key.len()).map_err(|e| self.fail(e))
    }

    /// Checks a write of `key` (and `value`) against the limits and counts its bytes.
    pub(crate) fn check_write(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.check_key(key)?;
        check_value(value.len()).map_err(|e| self.fail(e))?;
        self.count(self.key_prefix + key.len() + value.len())
    }

    /// Checks a `clear_range`, counted as its two bounds as FoundationDB does.
    pub(crate) fn check_clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        self.check_key(start)?;
        self.check_key(end)?;
        self.count(2 * self.key_prefix + start.len() + end.len())
    }

    /// Counts `n` more bytes written against [`MAX_TX_BYTES`].
    fn count(&mut self, n: usize) -> Result<(), KvError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_TX_BYTES {
            let e = KvError::Storage(format!("transaction exceeds the {MAX_TX_BYTES}-byte limit"));
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// The error that ends the transaction, if any.
    pub(crate) fn result(&self) -> Result<(), KvError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    pub(crate) fn into_error(self) -> Option<KvError> {
        self.error
    }
}

/// FoundationDB's ADD on a stored value: the old value (absent: zero) zero-extended or
/// truncated to 8 bytes, read little-endian, plus `delta`, wrapping.
pub(crate) fn add_le(old: Option<&[u8]>, delta: i64) -> [u8; 8] {
    let mut buf = [0u8; 8];
    if let Some(old) = old {
        let n = old.len().min(8);
        buf[..n].copy_from_slice(&old[..n]);
    }
    i64::from_le_bytes(buf).wrapping_add(delta).to_le_bytes()
}

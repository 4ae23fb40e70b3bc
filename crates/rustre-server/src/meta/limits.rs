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

/// Bytes one transaction has written so far, against [`MAX_TX_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct TxBudget {
    bytes: usize,
}

impl TxBudget {
    /// Counts `n` more bytes written.
    pub(crate) fn count(&mut self, n: usize) -> Result<(), KvError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_TX_BYTES {
            return Err(KvError::Storage(format!(
                "transaction exceeds the {MAX_TX_BYTES}-byte limit"
            )));
        }
        Ok(())
    }
}

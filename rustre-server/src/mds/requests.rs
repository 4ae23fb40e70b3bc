//! Exactly-once mutations across retries. A client numbers each mutating call within its
//! session; the MDS records the call's result under `request/{session}/{seq}` in the same
//! transaction as the change, so a retry (after a lost reply, a dropped connection or a dead
//! MDS) gets the original answer instead of running again and failing with EEXIST or ENOENT.
//!
//! Records are pruned as the sequence moves on: a call's record is removed when the call
//! numbered [`REQUEST_RECORD_WINDOW`] later commits, and all of them when the session ends.
//! A client never has that many calls in flight, so a retry always finds its record.

use rustre_proto::codec;
use rustre_proto::Error;
use serde::{de::DeserializeOwned, Serialize};

use crate::meta::{KvError, Transaction};
use crate::schema;

/// How many later calls a recorded result outlives.
pub(super) const REQUEST_RECORD_WINDOW: u64 = 16_384;

/// Runs `op` unless request `(session, seq)` already committed, in which case its recorded
/// result is returned. Only successes are recorded: a failed call changed nothing, so
/// running it again is safe.
pub(super) fn run_once<T, E, F>(
    tx: &mut dyn Transaction,
    session: u64,
    seq: u64,
    op: F,
) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    E: From<Error> + From<KvError>,
    F: FnOnce(&mut dyn Transaction) -> Result<T, E>,
{
    let key = schema::request(session, seq);
    if let Some(bytes) = tx.get(&key)? {
        tracing::debug!(
            session,
            seq,
            "replaying the recorded result of a retried call"
        );
        return Ok(codec::decode(&bytes)?);
    }
    let out = op(tx)?;
    tx.set(&key, &codec::encode(&out)?);
    if let Some(old) = seq.checked_sub(REQUEST_RECORD_WINDOW) {
        tx.clear(&schema::request(session, old));
    }
    Ok(out)
}

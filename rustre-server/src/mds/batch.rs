//! Changes a client answered ahead, sent together
//! ([`rustre_proto::msg::mds::MdsOp::Batch`]): one frame, one task and one answer for many
//! unlinks and renames (an `rm -r`'s, a build's clean), where each would otherwise cost
//! its own read, wake-up, task and reply; and the waited call (an rmdir, a listing, a
//! lookup) sent behind them, which runs after them without waiting for their answer first.
//!
//! Each call runs as if sent alone, in order: a change in its own transaction under its
//! directory locks, with its own request record (`super::requests`: a retried batch gets
//! the recorded answers of the changes that committed and runs the others), its own
//! capability recall and its own entries on the change feed. Only the wait for the disk is
//! shared: on a durable MDS the batch is answered after one group commit that follows its
//! last change, not after one per change.

use std::sync::Arc;

use rustre_proto::msg::mds::{in_batch, InBatch, MdsRequest, MdsResponse, Numbered, BATCH_MAX_OPS};
use rustre_proto::msg::Creds;
use rustre_proto::rpc::server::Caller;
use rustre_proto::Error;

use super::error::MdsError;
use super::Mds;

impl Mds {
    /// Runs the calls of a batch in order and answers each (see the module
    /// documentation). Refused whole, nothing run, when it holds more than
    /// [`BATCH_MAX_OPS`] calls, a call that may not be batched ([`in_batch`]), a change
    /// without a request number, or a read anywhere but last.
    pub(super) async fn batch(
        self: Arc<Self>,
        creds: Creds,
        session: u64,
        ops: Vec<Numbered>,
        caller: Caller,
    ) -> Result<MdsResponse, MdsError> {
        if ops.len() > BATCH_MAX_OPS {
            return Err(Error::Invalid(format!(
                "a batch of {} changes (at most {BATCH_MAX_OPS})",
                ops.len()
            ))
            .into());
        }
        let fits = |(i, n): (usize, &Numbered)| match in_batch(&n.op) {
            Some(InBatch::Change) => n.seq != 0,
            Some(InBatch::Read) => i + 1 == ops.len(),
            None => false,
        };
        if session == 0 || !ops.iter().enumerate().all(fits) {
            return Err(Error::Invalid(
                "a batch holds a session's numbered unlinks, renames and rmdirs, and one \
                 lookup, getattr or listing last"
                    .into(),
            )
            .into());
        }
        let mut answers = Vec::with_capacity(ops.len());
        let mut changed = false;
        for Numbered { seq, op } in ops {
            let change = in_batch(&op) == Some(InBatch::Change);
            let req = MdsRequest {
                creds: creds.clone(),
                session,
                seq,
                op,
            };
            let answer = self.clone().dispatch_one(req, caller, true).await;
            changed |= change && answer.is_ok();
            answers.push(answer.map_err(MdsError::into_wire));
        }
        if changed && self.cfg.durable {
            self.kv.durable().await?;
        }
        Ok(MdsResponse::Batch(answers))
    }
}

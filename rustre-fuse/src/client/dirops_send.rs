//! How the changes answered ahead ([`super::async_dirops`]) reach the MDS: in the order
//! they were answered, one batch on the wire at a time, with the waited calls that must
//! come after them sent behind them.
//!
//! A change answered while none is on its way is written at once, alone, on the calling
//! thread ([`first_poll`]), as a waited change would be. A change answered while one is on
//! its way waits in a queue here; when the answer comes back, the worker that read it
//! sends everything queued meanwhile (at most [`BATCH_MAX_OPS`], one caller's) as one
//! [`MdsOp::Batch`], and so on until the queue is empty. The MDS runs a batch's calls in
//! order, each change in its own transaction under its own request number, and answers
//! them together: an `rm -r` costs it one frame, one task and one reply per round trip
//! instead of one per file (about half of its time per unlink went there), and fuser's
//! thread writes to the socket once per batch instead of once per unlink. The answers
//! settle the cache one by one, as they did alone ([`settle`]; a change whose answer never
//! came, its sender dropped at shutdown, is forgotten: [`InFlight`]).
//!
//! A waited call that must come after the changes in flight (every other metadata call:
//! [`Client::dirops_settled`]) used to wait for all their answers, then make its own round
//! trip. An rmdir and the reads a batch may end with (a listing, a lookup, a getattr:
//! [`sent_behind_dirops`]) are queued behind them instead ([`Client::mds_after_changes`]):
//! the MDS runs them after those changes in the same stream, and `rm -r`'s rmdir of each
//! directory, or `find`'s next listing, no longer waits a round trip more.
//!
//! The wait in the queue is at most one round trip: the places in flight
//! ([`super::async_dirops::DIROPS_AHEAD_MAX`]) count queued changes too, so everything
//! that waits for the changes in flight to settle waits for the queue as well.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rustre_proto::msg::mds::{
    in_batch, Change, InBatch, MdsOp, MdsResponse, Numbered, BATCH_MAX_OPS,
};
use rustre_proto::msg::Creds;
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::sync::oneshot;

use super::meta_cache::Ahead;
use super::meta_ops::{destroyed, own_results, request_entries};
use super::{first_poll, metrics, Client};

/// Whether a waited call goes behind the changes answered ahead, in their stream, rather
/// than after their answers: an rmdir (the directory those unlinks emptied, an `rm -r`'s
/// next step) and the reads that may go in a batch. Not a waited unlink or rename: one is
/// waited for where the cache could not settle its outcome, often because a change of the
/// same name is in flight, and it keeps registering with the cache only once those are
/// answered, as before.
pub(super) fn sent_behind_dirops(op: &MdsOp) -> bool {
    matches!(op, MdsOp::Rmdir { .. }) || in_batch(op) == Some(InBatch::Read)
}

/// Ends a change in flight however it ends (answered, or dropped at shutdown: then its
/// outcome is unknown to the cache).
pub(super) struct InFlight {
    client: Arc<Client>,
    pub(super) seq: u64,
    answered: bool,
}

impl InFlight {
    /// Change `seq`, whose place in flight its caller took.
    pub(super) fn new(client: Arc<Client>, seq: u64) -> InFlight {
        InFlight {
            client,
            seq,
            answered: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.answered {
            self.client.meta_cache.own_answered(self.seq, None);
        }
        self.client.dirops_ahead.give_back();
    }
}

/// A call not yet sent, and who waits for its answer.
pub(super) struct Queued {
    pub(super) creds: Creds,
    pub(super) op: MdsOp,
    pub(super) waiter: Waiter,
}

/// Who waits for a queued call's answer.
pub(super) enum Waiter {
    /// Nobody: a change answered ahead, whose answer settles the cache.
    Ahead { f: InFlight, ahead: Ahead },
    /// A caller that sent the call (request number `seq`, 0 for a read) behind the changes
    /// answered before it ([`Client::mds_after_changes`]).
    Caller {
        seq: u64,
        answer: oneshot::Sender<Result<MdsResponse, Error>>,
    },
}

impl Queued {
    fn seq(&self) -> u64 {
        match &self.waiter {
            Waiter::Ahead { f, .. } => f.seq,
            Waiter::Caller { seq, .. } => *seq,
        }
    }

    /// Hands the MDS's answer to whoever waits for it.
    fn answered(self, r: Result<MdsResponse, Error>) {
        match self.waiter {
            Waiter::Ahead { f, ahead } => settle(f, &ahead, &self.op, r),
            Waiter::Caller { answer, .. } => drop(answer.send(r)),
        }
    }
}

/// The calls waiting for the one batch on the wire.
#[derive(Default)]
pub(super) struct Outgoing {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queued: VecDeque<Queued>,
    /// A sender is on its way (it sends the queue before it stops).
    sending: bool,
}

impl Outgoing {
    /// Queues `q` behind the batch on its way and returns `None`; with none on its way,
    /// returns `q` for the caller to send, marked as on its way.
    fn queue_or_take(&self, q: Queued) -> Option<Queued> {
        let mut state = lock(&self.state);
        if state.sending {
            state.queued.push_back(q);
            return None;
        }
        state.sending = true;
        Some(q)
    }

    /// Queues `q` behind the batch on its way and returns `None`; with none on its way, `q`
    /// comes back (the caller waits for the changes in flight to settle instead).
    fn queue_behind(&self, q: Queued) -> Option<Queued> {
        let mut state = lock(&self.state);
        if !state.sending {
            return Some(q);
        }
        state.queued.push_back(q);
        None
    }

    /// The next batch to send: the longest run at the queue's head of one caller's calls,
    /// at most [`BATCH_MAX_OPS`], ending at the first read ([`InBatch::Read`]). `None` when
    /// the queue is empty: the sender stops.
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut state = lock(&self.state);
        let Some(first) = state.queued.front() else {
            state.sending = false;
            return None;
        };
        let creds = first.creds.clone();
        let mut run = 0;
        for q in state.queued.iter().take(BATCH_MAX_OPS) {
            if q.creds != creds {
                break;
            }
            run += 1;
            if in_batch(&q.op) != Some(InBatch::Change) {
                break;
            }
        }
        Some(state.queued.drain(..run).collect())
    }

    /// Ends a sender that stopped before its queue was empty (its task was dropped, at
    /// shutdown): what it left unsent is dropped, so the cache forgets those changes
    /// ([`InFlight`]), their places are given back and their callers are answered.
    fn abandon(&self) {
        let left: Vec<Queued> = {
            let mut state = lock(&self.state);
            state.sending = false;
            state.queued.drain(..).collect()
        };
        drop(left);
    }
}

/// The sender's own mark: [`Outgoing::abandon`] unless it stopped with the queue empty.
struct Sender {
    client: Arc<Client>,
    stopped: bool,
}

impl Drop for Sender {
    fn drop(&mut self) {
        if !self.stopped {
            self.client.dirops_ahead.outgoing.abandon();
        }
    }
}

impl Client {
    /// Sends `op` (request number `seq`; 0: a read) after the changes answered ahead
    /// before it: queued behind them when a batch is on its way and `op` goes there
    /// ([`sent_behind_dirops`]), so it reaches the MDS in their stream without waiting for
    /// their answers first; else once none is in flight ([`Client::dirops_settled`]).
    pub(super) async fn mds_after_changes(
        &self,
        creds: &Creds,
        op: MdsOp,
        seq: u64,
    ) -> Result<MdsResponse, Error> {
        let mut op = op;
        if self.dirops_ahead.any_in_flight() && sent_behind_dirops(&op) {
            let (answer, answered) = oneshot::channel();
            let q = Queued {
                creds: creds.clone(),
                op,
                waiter: Waiter::Caller { seq, answer },
            };
            match self.dirops_ahead.outgoing.queue_behind(q) {
                None => {
                    if let Some(m) = metrics::get() {
                        m.calls_behind_dirops.inc();
                    }
                    return answered.await.unwrap_or_else(|_| {
                        Err(Error::Unavailable(
                            "the client stopped before the call was sent".into(),
                        ))
                    });
                }
                Some(q) => op = q.op,
            }
        }
        self.dirops_settled().await;
        self.mds_numbered(creds, op, seq).await
    }

    /// Sends `q` now on this thread if no batch is on its way, else queues it for the
    /// sender to take (see the module documentation).
    pub(super) fn send_in_order(self: &Arc<Self>, q: Queued) {
        if let Some(q) = self.dirops_ahead.outgoing.queue_or_take(q) {
            let sender = Sender {
                client: self.clone(),
                stopped: false,
            };
            drop(first_poll::spawn(send_until_empty(sender, q), true));
        }
    }
}

/// Sends `first`, then whatever was queued meanwhile, batch after batch, until the queue
/// is empty.
async fn send_until_empty(mut sender: Sender, first: Queued) {
    let c = sender.client.clone();
    let mut batch = vec![first];
    loop {
        send_batch(&c, batch).await;
        match c.dirops_ahead.outgoing.next_batch() {
            Some(next) => batch = next,
            None => break,
        }
    }
    sender.stopped = true;
}

/// Sends one batch (a single call as itself) and hands each call's answer on.
async fn send_batch(c: &Arc<Client>, mut batch: Vec<Queued>) {
    if batch.len() == 1 {
        let q = batch.remove(0);
        let r = c.mds_numbered(&q.creds, q.op.clone(), q.seq()).await;
        q.answered(r);
        return;
    }
    if let Some(m) = metrics::get() {
        let ahead = batch
            .iter()
            .filter(|q| matches!(q.waiter, Waiter::Ahead { .. }));
        m.dirops_ahead_batched.inc_by(ahead.count() as u64);
    }
    let ops = batch
        .iter()
        .map(|q| Numbered {
            seq: q.seq(),
            op: q.op.clone(),
        })
        .collect();
    let n = batch.len();
    // The outer request is not recorded (request number 0): each change is, under its own.
    let answers = match c
        .mds_numbered(&batch[0].creds, MdsOp::Batch { ops }, 0)
        .await
    {
        Ok(MdsResponse::Batch(answers)) if answers.len() == n => answers,
        Ok(other) => vec![Err(super::unexpected(other)); n],
        Err(e) => vec![Err(e); n],
    };
    for (q, answer) in batch.into_iter().zip(answers) {
        q.answered(answer);
    }
}

/// Settles the cache with the MDS's answer `r` to `op`, a change answered ahead as `ahead`.
pub(super) fn settle(mut f: InFlight, ahead: &Ahead, op: &MdsOp, r: Result<MdsResponse, Error>) {
    let c = f.client.clone();
    f.answered = true;
    match r {
        Ok(resp @ MdsResponse::NamesChanged(_)) => {
            c.meta_cache
                .own_answered(f.seq, Some(own_results(op, &resp)));
            if let MdsResponse::NamesChanged(n) = resp {
                for ino in destroyed(&n) {
                    c.cache.invalidate(ino);
                }
            }
        }
        // An unlink's name already gone: another client removed it between this client's
        // look and the MDS's transaction (or an earlier try of this request did, before
        // the MDS restarted). What the cache showed holds.
        Err(Error::NotFound) if matches!(op, MdsOp::Unlink { .. }) => {
            tracing::debug!(?op, source = ahead.source, "answered ahead: already gone");
            c.meta_cache.own_answered(f.seq, None);
        }
        other => {
            let e = match other {
                Ok(r) => super::unexpected(r),
                Err(e) => e,
            };
            tracing::warn!(
                ?op,
                source = ahead.source,
                "a change answered ahead was refused by the MDS, the names stay as they were: {e}"
            );
            if let Some(m) = metrics::get() {
                m.dirops_ahead_failed.inc();
            }
            c.meta_cache.own_answered(f.seq, None);
            // The kernel was answered as if it had happened: it forgets those names and
            // the inode, and asks again.
            let mut undone: Vec<Change> = request_entries(op)
                .into_iter()
                .map(|(parent, name)| Change::Entry { parent, name })
                .collect();
            undone.push(Change::Inode(ahead.source));
            c.kernel.undo(undone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waited call of `uid` (its answer's receiver dropped: only the queue is tested).
    fn call(uid: u32, op: MdsOp) -> Queued {
        let (answer, _) = oneshot::channel();
        Queued {
            creds: Creds {
                uid,
                ..Creds::root()
            },
            op,
            waiter: Waiter::Caller { seq: 1, answer },
        }
    }

    fn unlink(uid: u32) -> Queued {
        let op = MdsOp::Unlink {
            parent: 1,
            name: "f".into(),
        };
        call(uid, op)
    }

    fn lookup(uid: u32) -> Queued {
        let op = MdsOp::Lookup {
            parent: 1,
            name: "f".into(),
        };
        call(uid, op)
    }

    /// The sizes of the batches the queue hands out until it is empty.
    fn batches(out: &Outgoing) -> Vec<usize> {
        std::iter::from_fn(|| out.next_batch().map(|b| b.len())).collect()
    }

    #[test]
    fn the_first_call_is_sent_and_the_rest_wait_behind_it() {
        let out = Outgoing::default();
        assert!(out.queue_behind(lookup(0)).is_some(), "nothing on its way");
        assert!(out.queue_or_take(unlink(0)).is_some(), "sent at once");
        assert!(out.queue_or_take(unlink(0)).is_none(), "queued");
        assert!(out.queue_behind(lookup(0)).is_none(), "queued behind");
        assert_eq!(batches(&out), vec![2]);
        // Stopped: the next call is sent at once again.
        assert!(out.queue_or_take(unlink(0)).is_some());
    }

    #[test]
    fn a_batch_is_one_caller_s_at_most_its_limit_and_ends_at_a_read() {
        let out = Outgoing::default();
        assert!(out.queue_or_take(unlink(0)).is_some());
        for q in [
            unlink(0),
            unlink(0),
            unlink(7),
            unlink(7),
            lookup(7),
            unlink(7),
        ] {
            assert!(out.queue_or_take(q).is_none());
        }
        for _ in 0..BATCH_MAX_OPS + 3 {
            assert!(out.queue_or_take(unlink(0)).is_none());
        }
        // Two of uid 0; uid 7's two unlinks and its read; then the rest: uid 7's unlink,
        // then uid 0's in batches of at most the limit.
        assert_eq!(batches(&out), vec![2, 3, 1, BATCH_MAX_OPS, 3]);
        assert!(out.next_batch().is_none());
    }
}

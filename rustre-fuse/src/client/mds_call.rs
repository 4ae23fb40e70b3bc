//! How a metadata call reaches the MDS: after this client's changes answered ahead
//! ([`super::async_dirops`]; behind them in their batches where it may go there,
//! [`super::dirops_send`]), numbered when it changes something so that the MDS runs it
//! once however often it is sent, again in a new session when the old one was evicted,
//! and retried on the other MDS of the map while one fails.

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
use rustre_proto::msg::Creds;
use rustre_proto::sync::lock;
use rustre_proto::Error;

use super::dirops_send::sent_behind_dirops;
use super::meta_cache::OwnResult;
use super::meta_ops::{idempotent, is_session_op, own_results, request_entries};
use super::Client;
/// How long a metadata call keeps being retried on other MDS while none answers.
pub(super) const MDS_RETRY_FOR: Duration = Duration::from_secs(30);
/// First pause between retries; doubles up to [`MDS_RETRY_PAUSE_MAX`].
pub(super) const MDS_RETRY_PAUSE_MIN: Duration = Duration::from_millis(20);
pub(super) const MDS_RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How long an MDS that failed a call is passed over while others answer.
pub(super) const MDS_COOLDOWN: Duration = Duration::from_secs(2);
/// How long one try of a metadata call waits for its answer before it is retried on a new
/// connection (the longest legitimate call, a create waiting for OSTs, takes about 10 s). A
/// connection that stopped delivering without closing would otherwise hold the call for the
/// whole `RPC_TIMEOUT` and fail it. Retrying is safe: a repeat carries the same request id.
pub(super) const MDS_TRY_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs its closure when dropped, unless defused.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Client {
    /// Sends one metadata call, spreading calls over the MDS of the map. A call that meets a
    /// dead connection or MDS is sent again to the next one, for at most
    /// [`MDS_RETRY_FOR`]: reads because they are idempotent, mutations because they carry a
    /// sequence number the MDS uses to answer a repeat with the recorded result.
    ///
    /// An open or create refused with ESTALE because the MDS evicted this client's session
    /// is sent once more in a new session (see [`super::session`]).
    pub(crate) async fn mds(&self, creds: &Creds, op: MdsOp) -> Result<MdsResponse, Error> {
        // After the opens, unlinks and renames answered ahead, as if each had waited: an
        // rmdir or a read in their stream, behind them; anything else once they are
        // answered.
        self.send_open_records().await;
        if sent_behind_dirops(&op) {
            return self.mds_in_session_after(creds, op, true).await;
        }
        self.dirops_settled().await;
        if !matches!(op, MdsOp::Open { .. } | MdsOp::Create { .. }) {
            return self.mds_in_session(creds, op).await;
        }
        let used = self.session();
        match self.mds_in_session(creds, op.clone()).await {
            Err(Error::Stale) if self.session_was_replaced(used).await => {
                self.mds_in_session(creds, op).await
            }
            r => r,
        }
    }

    /// [`Client::mds`] in the current session.
    pub(super) async fn mds_in_session(
        &self,
        creds: &Creds,
        op: MdsOp,
    ) -> Result<MdsResponse, Error> {
        self.mds_in_session_after(creds, op, false).await
    }

    /// [`Client::mds_in_session`]; `behind`: sent behind the changes answered ahead
    /// ([`Client::mds_after_changes`]).
    async fn mds_in_session_after(
        &self,
        creds: &Creds,
        op: MdsOp,
        behind: bool,
    ) -> Result<MdsResponse, Error> {
        let send = |op, seq| async move {
            match behind {
                true => self.mds_after_changes(creds, op, seq).await,
                false => self.mds_numbered(creds, op, seq).await,
            }
        };
        if idempotent(&op) || is_session_op(&op) {
            return send(op, 0).await;
        }
        let seq = self.meta_cache.own_change(request_entries(&op), || {
            self.seq.fetch_add(1, Ordering::Relaxed)
        });
        // A call dropped half-way (its caller gave up) may or may not have happened.
        let unfinished = OnDrop(Some(|| self.meta_cache.own_answered(seq, None)));
        let r = send(op.clone(), seq).await;
        unfinished.defuse();
        let results = match &r {
            Ok(resp) => Some(own_results(&op, resp)),
            // Lost on the way, or failed inside the MDS: maybe done, maybe not.
            Err(Error::Unavailable(_) | Error::TimedOut | Error::Io(_) | Error::Protocol(_)) => {
                None
            }
            // Refused: nothing changed, but the refusal says what this client believed is
            // out of date (ESTALE: the inode it named is gone; ENOENT, EEXIST: a name is not
            // what it thought): the cache waits for the feeds to catch up.
            Err(_) => Some(vec![OwnResult::Unknown]),
        };
        self.meta_cache.own_answered(seq, results);
        r
    }

    /// Sends `op` as request number `seq` (0: not recorded), retrying as [`Client::mds`]
    /// says.
    pub(super) async fn mds_numbered(
        &self,
        creds: &Creds,
        op: MdsOp,
        seq: u64,
    ) -> Result<MdsResponse, Error> {
        let req = MdsRequest {
            creds: creds.clone(),
            session: self.session(),
            seq,
            op,
        };
        let deadline = Instant::now() + MDS_RETRY_FOR;
        let mut pause = MDS_RETRY_PAUSE_MIN;
        // With metrics off, nothing is timed or named.
        let counted = rustre_proto::metrics::rpc_client()
            .map(|m| (m, rustre_proto::metrics::op_name(&req.op)));
        loop {
            if let Some(peer) = self.pick_mds() {
                let start = counted.map(|_| std::time::Instant::now());
                let call = peer.call_within::<_, MdsResponse>(&req, Bytes::new(), MDS_TRY_TIMEOUT);
                let answer = call.await;
                if let (Some((m, op)), Some(start)) = (counted, start) {
                    m.call(Service::Mds, op, start, answer.is_ok());
                }
                match answer {
                    Ok((r, _)) => return Ok(r),
                    Err(e) if e.is_transient() && Instant::now() < deadline => {
                        tracing::debug!(mds = peer.addr(), "metadata call failed, retrying: {e}");
                        rustre_proto::metrics::client_retry(Service::Mds);
                        lock(&self.mds_cooldown)
                            .insert(peer.addr().to_string(), Instant::now() + MDS_COOLDOWN);
                        // Another MDS may answer at once; pause only when all are failing.
                        if self.pick_mds().is_some_and(|p| p.addr() != peer.addr()) {
                            continue;
                        }
                    }
                    Err(e) => return Err(e),
                }
            } else if Instant::now() >= deadline {
                return Err(Error::Unavailable("no MDS in the cluster map".into()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MDS_RETRY_PAUSE_MAX);
            // The dead MDS may have been replaced or marked down meanwhile.
            let _ = self.cluster.refresh().await;
        }
    }

    /// The next MDS in round-robin order, skipping those that failed recently unless all did.
    fn pick_mds(&self) -> Option<std::sync::Arc<rustre_proto::rpc::client::Peer>> {
        let peers = self.cluster.mds_peers();
        if peers.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut cooldown = lock(&self.mds_cooldown);
        cooldown.retain(|_, until| *until > now);
        let start = self.rr.fetch_add(1, Ordering::Relaxed) as usize;
        let healthy = (0..peers.len())
            .map(|i| &peers[(start + i) % peers.len()])
            .find(|p| !cooldown.contains_key(p.addr()));
        Some(healthy.unwrap_or(&peers[start % peers.len()]).clone())
    }
}

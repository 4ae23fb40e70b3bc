//! O_APPEND writes: the MDS decides where each one lands (`MdsOp::ReserveAppend`), so
//! appends through any number of clients never overlap (docs/mount.md, "Appends"). The
//! offset the kernel passes is its guess from the size it knows, and is ignored.
//!
//! A file this client alone appends to is leased to it: its appends then go at the end it
//! knows, below the lease's limit, without asking, until the lease runs out (a little
//! before the MDS's expiry, by this client's clock). When another client appends, the MDS
//! takes the lease back: the change it makes shows on the feed ([`Client::on_feed_changes`]),
//! and this client gives the lease back with the end its appends reached.

use std::sync::Arc;
use std::time::Duration;

use rustre_proto::msg::mds::{Change, ChangeBatch, MdsOp, MdsResponse};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::Error;

use super::files::AppendLease;
use super::meta_ops::check_layout;
use super::{unexpected, Client};

/// How much sooner than the MDS this client stops using an append lease (clock drift, the
/// request's time in flight before the MDS started the lease).
const APPEND_LEASE_MARGIN: Duration = Duration::from_millis(500);
/// First pause before asking again while another client's lease is taken back (doubling).
const APPEND_RETRY_FIRST: Duration = Duration::from_millis(2);
/// Longest pause between two such tries.
const APPEND_RETRY_MAX: Duration = Duration::from_millis(50);
/// Longest an append waits for another client's lease (which the MDS lets expire in 2 s).
const APPEND_WAIT_MAX: Duration = Duration::from_secs(10);
/// After the MDS refused a lease (the file is contended), how long appends do not ask for
/// one (the MDS's `APPEND_CONTENDED_MS`): asking makes the call a durable change.
const APPEND_NO_LEASE_FOR: Duration = Duration::from_secs(10);

impl Client {
    /// Where an append of `len` bytes to open regular file `ino` by `creds` goes, and how
    /// many fit (fewer at the size limit): under this client's lease without a round trip,
    /// else as the MDS reserves them (taking a lease when it grants one). The size this
    /// client knows stays where it was until the write is buffered (its caller's
    /// `Files::wrote`), so a read through this client never sees the range before its data.
    pub(super) async fn append_offset(
        &self,
        creds: &Creds,
        ino: Ino,
        len: usize,
    ) -> Result<(u64, usize), Error> {
        if let Some(at) = self.files.leased_append(ino, len as u64) {
            return Ok((at, len));
        }
        let start = tokio::time::Instant::now();
        let mut pause = APPEND_RETRY_FIRST;
        loop {
            if let Some(r) = self.reserve_append(creds, ino, len).await? {
                return Ok(r);
            }
            if start.elapsed() > APPEND_WAIT_MAX {
                return Err(Error::TimedOut);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(APPEND_RETRY_MAX);
        }
    }

    /// One `ReserveAppend`; `None` when another client's lease is being taken back.
    async fn reserve_append(
        &self,
        creds: &Creds,
        ino: Ino,
        len: usize,
    ) -> Result<Option<(u64, usize)>, Error> {
        let (known_size, truncate_version) = self.files.size_and_version(ino);
        let want_lease = self.files.wants_append_lease(ino);
        let op = MdsOp::ReserveAppend {
            ino,
            len: len as u64,
            known_size,
            truncate_version,
            want_lease,
        };
        let sent = tokio::time::Instant::now();
        match self.mds(creds, op).await? {
            MdsResponse::Reserved { retry: true, .. } => Ok(None),
            MdsResponse::Reserved {
                offset,
                len: granted,
                mut attr,
                lease_ms,
                lease_limit,
                retry: false,
            } => {
                check_layout(&attr)?;
                let granted = usize::try_from(granted)
                    .ok()
                    .filter(|g| *g <= len && offset.checked_add(*g as u64).is_some())
                    .ok_or_else(|| Error::Protocol(format!("MDS granted {granted} of {len}")))?;
                // Learned without the reserved bytes (a truncate version, the layout).
                attr.size = offset;
                self.merge_local(&mut attr);
                let lease = Duration::from_millis(lease_ms)
                    .checked_sub(APPEND_LEASE_MARGIN)
                    .filter(|_| lease_ms > 0)
                    .map(|d| AppendLease {
                        limit: lease_limit,
                        until: sent + d,
                        truncate_version: attr.truncate_version,
                    });
                let refused = (want_lease && lease.is_none()).then_some(APPEND_NO_LEASE_FOR);
                self.files.set_append_lease(ino, lease, refused);
                Ok(Some((offset, granted)))
            }
            r => Err(unexpected(r)),
        }
    }

    /// Gives this client's append lease of `ino` back to the MDS, if it holds one, once no
    /// append of it is in flight here: the size moves to the end its appends reached.
    pub(super) async fn return_append_lease(&self, ino: Ino) {
        let lock = self.files.append_lock(ino);
        let _guard = lock.lock().await;
        let Some((end, truncate_version)) = self.files.take_append_lease(ino) else {
            return;
        };
        let op = MdsOp::ReturnAppendLease {
            ino,
            end,
            truncate_version,
        };
        if let Err(e) = self.mds(&Creds::root(), op).await {
            // The MDS takes it back when it expires.
            tracing::debug!(ino, "append lease not given back: {e}");
        }
    }

    /// A feed batch: another client (or the MDS's own work) changed an inode whose end this
    /// client holds: the lease goes back (the MDS may be taking it back for an appender).
    pub(super) fn on_feed_changes(self: &Arc<Self>, batch: &ChangeBatch) {
        let held = self.files.append_leases();
        if held.is_empty() {
            return;
        }
        let me = self.session();
        let back: Vec<Ino> = if batch.lost {
            held
        } else {
            held.into_iter()
                .filter(|ino| {
                    batch.changes.iter().any(|c| match &c.change {
                        Change::Inode(i) => i == ino && c.request.0 != me,
                        Change::All => true,
                        Change::Entry { .. } | Change::Recall(_) => false,
                    })
                })
                .collect()
        };
        for ino in back {
            let c = self.clone();
            tokio::spawn(async move { c.return_append_lease(ino).await });
        }
    }
}

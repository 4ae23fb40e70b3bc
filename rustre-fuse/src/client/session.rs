//! The client's session with the MDS: opened at connect, renewed every third of its lease,
//! and replaced when the MDS evicted it (its lease ran out while the MDS or the network was
//! away for longer): the handles opened in it are evicted (they fail with EIO until closed,
//! as Lustre's), and a new session takes its place.
//!
//! The renewal finds an eviction within a third of the lease. An open or create refused
//! with ESTALE does not wait for it: it asks whether the session it was sent in is gone, and
//! if so replaces it and is sent once more ([`Client::mds`]), so that the first opens after
//! an MDS outage longer than the lease succeed instead of failing for up to 10 s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::Creds;
use rustre_proto::Error;

use super::{unexpected, Client};

/// Shortest pause between two renewals, whatever the lease.
const RENEW_EVERY_MIN: Duration = Duration::from_millis(100);

impl Client {
    /// Opens a session with the MDS; answers its lease in milliseconds.
    pub(super) async fn open_session(&self) -> Result<u64, Error> {
        let op = MdsOp::OpenSession {
            client: self.name.clone(),
        };
        match self.mds_in_session(&Creds::root(), op).await? {
            MdsResponse::Session {
                id,
                lease_ms,
                inline_max,
            } => {
                self.session.store(id, Ordering::SeqCst);
                self.inline_max.store(inline_max, Ordering::Relaxed);
                Ok(lease_ms)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Renews the session every third of `lease_ms` while the client lives, replacing it
    /// when the MDS evicted it.
    pub(super) fn start_renewals(self: &Arc<Self>, lease_ms: u64) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let every = Duration::from_millis(lease_ms / 3).max(RENEW_EVERY_MIN);
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = weak.upgrade() else { break };
                let used = c.session();
                match c.mds_in_session(&Creds::root(), MdsOp::RenewSession).await {
                    Ok(_) => {}
                    Err(Error::Stale) => c.replace_session(used).await,
                    Err(e) => tracing::debug!("session renewal failed: {e}"),
                }
                c.send_all_pending_marks().await;
            }
        });
    }

    /// After an open or create sent in session `used` was refused with ESTALE: true when
    /// that session is gone at the MDS and another now stands in its place (so the call may
    /// be sent again), false when the session lives (the ESTALE was about the file).
    pub(super) async fn session_was_replaced(&self, used: u64) -> bool {
        if self.session() != used {
            return true;
        }
        match self
            .mds_in_session(&Creds::root(), MdsOp::RenewSession)
            .await
        {
            Err(Error::Stale) => {
                self.replace_session(used).await;
                self.session() != used
            }
            _ => false,
        }
    }

    /// Replaces session `used`, which the MDS evicted, unless another caller already did.
    async fn replace_session(&self, used: u64) {
        let _one = self.session_change.lock().await;
        if self.session() != used {
            return;
        }
        let evicted = self.evict_session(used);
        tracing::warn!(
            files = evicted,
            "session expired: its open files fail with EIO until closed (evicted); opening \
             a new session"
        );
        if let Err(e) = self.open_session().await {
            tracing::warn!("opening a new session failed (the renewal tries again): {e}");
        }
    }

    /// Evicts the handles opened in `session`, which expired at the MDS, and drops what
    /// they buffered (see `Files::evict_session`); answers how many files they held.
    fn evict_session(&self, session: u64) -> usize {
        // The MDS dropped the session's locks and directory capabilities with it.
        self.lock_owners.clear();
        self.drop_dir_caps();
        self.dirops_ahead.records.forget();
        let inos = self.files.evict_session(session);
        for ino in &inos {
            self.forget_writes(*ino);
        }
        inos.len()
    }
}

//! Watching every MDS's change feed for the metadata cache ([`super::meta_cache`]).
//!
//! One task follows the cluster map and keeps one watcher per MDS in it; each watcher
//! long-polls its MDS with `MdsOp::Watch` and hands every answer to the cache, then to the
//! kernel's caches ([`super::kernel`]). A watcher whose MDS does not answer simply stops
//! vouching: the cache stops answering [`FEED_LEASE`](super::meta_cache::FEED_LEASE) after
//! the last answer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse, WATCH_MAX_CHANGES, WATCH_WAIT};
use rustre_proto::msg::Creds;
use rustre_proto::rpc::client::Peer;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Client;

/// How long a watcher waits for an answer beyond the MDS's own hold.
pub(super) const WATCH_SLACK: Duration = Duration::from_secs(1);
/// Pause after a failed watch before the next try.
pub(super) const WATCH_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Shortest time between two watches of one MDS while its changes stream in.
pub(super) const WATCH_GATHER: Duration = Duration::from_millis(5);
/// How often the set of watched MDS is compared with the map (also on every new map).
pub(super) const WATCH_MAP_CHECK: Duration = Duration::from_secs(1);

/// Starts following the map's MDS for as long as `client` lives.
pub(super) fn start(client: &Arc<Client>) {
    let weak = Arc::downgrade(client);
    let mut maps = client.cluster().watch();
    tokio::spawn(async move {
        let mut watchers: HashMap<String, JoinHandle<()>> = HashMap::new();
        loop {
            {
                let Some(c) = weak.upgrade() else { break };
                let peers = c.cluster().mds_peers();
                let addrs: Vec<String> = peers.iter().map(|p| p.addr().to_string()).collect();
                c.meta_cache.watch_only(&addrs);
                watchers.retain(|addr, task| {
                    let keep = addrs.contains(addr) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for peer in peers {
                    let addr = peer.addr().to_string();
                    watchers
                        .entry(addr)
                        .or_insert_with(|| tokio::spawn(watch(weak.clone(), peer)));
                }
            }
            let _ = tokio::time::timeout(WATCH_MAP_CHECK, maps.changed()).await;
        }
        for task in watchers.into_values() {
            task.abort();
        }
    });
}

/// How often a held feed looks whether it may go on ([`Client::hold_feed`]).
const HOLD_POLL: Duration = Duration::from_millis(1);

/// Returns once the client's feed is not held (or the client is gone).
async fn wait_while_held(client: &Weak<Client>) {
    while client
        .upgrade()
        .is_some_and(|c| c.feed_held.load(Ordering::SeqCst))
    {
        tokio::time::sleep(HOLD_POLL).await;
    }
}

impl Client {
    /// For tests: while `hold` is true, the answers of the change feed wait before they
    /// reach the caches, so the metadata cache keeps what it knew (until its lease,
    /// [`FEED_LEASE`](super::meta_cache::FEED_LEASE), runs out) as it would while the feed
    /// is slow. Nothing of the feed is lost: the held answers are applied on release.
    #[doc(hidden)]
    pub fn hold_feed(&self, hold: bool) {
        self.feed_held.store(hold, Ordering::SeqCst);
    }
}

/// Follows one MDS's feed until the client goes or the MDS leaves the map (the task is
/// then aborted).
async fn watch(client: Weak<Client>, peer: Arc<Peer>) {
    let addr = peer.addr().to_string();
    loop {
        let Some(c) = client.upgrade() else { return };
        let Some((instance, after)) = c.meta_cache.feed_position(&addr) else {
            return;
        };
        let req = MdsRequest {
            creds: Creds::root(),
            session: c.session(),
            seq: 0,
            op: MdsOp::Watch { instance, after },
        };
        // Not held across the wait: the client may go meanwhile.
        drop(c);
        let sent = Instant::now();
        let answer = peer
            .call_within::<_, MdsResponse>(&req, Bytes::new(), WATCH_WAIT + WATCH_SLACK)
            .await;
        wait_while_held(&client).await;
        let Some(c) = client.upgrade() else { return };
        match answer {
            Ok((MdsResponse::Changes(mut batch), _))
                if batch.changes.len() <= WATCH_MAX_CHANGES =>
            {
                let session = c.session();
                c.take_recalls(session, &mut batch);
                let follows = c.meta_cache.apply(&addr, sent, session, &batch);
                c.on_feed_changes(&batch);
                if let Some(follows) = follows {
                    if !follows {
                        // Lost changes cannot be named: every name kept long goes.
                        c.drop_kept_names();
                    }
                    // After the cache, so what the kernel asks again is answered anew.
                    c.kernel.report(session, follows, &batch);
                }
                if !batch.changes.is_empty() {
                    // While changes stream in, one watch per few milliseconds carries them
                    // all, instead of one per change.
                    drop(c);
                    tokio::time::sleep_until(sent + WATCH_GATHER).await;
                }
            }
            other => {
                tracing::debug!(mds = %addr, "change feed: {:?}", other.map(|(r, _)| r));
                drop(c);
                tokio::time::sleep(WATCH_RETRY_PAUSE).await;
            }
        }
    }
}

//! Following the cluster: a task that keeps the latest [`ClusterMap`] from the MGS, and
//! pooled connections to the servers the map names. Used by clients and by servers that
//! talk to other servers (the MDS deleting objects, for instance).
//!
//! [`Cluster::oss_call`] is the one way any process calls an OSS: it carries the map's
//! epoch and follows the epoch rule (an OSS that registered again since the caller's map
//! answers `OldEpoch`; the map is refreshed and the call made again, a bounded number of
//! times). The other fencing answers (`Fenced`: the OSS lost its lease with the MGS) and
//! transport errors are the caller's to judge: a client waits or marks a copy stale, the
//! MDS retries on its next pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::auth::ClusterKey;
use crate::error::Error;
use crate::frame::Service;
use crate::metrics;
use crate::msg::mgs::NodeState;
use crate::msg::mgs::{
    ClusterMap, MgsRequest, MgsResponse, HEARTBEAT_INTERVAL_MS, MGS_CALL_TIMEOUT,
};
use crate::msg::oss::{OssOp, OssRequest, OssResponse};
use crate::rpc::client::Peer;
use crate::sync::lock;

/// Connections kept to each OSS.
pub const CONNS_PER_OSS: usize = 4;
/// Connections kept to each MDS.
pub const CONNS_PER_MDS: usize = 2;
/// Calls of one OSS operation, in all, while the OSS answers `OldEpoch` (the cluster map
/// is refreshed before each new attempt).
pub const OLD_EPOCH_ATTEMPTS: usize = 3;
/// How often the map is re-read from the MGS.
pub const MAP_REFRESH_INTERVAL: Duration = Duration::from_millis(HEARTBEAT_INTERVAL_MS);

/// A live view of the cluster: the newest map and connections to its servers.
pub struct Cluster {
    cluster_name: String,
    client_name: String,
    key: ClusterKey,
    mgs: Peer,
    map: watch::Receiver<Arc<ClusterMap>>,
    map_tx: watch::Sender<Arc<ClusterMap>>,
    peers: Mutex<HashMap<(Service, String), Arc<Peer>>>,
}

impl Cluster {
    /// Fetches the map from the MGS at `mgs_addr` (failing if it cannot be reached) and starts
    /// a task that refreshes it every [`MAP_REFRESH_INTERVAL`] while the `Cluster` lives.
    /// Every connection, to the MGS and to the servers of the map, is authenticated with `key`.
    pub async fn connect(
        mgs_addr: &str,
        cluster_name: &str,
        client_name: &str,
        key: &ClusterKey,
    ) -> Result<Arc<Cluster>, Error> {
        let mgs = Peer::new(mgs_addr, Service::Mgs, cluster_name, client_name, key, 1);
        let first = fetch_map(&mgs).await?;
        let (map_tx, map) = watch::channel(Arc::new(first));
        let cluster = Arc::new(Cluster {
            cluster_name: cluster_name.to_string(),
            client_name: client_name.to_string(),
            key: key.clone(),
            mgs,
            map,
            map_tx,
            peers: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAP_REFRESH_INTERVAL).await;
                let Some(c) = weak.upgrade() else { break };
                if let Err(e) = c.refresh().await {
                    tracing::debug!("cluster map refresh failed: {e}");
                }
            }
        });
        Ok(cluster)
    }

    /// Re-reads the map now.
    pub async fn refresh(&self) -> Result<Arc<ClusterMap>, Error> {
        let map = fetch_map(&self.mgs).await?;
        // Capacity changes do not move the epoch, so compare the whole map.
        if map != **self.map.borrow() {
            tracing::debug!(epoch = map.epoch, "new cluster map");
            self.map_tx.send_replace(Arc::new(map));
        }
        Ok(self.map())
    }

    /// The newest map known.
    pub fn map(&self) -> Arc<ClusterMap> {
        self.map.borrow().clone()
    }

    /// A receiver that sees every new map.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterMap>> {
        self.map.clone()
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.cluster_name
    }

    /// The MGS connection.
    pub fn mgs(&self) -> &Peer {
        &self.mgs
    }

    /// A pooled connection to the OSS serving OST `index`.
    pub fn oss(&self, index: u32) -> Result<Arc<Peer>, Error> {
        let map = self.map();
        let ost = map
            .ost(index)
            .ok_or_else(|| Error::Unavailable(format!("OST {index} is not in the cluster map")))?;
        Ok(self.peer(Service::Oss, &ost.addr, CONNS_PER_OSS))
    }

    /// One call of `op` (with `payload`) to the OSS serving OST `ost`, under the newest
    /// map's epoch. While the OSS answers `OldEpoch` the map is refreshed and the call made
    /// again, at most [`OLD_EPOCH_ATTEMPTS`] calls in all; a refresh that fails ends it with
    /// that `OldEpoch`. Every other answer, error or not, is returned as it is.
    pub async fn oss_call(
        &self,
        ost: u32,
        op: OssOp,
        payload: Bytes,
    ) -> Result<(OssResponse, Bytes), Error> {
        let mut req = OssRequest {
            epoch: self.map().epoch,
            ost,
            op,
        };
        let mut attempt = 1;
        // With metrics off, nothing is timed or named.
        let counted = metrics::rpc_client().map(|m| (m, metrics::op_name(&req.op)));
        loop {
            let start = counted.map(|_| Instant::now());
            let r = self.oss(ost)?.call(&req, payload.clone()).await;
            if let (Some((m, op)), Some(start)) = (counted, start) {
                m.call(Service::Oss, op, start, r.is_ok());
            }
            match r {
                Err(Error::OldEpoch { caller, server }) if attempt < OLD_EPOCH_ATTEMPTS => {
                    tracing::debug!(ost, caller, server, "OSS has a newer epoch; refreshing map");
                    metrics::client_retry(Service::Oss);
                    if let Err(e) = self.refresh().await {
                        tracing::debug!("cluster map refresh failed: {e}");
                        return Err(Error::OldEpoch { caller, server });
                    }
                    req.epoch = self.map().epoch;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// Pooled connections to every MDS that is up, in map order.
    pub fn mds_peers(&self) -> Vec<Arc<Peer>> {
        let map = self.map();
        let up: Vec<_> = map
            .mds
            .iter()
            .filter(|m| m.state == NodeState::Up)
            .collect();
        // A client that sees no MDS up still tries the known ones: the map may be stale.
        let list = if up.is_empty() {
            map.mds.iter().collect()
        } else {
            up
        };
        list.into_iter()
            .map(|m| self.peer(Service::Mds, &m.addr, CONNS_PER_MDS))
            .collect()
    }

    /// A pooled connection to `addr` for `service`.
    pub fn peer(&self, service: Service, addr: &str, conns: usize) -> Arc<Peer> {
        lock(&self.peers)
            .entry((service, addr.to_string()))
            .or_insert_with(|| {
                Arc::new(Peer::new(
                    addr,
                    service,
                    &self.cluster_name,
                    &self.client_name,
                    &self.key,
                    conns,
                ))
            })
            .clone()
    }
}

/// One `GetMap` call.
pub async fn fetch_map(mgs: &Peer) -> Result<ClusterMap, Error> {
    match mgs
        .call_within(&MgsRequest::GetMap, Bytes::new(), MGS_CALL_TIMEOUT)
        .await?
        .0
    {
        MgsResponse::Map(m) => Ok(m),
        other => Err(Error::Protocol(format!("GetMap answered {other:?}"))),
    }
}

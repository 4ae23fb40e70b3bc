//! The MGS service: the [`Handler`] for [`MgsRequest`] and the monitor that marks silent
//! nodes down.
//!
//! Durability rule: an epoch is in the metadata store, durably, before any client can see it.
//! Every change that moves the epoch is applied to a copy of the registry, the copy is saved
//! (one read-modify-write transaction, then a group commit), and only then does it replace the
//! live registry, all under one lock. The save may move the epoch further than the change did
//! when another MGS over the same store saved a later epoch (see `persist::save_registry`).
//! Heartbeats never move the epoch, so they update the live registry in place and cost no
//! write: liveness (the time of each node's last beat) is kept in memory only.
//!
//! A registration offering another disk than the one bound to the OST index is answered
//! `WrongDisk` and logged once per index and disk (the OSS retries every beat). `ReplaceOst`
//! (an administrator, `rustre ost replace`) drops a binding; like every other call it comes
//! over a connection that proved it holds the cluster secret, and, when this MGS holds an
//! admin secret, one that proved that too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::mgs::{
    wrong_disk_message, LayoutDefaults, MgsRequest, MgsResponse, OstUuid,
};
use rustre_proto::msg::Capacity;
use rustre_proto::rpc::server::{Caller, Handler, Reply};
use rustre_proto::Error;
use tokio::sync::{watch, Mutex};
use tokio::time::{Instant, MissedTickBehavior};

use super::persist;
use super::registry::{Registered, Registry};
use crate::meta::Kv;
use rustre_proto::sync::lock;

/// How often the monitor looks for nodes that stopped beating; a node is marked down between
/// `NODE_DOWN_AFTER_MS` and that plus this after its last beat.
pub const MONITOR_INTERVAL: Duration = Duration::from_millis(250);

/// The MGS state shared by every connection.
pub(crate) struct Mgs {
    cluster: String,
    defaults: LayoutDefaults,
    registry: Mutex<Registry>,
    /// The store the registry is saved in. Taken (under the registry lock) once `run` is
    /// returning: no change is saved after that, and the store is closed even while
    /// connections still hold the service, so a new MGS can open an embedded store at once.
    kv: std::sync::Mutex<Option<Kv>>,
    /// The disk last refused for each OST index, so a refusal repeated every beat is logged
    /// once (at most one entry per index).
    refused_disks: std::sync::Mutex<HashMap<u32, OstUuid>>,
    /// This MGS holds an admin secret: `ReplaceOst` needs a connection that proved it.
    admin_required: bool,
}

impl Mgs {
    pub(crate) fn new(
        cluster: String,
        defaults: LayoutDefaults,
        kv: Kv,
        registry: Registry,
    ) -> Mgs {
        Mgs {
            cluster,
            defaults,
            registry: Mutex::new(registry),
            kv: std::sync::Mutex::new(Some(kv)),
            refused_disks: std::sync::Mutex::new(HashMap::new()),
            admin_required: false,
        }
    }

    /// This MGS with administrators' calls (`ReplaceOst`) refused to connections that did
    /// not prove the admin secret, when `required` (the MGS holds one).
    pub(crate) fn requiring_admin(mut self, required: bool) -> Mgs {
        self.admin_required = required;
        self
    }

    /// The store, unless the MGS is stopping.
    fn kv(&self) -> Result<Kv, Error> {
        lock(&self.kv)
            .clone()
            .ok_or_else(|| Error::Unavailable("the MGS is shutting down".into()))
    }

    /// Stops saving: waits for a change being saved, then refuses later ones and closes the
    /// store.
    pub(crate) async fn stop(&self) {
        let _reg = self.registry.lock().await;
        let kv = lock(&self.kv).take();
        drop(kv);
    }

    /// Saves `reg` (on a blocking thread) and waits until it is durable; returns the epoch it
    /// was saved with (at least `reg.epoch()`).
    async fn save(&self, reg: &Registry) -> Result<u64, Error> {
        let kv = self.kv()?;
        let file = reg.to_file(&self.cluster);
        let store = kv.clone();
        let epoch = rustre_proto::blocking::unblock(move || persist::save_registry(&store, &file))
            .await
            .map_err(|e| Error::Io(format!("saving the registry: {e}")))??;
        kv.durable().await?;
        Ok(epoch)
    }

    /// Saves the live registry as it is (at start-up) and returns its epoch.
    pub(crate) async fn save_live(&self) -> Result<u64, Error> {
        let mut live = self.registry.lock().await;
        let epoch = self.save(&live).await?;
        live.advance_epoch(epoch);
        Ok(live.epoch())
    }

    /// Applies `change` to a copy of the registry; when the epoch moved, saves the copy before
    /// installing it. A failed save leaves the live registry as it was.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut Registry) -> Result<T, Error>,
    ) -> Result<(T, u64), Error> {
        let mut live = self.registry.lock().await;
        // Refuse at once when stopping, before changing anything.
        self.kv()?;
        let mut next = live.clone();
        let out = change(&mut next)?;
        if next.epoch() != live.epoch() {
            match self.save(&next).await {
                Ok(epoch) => next.advance_epoch(epoch),
                Err(e) => {
                    tracing::error!("cannot save the MGS registry, change refused: {e}");
                    return Err(e);
                }
            }
        }
        *live = next;
        Ok((out, live.epoch()))
    }

    async fn handle_register_ost(
        &self,
        index: u32,
        addr: String,
        capacity: Capacity,
        disk: OstUuid,
    ) -> Result<MgsResponse, Error> {
        let now = Instant::now();
        let result = self
            .change(|r| r.register_ost(index, &addr, disk, capacity, now))
            .await;
        match result {
            Ok((Ok(how), epoch)) => {
                lock(&self.refused_disks).remove(&index);
                let node = format!("OST {index} at {addr} (disk {disk})");
                log_registered(&node, &how, epoch);
                Ok(MgsResponse::Ok { epoch })
            }
            Ok((Err(wrong), _)) => {
                let first = lock(&self.refused_disks).insert(index, disk) != Some(disk);
                if first {
                    let msg = wrong_disk_message(index, wrong.bound, disk);
                    tracing::warn!(index, %addr, "OST registration refused: {msg}");
                }
                Ok(MgsResponse::WrongDisk { bound: wrong.bound })
            }
            Err(e) => {
                tracing::warn!(index, %addr, "OST registration refused: {e}");
                Err(e)
            }
        }
    }

    async fn handle_replace_ost(&self, index: u32) -> Result<MgsResponse, Error> {
        match self.change(|r| r.replace_ost(index)).await {
            Ok((Some(old), epoch)) => {
                lock(&self.refused_disks).remove(&index);
                tracing::warn!(
                    index,
                    epoch,
                    "OST {index}: disk {old} replaced by an administrator; the next \
                     registration binds the disk it offers"
                );
                Ok(MgsResponse::Ok { epoch })
            }
            Ok((None, epoch)) => {
                tracing::info!(index, "OST {index}: no disk bound, nothing to replace");
                Ok(MgsResponse::Ok { epoch })
            }
            Err(e) => {
                tracing::warn!(index, "disk replacement refused: {e}");
                Err(e)
            }
        }
    }

    async fn handle_register_mds(&self, addr: String) -> Result<MgsResponse, Error> {
        let now = Instant::now();
        let result = self.change(|r| r.register_mds(&addr, now)).await;
        match result {
            Ok((how, epoch)) => {
                log_registered(&format!("MDS at {addr}"), &how, epoch);
                Ok(MgsResponse::Ok { epoch })
            }
            Err(e) => {
                tracing::warn!(%addr, "MDS registration refused: {e}");
                Err(e)
            }
        }
    }

    async fn handle_ost_heartbeat(&self, index: u32, capacity: Capacity) -> MgsResponse {
        let mut reg = self.registry.lock().await;
        if reg.ost_heartbeat(index, capacity, Instant::now()) {
            MgsResponse::Ok { epoch: reg.epoch() }
        } else {
            tracing::debug!(index, "heartbeat of an OST that is not up: must register");
            MgsResponse::Unknown
        }
    }

    async fn handle_mds_heartbeat(&self, addr: &str) -> MgsResponse {
        let mut reg = self.registry.lock().await;
        if reg.mds_heartbeat(addr, Instant::now()) {
            MgsResponse::Ok { epoch: reg.epoch() }
        } else {
            tracing::debug!(%addr, "heartbeat of an MDS that is not up: must register");
            MgsResponse::Unknown
        }
    }

    async fn handle_get_map(&self) -> MgsResponse {
        let reg = self.registry.lock().await;
        MgsResponse::Map(reg.map(&self.cluster, self.defaults))
    }

    /// One pass of the monitor: marks silent nodes down (one new epoch for all of them).
    pub(crate) async fn sweep(&self) {
        let now = Instant::now();
        if !self.registry.lock().await.sweep_due(now) {
            return;
        }
        match self.change(|r| Ok(r.sweep(now))).await {
            Ok((down, epoch)) => {
                for node in down {
                    tracing::warn!(epoch, "{node} missed its heartbeats: marked down");
                }
            }
            // Retried on the next pass; the nodes stay up in the map until it succeeds.
            Err(e) => tracing::error!("cannot mark silent nodes down: {e}"),
        }
    }
}

fn log_registered(node: &str, how: &Registered, epoch: u64) {
    match how {
        Registered::New => tracing::info!(epoch, "{node} registered"),
        Registered::Returned => tracing::info!(epoch, "{node} is back up"),
        Registered::TookOver { from } => {
            tracing::info!(epoch, "{node} took over from {from}, which was down");
        }
        Registered::AlreadyUp => tracing::debug!(epoch, "{node} registered again while up"),
    }
}

impl Handler for Mgs {
    type Request = MgsRequest;
    type Response = MgsResponse;
    const SERVICE: Service = Service::Mgs;

    async fn handle(
        self: Arc<Self>,
        req: MgsRequest,
        payload: Bytes,
        caller: Caller,
    ) -> Reply<MgsResponse> {
        let Some(m) = crate::metrics::get() else {
            return self.answer(req, payload, caller).await;
        };
        let (start, op) = (std::time::Instant::now(), crate::metrics::op_name(&req));
        let reply = self.answer(req, payload, caller).await;
        m.request(Self::SERVICE, op, start, reply.result.is_ok());
        reply
    }
}

impl Mgs {
    /// Answers one request (what [`Handler::handle`] does, without the metrics).
    async fn answer(
        self: Arc<Self>,
        req: MgsRequest,
        payload: Bytes,
        caller: Caller,
    ) -> Reply<MgsResponse> {
        if !payload.is_empty() {
            return Reply::plain(Err(Error::Invalid("MGS calls carry no payload".into())));
        }
        Reply::plain(match req {
            MgsRequest::RegisterOst {
                index,
                addr,
                capacity,
                disk,
            } => self.handle_register_ost(index, addr, capacity, disk).await,
            MgsRequest::RegisterMds { addr } => self.handle_register_mds(addr).await,
            MgsRequest::OstHeartbeat { index, capacity } => {
                Ok(self.handle_ost_heartbeat(index, capacity).await)
            }
            MgsRequest::MdsHeartbeat { addr } => Ok(self.handle_mds_heartbeat(&addr).await),
            MgsRequest::GetMap => Ok(self.handle_get_map().await),
            MgsRequest::ReplaceOst { .. } if self.admin_required && !caller.admin => {
                Err(Error::Denied(
                    "rustre ost replace needs the cluster's admin credential, and this \
                     connection did not prove it (run it with --admin-secret-file)"
                        .into(),
                ))
            }
            MgsRequest::ReplaceOst { index } => self.handle_replace_ost(index).await,
        })
    }
}

/// Runs [`Mgs::sweep`] every [`MONITOR_INTERVAL`] until `shutdown` changes.
pub(crate) async fn monitor(mgs: Arc<Mgs>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MONITOR_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => mgs.sweep().await,
            _ = shutdown.changed() => break,
        }
    }
}

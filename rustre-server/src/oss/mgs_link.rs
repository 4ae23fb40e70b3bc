//! The OSS side of the MGS protocol: register every OST, then send each one's heartbeat
//! (with fresh capacity) every `HEARTBEAT_INTERVAL_MS`. When the MGS answers `Unknown` (it
//! restarted, or marked this node down), every OST registers again. When the MGS cannot be
//! reached the OSS keeps serving and retries on the next beat, logging once per outage.
//!
//! Every answered registration and heartbeat goes into the OST's [`OstLease`] (epoch and
//! lease, see [`super::fence`]); an `Unknown` answer or a refused heartbeat takes the OST's
//! registration away at once, so it changes no data until it has registered again.
//!
//! A registration carries the UUID of the OST's disk ([`super::identity`]). The first one
//! the MGS accepts is put on record in the identity file; one the MGS answers `WrongDisk`
//! (the index is bound to another disk) is logged once, with what to do, and holds the OST:
//! it serves nothing until a registration is accepted, which happens by itself on a later
//! beat once an administrator ran `rustre ost replace INDEX`.

use crate::space::SpaceGuard;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::frame::Service;
use rustre_proto::msg::mgs::{wrong_disk_message, MgsRequest, MgsResponse, HEARTBEAT_INTERVAL_MS};
use rustre_proto::msg::Capacity;
use rustre_proto::rpc::client::Peer;
use rustre_proto::Error;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::fence::OstLease;
use super::identity::OstDisk;
use super::store::ObjectStore;

/// How long one call to the MGS may take before the beat counts as failed; shorter than
/// the MGS's down-marking delay, so a hung MGS does not stall the beats of the other OSTs.
/// A call that times out retires its connection (see `Connection::call_within`).
pub use rustre_proto::msg::mgs::MGS_CALL_TIMEOUT;

/// Who this OSS is to the MGS.
pub(crate) struct LinkConfig {
    pub mgs_addr: String,
    pub advertise_addr: String,
    pub cluster: String,
    pub key: ClusterKey,
}

/// One OST the link registers and heartbeats.
pub(crate) struct LinkedOst {
    pub index: u32,
    pub store: Arc<dyn ObjectStore>,
    pub lease: Arc<OstLease>,
    pub disk: Arc<OstDisk>,
    /// The free space its disk keeps, not reported as available ([`crate::space`]).
    pub reserve: Option<Arc<SpaceGuard>>,
}

struct Ost {
    index: u32,
    store: Arc<dyn ObjectStore>,
    lease: Arc<OstLease>,
    disk: Arc<OstDisk>,
    reserve: Option<Arc<SpaceGuard>>,
    registered: bool,
    /// Last refusal logged for this OST, so a persistent one is logged once.
    last_refusal: Option<String>,
}

/// Why a round of beats stopped early.
enum Stop {
    /// The MGS could not be reached or did not answer in time.
    Unreachable(Error),
}

struct Link {
    cfg: LinkConfig,
    peer: Peer,
    osts: Vec<Ost>,
    /// The error that started the current outage, if any.
    outage: Option<String>,
}

/// Registers and heartbeats `osts` until `shutdown` changes.
pub(crate) async fn run(
    cfg: LinkConfig,
    osts: Vec<LinkedOst>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = format!("oss@{}", cfg.advertise_addr);
    let peer = Peer::new(
        &cfg.mgs_addr,
        Service::Mgs,
        &cfg.cluster,
        &client,
        &cfg.key,
        1,
    );
    let osts = osts
        .into_iter()
        .map(|o| Ost {
            index: o.index,
            store: o.store,
            lease: o.lease,
            disk: o.disk,
            reserve: o.reserve,
            registered: false,
            last_refusal: None,
        })
        .collect();
    let mut link = Link {
        cfg,
        peer,
        osts,
        outage: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
        }
        match link.beat_all().await {
            Ok(()) => {
                if let Some(cause) = link.outage.take() {
                    tracing::info!(mgs = %link.cfg.mgs_addr, "MGS reachable again (was: {cause})");
                }
            }
            Err(Stop::Unreachable(e)) => {
                if link.outage.is_none() {
                    tracing::warn!(
                        mgs = %link.cfg.mgs_addr,
                        "MGS unreachable, still serving; retrying every {HEARTBEAT_INTERVAL_MS} ms: {e}"
                    );
                    link.outage = Some(e.to_string());
                }
            }
        }
    }
}

impl Link {
    /// One round: heartbeats for registered OSTs, then registration of the others.
    async fn beat_all(&mut self) -> Result<(), Stop> {
        for i in 0..self.osts.len() {
            if !self.osts[i].registered {
                continue;
            }
            let req = MgsRequest::OstHeartbeat {
                index: self.osts[i].index,
                capacity: capacity(&self.osts[i]).await,
            };
            let sent = Instant::now();
            match self.call(&req).await? {
                Ok(MgsResponse::Ok { .. }) => self.osts[i].lease.renewed(sent),
                Ok(MgsResponse::Unknown) => {
                    tracing::info!(
                        index = self.osts[i].index,
                        "the MGS does not count this OST as up; registering every OST again"
                    );
                    for o in &mut self.osts {
                        o.registered = false;
                        o.lease.lost();
                    }
                }
                Ok(other) => {
                    tracing::warn!("MGS answered a heartbeat with {other:?}; registering again");
                    self.osts[i].registered = false;
                    self.osts[i].lease.lost();
                }
                Err(e) => {
                    tracing::warn!(index = self.osts[i].index, "heartbeat refused: {e}");
                    self.osts[i].registered = false;
                    self.osts[i].lease.lost();
                }
            }
        }
        for i in 0..self.osts.len() {
            if !self.osts[i].registered {
                self.register(i).await?;
            }
        }
        Ok(())
    }

    async fn register(&mut self, i: usize) -> Result<(), Stop> {
        let req = MgsRequest::RegisterOst {
            index: self.osts[i].index,
            addr: self.cfg.advertise_addr.clone(),
            capacity: capacity(&self.osts[i]).await,
            disk: self.osts[i].disk.uuid(),
        };
        let lease = self.osts[i].lease.clone();
        lease.set_registering(true);
        let sent = Instant::now();
        let result = self.call(&req).await;
        match &result {
            Ok(Ok(MgsResponse::Ok { epoch })) => lease.registered(*epoch, sent),
            Ok(Ok(MgsResponse::WrongDisk { .. })) => lease.hold(),
            _ => {}
        }
        // Wakes the changes that waited for this registration, registered or not.
        lease.set_registering(false);
        let result = result?;
        let ost = &mut self.osts[i];
        match result {
            Ok(MgsResponse::Ok { epoch }) => {
                tracing::info!(
                    index = ost.index,
                    epoch,
                    disk = %ost.disk.uuid(),
                    "OST registered with the MGS"
                );
                ost.registered = true;
                ost.last_refusal = None;
                if !ost.disk.accepted() {
                    let disk = ost.disk.clone();
                    match rustre_proto::blocking::unblock(move || disk.set_accepted()).await {
                        Ok(Ok(())) => {}
                        // Tried again when the OST next registers; until then a restart
                        // would wait for the MGS before serving reads.
                        Ok(Err(e)) => {
                            tracing::warn!(
                                index = ost.index,
                                "cannot record the MGS's acceptance of the disk: {e}"
                            );
                        }
                        Err(e) => tracing::warn!(index = ost.index, "identity task failed: {e}"),
                    }
                }
            }
            Ok(MgsResponse::WrongDisk { bound }) => {
                let msg = wrong_disk_message(ost.index, bound, ost.disk.uuid());
                if ost.last_refusal.as_deref() != Some(msg.as_str()) {
                    tracing::error!(index = ost.index, "MGS refused to register the OST: {msg}");
                    ost.last_refusal = Some(msg);
                }
            }
            Ok(other) => {
                tracing::warn!(
                    index = ost.index,
                    "MGS answered a registration with {other:?}"
                );
            }
            Err(e) => {
                // An address conflict, for instance: retried every beat, logged once.
                let msg = e.to_string();
                if ost.last_refusal.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(index = ost.index, "MGS refused to register the OST: {msg}");
                    ost.last_refusal = Some(msg);
                }
            }
        }
        Ok(())
    }

    /// One call to the MGS. The outer error means the MGS was not reached (stop this round);
    /// the inner one is the MGS's own answer.
    async fn call(&self, req: &MgsRequest) -> Result<Result<MgsResponse, Error>, Stop> {
        let call = self
            .peer
            .call_within::<_, MgsResponse>(req, Bytes::new(), MGS_CALL_TIMEOUT);
        match call.await {
            Err(e) if e.is_transient() || matches!(e, Error::Protocol(_)) => {
                Err(Stop::Unreachable(e))
            }
            Err(e) => Ok(Err(e)),
            Ok((resp, _)) => Ok(Ok(resp)),
        }
    }
}

/// The OST's capacity now, its reserve not available; zeros (so no new objects go there)
/// when it cannot be read.
async fn capacity(ost: &Ost) -> Capacity {
    let store = ost.store.clone();
    match rustre_proto::blocking::unblock(move || store.capacity()).await {
        Ok(Ok(c)) => match &ost.reserve {
            Some(reserve) => reserve.without_reserve(c),
            None => c,
        },
        Ok(Err(e)) => {
            tracing::warn!(index = ost.index, "cannot read the OST's capacity: {e}");
            Capacity::default()
        }
        Err(e) => {
            tracing::warn!(index = ost.index, "capacity task failed: {e}");
            Capacity::default()
        }
    }
}

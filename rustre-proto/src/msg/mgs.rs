//! MGS messages: registration, heartbeats and the cluster map.

use serde::{Deserialize, Serialize};

use super::Capacity;

/// Milliseconds between heartbeats of every node.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1000;
/// A node that has not beaten for this long is marked down (two missed beats).
pub const NODE_DOWN_AFTER_MS: u64 = 2500;
/// How long a heartbeat, registration or map fetch waits for the MGS's answer; shorter than
/// the down-marking delay, so a dead connection is replaced before the node counts as down.
pub const MGS_CALL_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(2 * HEARTBEAT_INTERVAL_MS);

/// Whether a node is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    Up,
    Down,
}

/// One OST in the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OstInfo {
    pub index: u32,
    /// Address of the OSS serving it.
    pub addr: String,
    pub state: NodeState,
    pub capacity: Capacity,
}

/// One MDS in the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdsInfo {
    pub addr: String,
    pub state: NodeState,
}

/// Layout defaults for new files with no directory default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutDefaults {
    pub stripe_size: u32,
    pub stripe_count: u32,
    pub replicas: u32,
}

impl Default for LayoutDefaults {
    fn default() -> Self {
        LayoutDefaults {
            stripe_size: 1 << 20,
            stripe_count: 1,
            replicas: 1,
        }
    }
}

/// The versioned cluster map every client and server follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Bumped on every change of membership or state.
    pub epoch: u64,
    pub cluster_name: String,
    pub osts: Vec<OstInfo>,
    pub mds: Vec<MdsInfo>,
    pub defaults: LayoutDefaults,
}

impl ClusterMap {
    /// The OST with this index.
    pub fn ost(&self, index: u32) -> Option<&OstInfo> {
        self.osts.iter().find(|o| o.index == index)
    }

    /// MDS instances that are up.
    pub fn mds_up(&self) -> impl Iterator<Item = &MdsInfo> {
        self.mds.iter().filter(|m| m.state == NodeState::Up)
    }
}

/// Calls to the MGS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MgsRequest {
    /// An OSS announces one OST it serves (also after a restart or being marked down).
    RegisterOst {
        index: u32,
        addr: String,
        capacity: Capacity,
    },
    /// An MDS announces itself.
    RegisterMds { addr: String },
    /// Periodic liveness of an OST with fresh capacity.
    OstHeartbeat { index: u32, capacity: Capacity },
    /// Periodic liveness of an MDS.
    MdsHeartbeat { addr: String },
    /// The cluster map.
    GetMap,
}

/// Answers of the MGS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MgsResponse {
    /// Registration or heartbeat accepted; the current epoch.
    Ok {
        epoch: u64,
    },
    /// The sender is not (or no longer) registered and must register again.
    Unknown,
    Map(ClusterMap),
}

//! MGS messages: registration, heartbeats, the cluster map, and the disk identity
//! ([`OstUuid`]) that binds an OST index to the disk that holds its objects.

use serde::{Deserialize, Serialize};

use super::Capacity;
use crate::Error;

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

/// The identity of the disk (the directory) holding an OST's objects: 128 random bits given
/// once, when the directory is formatted (its first use), and kept in its identity file. The
/// MGS binds each OST index to the disk that first registered it, so an empty disk put in
/// place of a lost one (wiped, or replaced) cannot silently serve holes where data was.
/// Kept as 16 big-endian bytes, so that its encoding has one length whatever its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OstUuid(pub [u8; 16]);

impl OstUuid {
    /// A new random UUID (version 4, RFC 9562).
    pub fn random() -> Result<OstUuid, Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| Error::Io(format!("random source: {e}")))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(OstUuid(b))
    }

    /// The UUID whose 128 bits are `n`.
    pub const fn from_u128(n: u128) -> OstUuid {
        OstUuid(n.to_be_bytes())
    }

    /// The UUID's 128 bits.
    pub const fn as_u128(&self) -> u128 {
        u128::from_be_bytes(self.0)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase hex.
impl std::fmt::Display for OstUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = format!("{:032x}", self.as_u128());
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// What the MGS says, and an OSS logs, when OST `index` is bound to disk `bound` and an OSS
/// offers disk `offered` for it: what happened and what to do.
pub fn wrong_disk_message(index: u32, bound: OstUuid, offered: OstUuid) -> String {
    format!(
        "OST {index} is bound to disk {bound}, but this OSS offers disk {offered} (a wiped or \
         replaced disk?): refused, the OST serves nothing. If the disk was replaced on \
         purpose, run `rustre ost replace {index}` (its files' copies there are marked stale \
         and refilled from other copies; files with no other copy are listed as lost); this \
         OSS then registers the new disk by itself. Otherwise give this OSS the directory of \
         disk {bound}"
    )
}

/// Calls to the MGS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MgsRequest {
    /// An OSS announces one OST it serves (also after a restart or being marked down), and
    /// the disk holding it. Answered `Ok`, or `WrongDisk` when the index is bound to
    /// another disk.
    RegisterOst {
        index: u32,
        addr: String,
        capacity: Capacity,
        disk: OstUuid,
    },
    /// An MDS announces itself.
    RegisterMds { addr: String },
    /// Periodic liveness of an OST with fresh capacity.
    OstHeartbeat { index: u32, capacity: Capacity },
    /// Periodic liveness of an MDS.
    MdsHeartbeat { addr: String },
    /// The cluster map.
    GetMap,
    /// An administrator replaced the disk of OST `index` (`rustre ost replace`, once the
    /// MDS marked every copy there stale): forget the disk bound to the index, so that the
    /// next registration binds the disk it offers. Refused while the OST is up. `Ok`.
    ReplaceOst { index: u32 },
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
    /// A registration refused: the OST index is bound to disk `bound`, not to the one
    /// offered ([`wrong_disk_message`] says what to do).
    WrongDisk {
        bound: OstUuid,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_random_version_4_and_print_as_hex() {
        let a = OstUuid::random().unwrap();
        let b = OstUuid::random().unwrap();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 36, "{s}");
        assert_eq!(s.as_bytes()[14], b'4', "version 4: {s}");
        assert!(matches!(s.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{s}");
        assert_eq!(
            OstUuid::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677).to_string(),
            "01234567-89ab-cdef-0011-223344556677"
        );
        // One encoded length whatever the value.
        let zero = crate::codec::encode(&OstUuid::from_u128(0)).unwrap();
        assert_eq!(crate::codec::encode(&a).unwrap().len(), zero.len());
        let m = wrong_disk_message(2, a, b);
        assert!(m.contains(&format!("OST 2 is bound to disk {a}")), "{m}");
        assert!(m.contains("rustre ost replace 2"), "{m}");
    }
}

//! How an MDS runs: its configuration and the limits of its engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Inode numbers taken from the shared counter at a time.
pub const INO_BATCH: u64 = 1024;
/// Longest time a committed change waits for a sync when no client asks for one.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Default lease of a client session.
pub const SESSION_LEASE_MS: u64 = 30_000;
/// Shortest and longest session lease an operator may set (`rustre mds --session-lease`),
/// in seconds: a client renews every third of it, and a client silent that long is evicted.
pub const MIN_SESSION_LEASE_SECS: u64 = 2;
pub const MAX_SESSION_LEASE_SECS: u64 = 3600;
/// Striped in-process locks on directories, so concurrent creates in one directory queue up
/// here instead of conflicting in the KV.
pub const DIR_LOCK_STRIPES: usize = 256;
/// Longest a create waits for enough OSTs to come up for the new file's copies (an MGS
/// restart leaves the map without OSTs until they register again, about a second).
pub const PLACEMENT_WAIT: Duration = Duration::from_secs(10);
/// Pause between two tries of such a create (the map is re-read in between).
pub const PLACEMENT_RETRY: Duration = Duration::from_millis(250);

/// Most bytes of a file an MDS keeps in its store unless told otherwise (data on the MDS,
/// [`super::inline`]).
pub const DEFAULT_INLINE_MAX: u32 = 64 << 10;

/// How an MDS runs.
#[derive(Debug, Clone)]
pub struct MdsConfig {
    /// The MGS to register with.
    pub mgs_addr: String,
    /// The address clients reach this MDS at.
    pub advertise_addr: String,
    pub cluster: String,
    /// The cluster secret: peers must prove they hold it (and the MGS and OSS too).
    pub key: rustre_proto::auth::ClusterKey,
    /// Acknowledge mutations only once they are on disk (group commit). When false, a
    /// process crash loses nothing but a power loss may lose the last moments.
    pub durable: bool,
    pub session_lease_ms: u64,
    /// Root squash and its exemptions (off by default). The admin secret, if any, is in
    /// `key` ([`rustre_proto::auth::ClusterKey::with_admin`]).
    pub access: super::access::AccessPolicy,
    /// Most bytes of a file kept in the store at its close (data on the MDS,
    /// [`super::inline`]); 0: none. At most `INLINE_MAX_BYTES`.
    pub inline_max: u32,
    /// Grant directory capabilities ([`super::dir_caps`]): set only for an MDS alone over
    /// its store (it is ignored over a store others may share, such as FoundationDB).
    pub dir_caps: bool,
}

/// Where the embedded store lives under an MDS data directory.
pub fn embedded_store_dir(data: &Path) -> PathBuf {
    data.join("meta")
}

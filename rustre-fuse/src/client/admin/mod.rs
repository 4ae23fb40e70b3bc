//! The administrator's API: checks and repairs that look past the POSIX view, at objects
//! and copies (docs/replication.md, "Resync and repair"). The `rustre` binary prints what
//! these return; the rules live here.
//!
//! - [`fsck`](Client::fsck): the metadata against itself (link counts, dangling entries,
//!   unreachable inodes, the stale index) and against the objects on every OST that is up,
//!   as a [`FsckReport`] of [`Finding`]s, each repaired by [`Client::repair_finding`].
//! - [`scrub`](Client::scrub): every block of every object of one OST against its checksums;
//!   a bad copy is marked stale with [`Client::mark_copy_stale`] and resync rewrites it.
//! - [`evacuate`](Client::evacuate): moves every copy off an OST gone for good.
//! - [`migrate_file`](Client::migrate_file): moves a file to a new layout (stripes, copies,
//!   OSTs) online, while it is read and written.
//! - [`rebalance`](Client::rebalance): moves objects from the fullest OSTs to the emptiest
//!   until every OST is within a threshold of the mean usage (after OSTs were added).
//! - [`replace_ost`](Client::replace_ost): accepts a new disk for an OST whose disk was
//!   wiped or replaced, once every copy there is marked stale.
//! - [`cluster_map`]: the cluster's state from the MGS alone (no session, no MDS needed).
//! - [`Progress`]: how far fsck, scrub and evacuate have got, told as they go.
//! - [`walk_tree`](Client::walk_tree): every entry under a path with its attributes, in
//!   pages of a directory's entries at the MDS (no mount): `rustre find` ([`FindFilter`])
//!   and `rustre du` ([`Client::du`]).
//!
//! Every call needs root's powers on the cluster (the client sends root credentials). fsck
//! is safe on a live cluster (it never truncates what a writer may not have reported yet, and
//! the MDS re-checks every metadata repair), but exact only on a quiet one: write-back data
//! not yet on the OSTs can look missing.

mod delta;
mod du;
mod evacuate;
mod find;
mod finding;
mod fsck;
mod meta_check;
mod migrate;
mod progress;
mod rebalance;
mod replace;
mod scrub;
mod stuck;
mod tree;
mod walk;

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::cluster::fetch_map;
use rustre_proto::frame::Service;
use rustre_proto::msg::mgs::ClusterMap;
use rustre_proto::msg::oss::{OssOp, OssResponse};
use rustre_proto::rpc::client::Peer;
use rustre_proto::Error;

pub use du::{DuDir, DuReport};
pub use evacuate::EvacuateReport;
pub use find::{base_name, glob_match, parse_days, parse_kinds, parse_size, Cmp, FindFilter};
pub use finding::{Finding, Held, Repaired};
pub use fsck::{FsckReport, FSCK_GRACE};
pub(crate) use migrate::Migrations;
pub use migrate::{MigrateTarget, MIGRATE_ATTEMPTS, MIGRATE_PASSES};
pub use progress::{NoProgress, Progress};
pub use rebalance::{
    mean_fraction, ost_usage, spread, OstUsage, RebalanceOptions, RebalanceReport,
    REBALANCE_THRESHOLD_DEFAULT,
};
pub use replace::{LostFile, ReplaceReport};
pub use scrub::{ScrubReport, ScrubbedObject};
pub use tree::{join_path, TreeVisitor, Visit, WALK_PAGES_IN_FLIGHT, WALK_PAGE_ENTRIES};

use super::Client;

/// The cluster map, asked of the MGS at `mgs` (cluster `cluster`, secret `key`) directly:
/// what `rustre status` shows, which works while every MDS is down.
pub async fn cluster_map(mgs: &str, cluster: &str, key: &ClusterKey) -> Result<ClusterMap, Error> {
    let peer = Peer::new(mgs, Service::Mgs, cluster, "rustre-status", key, 1);
    fetch_map(&peer).await
}

impl Client {
    /// One call to the OSS serving `ost` with no payload, its answer's payload dropped.
    async fn oss_answer(&self, ost: u32, op: OssOp) -> Result<OssResponse, Error> {
        Ok(self.cluster.oss_call(ost, op, Bytes::new()).await?.0)
    }
}

/// An OSS answer of the wrong kind.
fn unexpected(r: &OssResponse) -> Error {
    Error::Protocol(format!("unexpected OSS answer {r:?}"))
}

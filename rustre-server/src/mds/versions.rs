//! Telling the OSTs of a file's new layout version (`OssOp::RaiseVersion`).
//!
//! When copies of a file are marked stale (a writer's `MarkStale`, or a writer's session
//! that ended with the file open, see [`super::replica::suspect_copies`]), its live copies
//! learn the new version at once. From then on they refuse writes, repairs and truncates
//! that carry an older one, so a writer still holding the old layout fetches the new one
//! before it writes again, rather than going on writing to copies it believes live
//! (docs/replication.md, "Layout versions at the OSTs"). Best effort: an OST that cannot be
//! reached within [`ANNOUNCE_TIMEOUT`] learns the version from the next change that carries
//! it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::cluster::Cluster;
use rustre_proto::msg::oss::{ObjectId, OssOp};
use rustre_proto::msg::{Ino, Layout};
use tokio::task::JoinSet;

/// How long one OST is given to take a new version.
pub(super) const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `layout.version` to every live copy of every stripe of `ino`, all at once; returns
/// how many took it.
pub(super) async fn announce(cluster: &Arc<Cluster>, ino: Ino, layout: &Layout) -> usize {
    let mut calls = JoinSet::new();
    for stripe in 0..layout.stripe_count() {
        for (_, ost) in layout.live_copies(stripe) {
            let op = OssOp::RaiseVersion {
                object: ObjectId { ino, stripe },
                version: layout.version,
            };
            let cluster = cluster.clone();
            calls.spawn(async move {
                let call = cluster.oss_call(ost, op, Bytes::new());
                match tokio::time::timeout(ANNOUNCE_TIMEOUT, call).await {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(ino, stripe, ost, "new layout version not taken: {e}");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(ino, stripe, ost, "new layout version: no answer in time");
                        false
                    }
                }
            });
        }
    }
    let mut taken = 0;
    while let Some(done) = calls.join_next().await {
        taken += usize::from(done.unwrap_or(false));
    }
    taken
}

//! Waiting out a layout change in progress. An OST answers `Stale` to a read or write
//! carrying an older layout version than the object's; the client fetches the layout again.
//! Usually the MDS has the newer layout already (copies marked stale, moved, resynced). While
//! a migration copies its last changes, though, the old objects are fenced one version
//! *ahead* of the layout the MDS hands out (docs/migrate.md): no newer layout exists yet, and
//! the caller waits, asking again with growing pauses, until the migration commits (or is
//! given up, which lifts the fence) — at most [`FENCE_WAIT_LIMIT`].

use std::time::Duration;

use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::Error;
use tokio::time::Instant;

use super::Client;

/// Longest a read or write waits for a newer layout than the one an OST fenced off.
pub(super) const FENCE_WAIT_LIMIT: Duration = Duration::from_secs(60);
/// First pause before asking the MDS again; doubles up to [`FENCE_PAUSE_MAX`].
const FENCE_PAUSE_MIN: Duration = Duration::from_millis(10);
const FENCE_PAUSE_MAX: Duration = Duration::from_millis(500);

impl Client {
    /// The layout of `ino` to go on with after an OST refused `had` (`Stale`): the MDS's,
    /// once it is newer than `had`; waits for it until `deadline`.
    pub(super) async fn newer_layout(
        &self,
        ino: Ino,
        had: &Layout,
        deadline: Instant,
    ) -> Result<Layout, Error> {
        let mut pause = FENCE_PAUSE_MIN;
        loop {
            let fresh = self.getattr_from_mds(&Creds::root(), ino).await?;
            let Some(layout) = fresh.layout else {
                return Err(Error::Io(format!("inode {ino} lost its layout")));
            };
            if layout.version > had.version {
                return Ok(layout);
            }
            if Instant::now() + pause > deadline {
                return Err(Error::Io(format!(
                    "inode {ino}: its OSTs refuse layout version {} and no newer one came \
                     within {} s (a migration that neither commits nor gives up?)",
                    had.version,
                    FENCE_WAIT_LIMIT.as_secs()
                )));
            }
            tracing::debug!(ino, version = had.version, "layout fenced ahead: waiting");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(FENCE_PAUSE_MAX);
        }
    }
}

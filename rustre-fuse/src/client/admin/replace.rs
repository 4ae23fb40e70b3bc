//! `ost replace`: the disk of an OST was wiped or replaced, and the MGS refuses the new one
//! (docs/replication.md, "Disk identity"). In this order:
//!
//! 1. The OST must be down in the cluster map: an OST that is up is serving its disk, which
//!    is then evidently not lost (the MGS checks again in step 3).
//! 2. Every file with a copy on the OST gets it marked stale at the MDS (`MarkLost`): resync
//!    refills replicated copies from another copy; a stripe whose only up-to-date copy was
//!    there is left with none, reads and writes of it fail with EIO, and the file is listed
//!    as lost.
//! 3. Only then the MGS forgets the disk bound to the index (`ReplaceOst`), and the new
//!    disk's next registration (its OSS retries every second) binds it.
//!
//! The order matters: until step 3 the OSS holding the new disk is refused and serves
//! nothing, so no reader can get the new disk's holes for a copy whose stale mark is not in
//! yet. A walk that fails part-way leaves the binding as it was, and running the command
//! again is harmless (marks already made are kept).

use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::mgs::{MgsRequest, MgsResponse, NodeState};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::Error;

use crate::client::Client;

/// A file that lost data with the replaced disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostFile {
    /// One of its paths (from the root of the file system).
    pub path: String,
    pub ino: Ino,
}

/// What a disk replacement did.
#[derive(Debug, Clone, Default)]
pub struct ReplaceReport {
    /// Regular files walked.
    pub files: usize,
    /// Files with a copy on the OST.
    pub on_ost: usize,
    /// Files whose copies there are marked stale and have another copy: resync refills them
    /// once the new disk serves.
    pub refilled: usize,
    /// Files with a stripe whose only up-to-date copy was there: they read as EIO (remove
    /// them and restore them from a backup).
    pub lost: Vec<LostFile>,
    /// The map epoch in which the MGS let go of the old disk.
    pub epoch: u64,
}

impl Client {
    /// Accepts a new disk for OST `ost` after marking every copy there stale (see the
    /// module doc for the order). Fails, changing nothing at the MGS, while the OST is up
    /// or when a file cannot be marked.
    pub async fn replace_ost(&self, ost: u32) -> Result<ReplaceReport, Error> {
        let map = self.cluster.refresh().await?;
        match map.ost(ost) {
            None => {
                return Err(Error::Invalid(format!(
                    "OST {ost} is not in the cluster map: there is no disk to replace"
                )))
            }
            Some(o) if o.state == NodeState::Up => {
                return Err(Error::Invalid(format!(
                    "OST {ost} is up, served by {}: its disk is in use, not lost. Stop that \
                     OSS before replacing the disk",
                    o.addr
                )))
            }
            Some(_) => {}
        }
        let files = self.walk_named_files().await?;
        let mut report = ReplaceReport {
            files: files.len(),
            ..ReplaceReport::default()
        };
        for (ino, (path, a)) in files {
            if !a.layout.as_ref().is_some_and(|l| l.osts.contains(&ost)) {
                continue;
            }
            report.on_ost += 1;
            let attr = match self.mds(&Creds::root(), MdsOp::MarkLost { ino, ost }).await {
                Ok(MdsResponse::Attr(a)) => a,
                Ok(other) => {
                    return Err(Error::Protocol(format!("MarkLost answered {other:?}")));
                }
                // Removed while we walked.
                Err(Error::NotFound) => continue,
                Err(e) => {
                    return Err(Error::Io(format!(
                        "{path} (inode {ino}): its copies on OST {ost} could not be marked \
                         stale: {e}. The MGS still refuses the new disk; run the command \
                         again"
                    )))
                }
            };
            let Some(l) = attr.layout else { continue };
            if (0..l.stripe_count()).any(|s| l.is_lost(s)) {
                report.lost.push(LostFile { path, ino });
            } else if l.stale.iter().any(|s| l.osts[*s as usize] == ost) {
                report.refilled += 1;
            }
        }
        report.lost.sort_by(|a, b| a.path.cmp(&b.path));
        let req = MgsRequest::ReplaceOst { index: ost };
        let (resp, _) = self.cluster.mgs().call(&req, bytes::Bytes::new()).await?;
        match resp {
            MgsResponse::Ok { epoch } => report.epoch = epoch,
            other => return Err(Error::Protocol(format!("ReplaceOst answered {other:?}"))),
        }
        Ok(report)
    }
}

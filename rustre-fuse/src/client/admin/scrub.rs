//! `scrub`: every block of every object of one OST checked against its stored checksum on
//! the OSS; a copy with bad blocks is marked stale so resync rewrites it from a good copy.

use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse};
use rustre_proto::msg::Creds;
use rustre_proto::Error;

use super::{unexpected, Progress};
use crate::client::Client;

/// An object with blocks that fail their checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubbedObject {
    pub id: ObjectId,
    /// Indices of the bad blocks, in order.
    pub bad_blocks: Vec<u64>,
}

/// What a scrub of one OST saw.
#[derive(Debug, Clone, Default)]
pub struct ScrubReport {
    /// Objects checked.
    pub objects: usize,
    /// Those with bad blocks.
    pub bad: Vec<ScrubbedObject>,
}

impl Client {
    /// Checks every block of every object of OST `ost`, telling `progress` of each object.
    pub async fn scrub(&self, ost: u32, progress: &dyn Progress) -> Result<ScrubReport, Error> {
        let list = self
            .list_objects(ost)
            .await
            .map_err(|e| Error::Io(format!("OST {ost}: {e}")))?;
        let mut report = ScrubReport {
            objects: list.len(),
            bad: Vec::new(),
        };
        progress.phase("objects", list.len() as u64);
        for id in list.keys() {
            progress.advance(1);
            let bad_blocks = match self.oss_answer(ost, OssOp::Scrub { object: *id }).await {
                Ok(OssResponse::Scrubbed { bad_blocks }) => bad_blocks,
                Ok(r) => return Err(unexpected(&r)),
                Err(e) => {
                    return Err(Error::Io(format!(
                        "OST {ost}: object {}.{}: {e}",
                        id.ino, id.stripe
                    )))
                }
            };
            if !bad_blocks.is_empty() {
                report.bad.push(ScrubbedObject {
                    id: *id,
                    bad_blocks,
                });
            }
        }
        Ok(report)
    }

    /// Marks the copy of object `id` on `ost` stale in its file's layout.
    pub async fn mark_copy_stale(&self, ost: u32, id: ObjectId) -> Result<(), Error> {
        let a = self.getattr(&Creds::root(), id.ino).await?;
        let l = a
            .layout
            .ok_or_else(|| Error::Invalid("the inode has no layout".into()))?;
        let slots: Vec<u32> = l
            .copies(id.stripe)
            .iter()
            .filter(|(_, o)| *o == ost)
            .map(|(s, _)| *s as u32)
            .collect();
        if slots.is_empty() {
            return Err(Error::Invalid("the file has no copy on this OST".into()));
        }
        self.mark_stale(id.ino, slots, l.version).await.map(|_| ())
    }
}

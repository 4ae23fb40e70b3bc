//! lseek(2) `SEEK_DATA` and `SEEK_HOLE`: each stripe's object is asked (`OssOp::Seek`)
//! from the first of its bytes at or after the offset, and the answers are mapped back to
//! file offsets; the nearest wins. A byte past what its object holds (or of an object that
//! does not exist) is a hole, and so is the file's end.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse};
use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::Error;

use super::stripe::{file_offset, object_from};
use super::Client;

impl Client {
    /// lseek(2) `SEEK_DATA` (with `want_data`) or `SEEK_HOLE` from `offset`: `None` (ENXIO)
    /// at or past the end, or when no data follows `offset`. Writes this client holds are
    /// sent first, so the objects hold what the file holds.
    pub async fn seek_data_hole(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        offset: u64,
        want_data: bool,
    ) -> Result<Option<u64>, Error> {
        self.flush_writes(ino).await?;
        let a = self.getattr(creds, ino).await?;
        let size = a.size.max(self.files.size(ino));
        if offset >= size {
            return Ok(None);
        }
        if a.inline {
            // Its bytes are on the MDS: data all the way, as a file without holes.
            return Ok(Some(if want_data { offset } else { size }));
        }
        let Some(layout) = a.layout.or_else(|| self.files.layout(ino)) else {
            // No layout known (not a regular file): all data, as before.
            return Ok(Some(if want_data { offset } else { size }));
        };
        let stripes = (0..layout.stripe_count()).map(|stripe| {
            let layout = &layout;
            async move {
                let from = object_from(layout, stripe, offset);
                let found = self
                    .seek_object(ino, layout, stripe, from, want_data)
                    .await?;
                Ok::<_, Error>(match (found, want_data) {
                    (Some(at), _) => Some(file_offset(layout, stripe, at)),
                    (None, true) => None,
                    // Past the object's end: a hole from there.
                    (None, false) => Some(file_offset(layout, stripe, from)),
                })
            }
        });
        let nearest = try_join_all(stripes).await?.into_iter().flatten().min();
        Ok(if want_data {
            nearest.filter(|&at| at < size)
        } else {
            Some(nearest.unwrap_or(size).clamp(offset, size))
        })
    }

    /// `OssOp::Seek` on the first live copy of `stripe` that answers.
    async fn seek_object(
        &self,
        ino: Ino,
        layout: &Layout,
        stripe: u32,
        offset: u64,
        data: bool,
    ) -> Result<Option<u64>, Error> {
        let object = ObjectId { ino, stripe };
        let mut last = Error::Io(format!("inode {ino}: stripe {stripe} has no live copy"));
        for (_, ost) in layout.live_copies(stripe) {
            let op = OssOp::Seek {
                object,
                offset,
                data,
            };
            match self.cluster.oss_call(ost, op, Bytes::new()).await {
                Ok((OssResponse::Offset(at), _)) => return Ok(at),
                Ok((other, _)) => {
                    last = Error::Protocol(format!("unexpected OSS answer {other:?}"));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

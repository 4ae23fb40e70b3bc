//! Striped data I/O: a file range is split into per-object extents and every extent goes to
//! its OST at once. Data never passes through the MDS.

use bytes::{Bytes, BytesMut};
use futures::future::try_join_all;
use rustre_proto::frame::MAX_PAYLOAD_BYTES;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssRequest, OssResponse};
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;

use super::stripe::{extents, object_size};
use super::Client;

impl Client {
    async fn oss_call(
        &self,
        ost: u32,
        op: OssOp,
        payload: Bytes,
    ) -> Result<(OssResponse, Bytes), Error> {
        let req = OssRequest {
            epoch: self.cluster.map().epoch,
            ost,
            op,
        };
        self.cluster.oss(ost)?.call(&req, payload).await
    }

    /// Reads `len` bytes at `offset` of file `ino`; ranges no object holds (holes, or past
    /// an object's end) read as zeros. The caller clips the range to the file size.
    pub async fn read_data(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, Error> {
        let mut buf = BytesMut::zeroed(len);
        let pieces = split_by_payload(extents(layout, offset, len));
        let reads = pieces.iter().map(|e| async move {
            let op = OssOp::Read {
                object: ObjectId {
                    ino,
                    stripe: e.stripe,
                },
                offset: e.object_offset,
                len: e.len as u32,
            };
            let (_, data) = self.oss_call(e.ost, op, Bytes::new()).await?;
            if data.len() > e.len {
                return Err(Error::Protocol("OSS returned more than asked".into()));
            }
            Ok::<_, Error>((e.buf_offset, data))
        });
        for (at, data) in try_join_all(reads).await? {
            buf[at..at + data.len()].copy_from_slice(&data);
        }
        Ok(buf.freeze())
    }

    /// Writes `data` at `offset` of file `ino`, every object in parallel; with `sync` the
    /// OSTs have it on disk before this returns.
    pub async fn write_data(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        data: Bytes,
        sync: bool,
    ) -> Result<(), Error> {
        let pieces = split_by_payload(extents(layout, offset, data.len()));
        let writes = pieces.iter().map(|e| {
            let payload = data.slice(e.buf_offset..e.buf_offset + e.len);
            async move {
                let op = OssOp::Write {
                    object: ObjectId {
                        ino,
                        stripe: e.stripe,
                    },
                    offset: e.object_offset,
                    sync,
                };
                self.oss_call(e.ost, op, payload).await.map(|_| ())
            }
        });
        try_join_all(writes).await?;
        Ok(())
    }

    /// Cuts every object of the file to the length it has when the file is `size` long.
    pub async fn truncate_objects(
        &self,
        ino: Ino,
        layout: &Layout,
        size: u64,
    ) -> Result<(), Error> {
        let cuts = (0..layout.stripe_count()).map(|stripe| async move {
            let op = OssOp::Truncate {
                object: ObjectId { ino, stripe },
                size: object_size(layout, stripe, size),
            };
            self.oss_call(layout.osts[stripe as usize], op, Bytes::new())
                .await
                .map(|_| ())
        });
        try_join_all(cuts).await?;
        Ok(())
    }

    /// Makes every object of the file durable on its OST (fdatasync).
    pub async fn sync_objects(&self, ino: Ino, layout: &Layout) -> Result<(), Error> {
        let syncs = (0..layout.stripe_count()).map(|stripe| async move {
            let op = OssOp::Sync {
                object: ObjectId { ino, stripe },
            };
            self.oss_call(layout.osts[stripe as usize], op, Bytes::new())
                .await
                .map(|_| ())
        });
        try_join_all(syncs).await?;
        Ok(())
    }
}

/// Splits extents longer than one frame's payload.
fn split_by_payload(ex: Vec<super::stripe::Extent>) -> Vec<super::stripe::Extent> {
    let max = MAX_PAYLOAD_BYTES as usize;
    let mut out = Vec::with_capacity(ex.len());
    for e in ex {
        let mut done = 0;
        while done < e.len {
            let n = (e.len - done).min(max);
            out.push(super::stripe::Extent {
                object_offset: e.object_offset + done as u64,
                buf_offset: e.buf_offset + done,
                len: n,
                ..e
            });
            done += n;
        }
    }
    out
}

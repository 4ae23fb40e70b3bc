//! The OSS service: the [`Handler`] for [`OssRequest`]. Every request is checked (known OST,
//! caller's map epoch, object id, ranges, payload only on writes) before it reaches a store,
//! changes (write, truncate, delete) also against the OST's lease ([`super::fence`]), and
//! store calls run on blocking threads, at most [`OSS_IO_MAX_IN_FLIGHT`] at a time.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::oss::{
    ObjectId, OssOp, OssRequest, OssResponse, CHECKSUMS_MAX_BLOCKS, CHECKSUM_BLOCK,
};
use rustre_proto::rpc::server::{Handler, Payload, Reply};
use rustre_proto::Error;
use tokio::sync::Semaphore;

use super::fence::{OstLease, REGISTRATION_WAIT};
use super::store::{check_list, check_object, check_read, check_size, check_write, ObjectStore};

/// Most store calls running at once in one OSS (each holds a blocking thread).
pub const OSS_IO_MAX_IN_FLIGHT: usize = 64;

/// One OST as the service sees it.
#[derive(Clone)]
pub(crate) struct ServedOst {
    pub store: Arc<dyn ObjectStore>,
    pub lease: Arc<OstLease>,
}

/// The OSTs one OSS serves.
pub(crate) struct Oss {
    osts: HashMap<u32, ServedOst>,
    io_slots: Semaphore,
}

type OpResult = Result<(OssResponse, Payload), Error>;

/// True for the operations a fenced OST refuses.
fn changes_data(op: &OssOp) -> bool {
    matches!(
        op,
        OssOp::Write { .. } | OssOp::Repair { .. } | OssOp::Truncate { .. } | OssOp::Delete { .. }
    )
}

impl Oss {
    pub(crate) fn new(osts: HashMap<u32, ServedOst>) -> Oss {
        Oss {
            osts,
            io_slots: Semaphore::new(OSS_IO_MAX_IN_FLIGHT),
        }
    }

    /// Runs `f` against `store` on a blocking thread once an I/O slot is free.
    async fn blocking<T: Send + 'static>(
        &self,
        store: &Arc<dyn ObjectStore>,
        f: impl FnOnce(&dyn ObjectStore) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _slot = self
            .io_slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the OSS is stopping".into()))?;
        let store = store.clone();
        rustre_proto::blocking::unblock(move || f(store.as_ref()))
            .await
            .map_err(|e| Error::Io(format!("storage task failed: {e}")))?
    }

    async fn handle_read(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        offset: u64,
        len: u32,
    ) -> OpResult {
        check_read(offset, len)?;
        let read = self
            .blocking(store, move |s| s.read(object, offset, len))
            .await?;
        let resp = OssResponse::Data {
            len: read.data.len(),
            crcs: read.crcs,
            version: read.version,
        };
        Ok((resp, read.data.into_payload()))
    }

    async fn handle_op(&self, store: &Arc<dyn ObjectStore>, op: OssOp, payload: Bytes) -> OpResult {
        if !payload.is_empty() && !matches!(op, OssOp::Write { .. } | OssOp::Repair { .. }) {
            return Err(Error::Invalid("only writes carry a payload".into()));
        }
        if let OssOp::Read { object, .. }
        | OssOp::Write { object, .. }
        | OssOp::Repair { object, .. }
        | OssOp::Truncate { object, .. }
        | OssOp::Sync { object }
        | OssOp::Delete { object }
        | OssOp::Size { object }
        | OssOp::Scrub { object }
        | OssOp::Checksums { object, .. } = &op
        {
            check_object(*object)?;
        }
        let done = Ok((OssResponse::Done, Payload::None));
        match op {
            OssOp::Read {
                object,
                offset,
                len,
            } => self.handle_read(store, object, offset, len).await,
            OssOp::Write {
                object,
                offset,
                sync,
                crc,
                version,
            } => {
                check_write(offset, payload.len())?;
                self.blocking(store, move |s| {
                    s.write(object, offset, &payload, crc, version, sync)
                })
                .await?;
                done
            }
            OssOp::Repair {
                object,
                offset,
                crc,
                version,
                seen,
            } => {
                check_write(offset, payload.len())?;
                let blocks = payload.len().div_ceil(CHECKSUM_BLOCK as usize);
                if !offset.is_multiple_of(u64::from(CHECKSUM_BLOCK)) || seen.len() != blocks {
                    return Err(Error::Invalid(
                        "a repair covers whole blocks from a block boundary, one CRC each".into(),
                    ));
                }
                self.blocking(store, move |s| {
                    s.repair(object, offset, &payload, crc, version, &seen)
                })
                .await?;
                done
            }
            OssOp::Truncate {
                object,
                size,
                version,
            } => {
                check_size(size)?;
                self.blocking(store, move |s| s.truncate(object, size, version))
                    .await?;
                done
            }
            OssOp::Sync { object } => {
                self.blocking(store, move |s| s.sync(object)).await?;
                done
            }
            OssOp::Delete { object } => {
                self.blocking(store, move |s| s.delete(object)).await?;
                done
            }
            OssOp::Size { object } => {
                let size = self.blocking(store, move |s| s.size(object)).await?;
                Ok((OssResponse::Size(size), Payload::None))
            }
            OssOp::StatFs => {
                let capacity = self.blocking(store, |s| s.capacity()).await?;
                Ok((OssResponse::Capacity(capacity), Payload::None))
            }
            OssOp::List { after, limit } => {
                check_list(limit)?;
                let page = self.blocking(store, move |s| s.list(after, limit)).await?;
                let resp = OssResponse::Objects {
                    objects: page.objects,
                    done: page.done,
                };
                Ok((resp, Payload::None))
            }
            OssOp::Checksums {
                object,
                first,
                count,
            } => {
                let count = count.min(CHECKSUMS_MAX_BLOCKS) as usize;
                let (size, crcs) = self
                    .blocking(store, move |s| s.checksums(object, first, count))
                    .await?;
                Ok((OssResponse::Checksums { size, crcs }, Payload::None))
            }
            OssOp::Scrub { object } => {
                let bad_blocks = self.blocking(store, move |s| s.scrub(object)).await?;
                Ok((OssResponse::Scrubbed { bad_blocks }, Payload::None))
            }
        }
    }

    /// Fencing: the caller's epoch for every request, the lease for changes.
    async fn admit(&self, ost: &ServedOst, epoch: u64, op: &OssOp) -> Result<(), Error> {
        ost.lease.check_epoch(epoch)?;
        if changes_data(op) {
            ost.lease.writable(REGISTRATION_WAIT).await?;
            // A registration waited for may have moved the epoch past the caller's.
            ost.lease.check_epoch(epoch)?;
        }
        Ok(())
    }
}

impl Handler for Oss {
    type Request = OssRequest;
    type Response = OssResponse;
    const SERVICE: Service = Service::Oss;

    async fn handle(self: Arc<Self>, req: OssRequest, payload: Bytes) -> Reply<OssResponse> {
        let Some(ost) = self.osts.get(&req.ost) else {
            return Reply::plain(Err(Error::Invalid(format!(
                "OST {} is not served here",
                req.ost
            ))));
        };
        let result = match self.admit(ost, req.epoch, &req.op).await {
            Ok(()) => self.handle_op(&ost.store, req.op, payload).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((resp, payload)) => Reply {
                result: Ok(resp),
                payload,
            },
            Err(e) => {
                match &e {
                    Error::Io(_) | Error::NoSpace | Error::Corrupt(_) => {
                        tracing::warn!(ost = req.ost, "object I/O failed: {e}");
                    }
                    _ => tracing::debug!(ost = req.ost, "request refused: {e}"),
                }
                Reply::plain(Err(e))
            }
        }
    }
}

//! The OSS service: the [`Handler`] for [`OssRequest`]. Every request is checked (known OST,
//! object id, ranges, payload only on writes) before it reaches a store, and store calls run
//! on blocking threads, at most [`OSS_IO_MAX_IN_FLIGHT`] at a time.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssRequest, OssResponse};
use rustre_proto::rpc::server::{Handler, Payload, Reply};
use rustre_proto::Error;
use tokio::sync::Semaphore;

use super::store::{check_object, check_read, check_size, check_write, ObjectStore};

/// Most store calls running at once in one OSS (each holds a blocking thread).
pub const OSS_IO_MAX_IN_FLIGHT: usize = 64;

/// The OSTs one OSS serves.
pub(crate) struct Oss {
    osts: HashMap<u32, Arc<dyn ObjectStore>>,
    io_slots: Semaphore,
}

type OpResult = Result<(OssResponse, Payload), Error>;

impl Oss {
    pub(crate) fn new(osts: HashMap<u32, Arc<dyn ObjectStore>>) -> Oss {
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
        tokio::task::spawn_blocking(move || f(store.as_ref()))
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
        let data = self
            .blocking(store, move |s| s.read(object, offset, len))
            .await?;
        let len = data.len();
        Ok((OssResponse::Data { len }, data.into_payload()))
    }

    async fn handle_write(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        offset: u64,
        sync: bool,
        data: Bytes,
    ) -> OpResult {
        check_write(offset, data.len())?;
        self.blocking(store, move |s| s.write(object, offset, &data, sync))
            .await?;
        Ok((OssResponse::Done, Payload::None))
    }

    async fn handle_truncate(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        size: u64,
    ) -> OpResult {
        check_size(size)?;
        self.blocking(store, move |s| s.truncate(object, size))
            .await?;
        Ok((OssResponse::Done, Payload::None))
    }

    async fn handle_op(&self, store: &Arc<dyn ObjectStore>, op: OssOp, payload: Bytes) -> OpResult {
        if !payload.is_empty() && !matches!(op, OssOp::Write { .. }) {
            return Err(Error::Invalid("only writes carry a payload".into()));
        }
        if let OssOp::Read { object, .. }
        | OssOp::Write { object, .. }
        | OssOp::Truncate { object, .. }
        | OssOp::Sync { object }
        | OssOp::Delete { object }
        | OssOp::Size { object } = &op
        {
            check_object(*object)?;
        }
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
            } => {
                self.handle_write(store, object, offset, sync, payload)
                    .await
            }
            OssOp::Truncate { object, size } => self.handle_truncate(store, object, size).await,
            OssOp::Sync { object } => {
                self.blocking(store, move |s| s.sync(object)).await?;
                Ok((OssResponse::Done, Payload::None))
            }
            OssOp::Delete { object } => {
                self.blocking(store, move |s| s.delete(object)).await?;
                Ok((OssResponse::Done, Payload::None))
            }
            OssOp::Size { object } => {
                let size = self.blocking(store, move |s| s.size(object)).await?;
                Ok((OssResponse::Size(size), Payload::None))
            }
            OssOp::StatFs => {
                let capacity = self.blocking(store, |s| s.capacity()).await?;
                Ok((OssResponse::Capacity(capacity), Payload::None))
            }
        }
    }
}

impl Handler for Oss {
    type Request = OssRequest;
    type Response = OssResponse;
    const SERVICE: Service = Service::Oss;

    async fn handle(self: Arc<Self>, req: OssRequest, payload: Bytes) -> Reply<OssResponse> {
        // `req.epoch` is accepted but not enforced yet. Fencing (refusing callers whose map
        // is older than this OSS's registration, and refusing writes once the MGS has been
        // unreachable for longer than a lease; DESIGN, "Epochs and fencing") is a later issue.
        let Some(store) = self.osts.get(&req.ost) else {
            return Reply::plain(Err(Error::Invalid(format!(
                "OST {} is not served here",
                req.ost
            ))));
        };
        match self.handle_op(store, req.op, payload).await {
            Ok((resp, payload)) => Reply {
                result: Ok(resp),
                payload,
            },
            Err(e) => {
                match &e {
                    Error::Io(_) | Error::NoSpace => {
                        tracing::warn!(ost = req.ost, "object I/O failed: {e}");
                    }
                    _ => tracing::debug!(ost = req.ost, "request refused: {e}"),
                }
                Reply::plain(Err(e))
            }
        }
    }
}

//! The OSS service: the [`Handler`] for [`OssRequest`]. Every request is checked (known OST,
//! caller's map epoch, object id, ranges, payload only on writes) before it reaches a store,
//! changes (write, truncate, delete) also against the OST's lease ([`super::fence`]), and
//! store calls run on blocking threads, at most [`OSS_IO_MAX_IN_FLIGHT`] at a time, except
//! what waits for nothing: reads the page cache answers, and one small write at a time
//! ([`Oss::write_in_place`]).
//!
//! A store answers [`ObjectError`]s; they become wire errors here and nowhere else
//! ([`to_wire`]), when the request is answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::oss::{
    ObjectId, OssOp, OssRequest, OssResponse, CHECKSUMS_MAX_BLOCKS, CHECKSUM_BLOCK,
    DELETE_MANY_MAX_OBJECTS,
};
use rustre_proto::rpc::server::{Caller, Handler, Payload, Reply};
use rustre_proto::Error;
use tokio::sync::Semaphore;

use super::error::ObjectError;
use super::fence::{OstLease, REGISTRATION_WAIT};
use super::store::{
    check_list, check_object, check_read, check_size, check_write, ObjectRead, ObjectStore,
};
use crate::metrics;
use crate::space::SpaceGuard;

/// Most store calls running at once in one OSS (each holds a blocking thread).
pub const OSS_IO_MAX_IN_FLIGHT: usize = 64;

/// One OST as the service sees it.
#[derive(Clone)]
pub(crate) struct ServedOst {
    pub store: Arc<dyn ObjectStore>,
    pub lease: Arc<OstLease>,
    /// This start of the OST: the write verifier of its answers (see
    /// [`OssResponse::Written`]). New whenever acknowledged writes may have been lost
    /// (see `oss/instance.rs`), never 0.
    pub instance: u64,
    /// The free space its disk keeps: writes are refused within it ([`crate::space`]).
    pub reserve: Option<Arc<SpaceGuard>>,
}

/// Deletes each of `objects` from `store`; answers those it could not, each logged.
fn delete_each(store: &dyn ObjectStore, objects: &[ObjectId]) -> Vec<ObjectId> {
    let mut failed = Vec::new();
    for object in objects {
        if let Err(e) = store.delete(*object) {
            tracing::warn!(?object, "object not deleted: {e}");
            failed.push(*object);
        }
    }
    failed
}

/// A new write verifier for an OST starting now: the wall clock in nanoseconds (the
/// simulation's clock in a simulated run, so a seed replays), distinct across restarts of
/// one OST on one host.
pub(crate) fn new_instance() -> u64 {
    (rustre_proto::host::since_epoch().as_nanos() as u64).max(1)
}

/// The OSTs one OSS serves.
pub(crate) struct Oss {
    osts: HashMap<u32, ServedOst>,
    io_slots: Semaphore,
    /// Whether a request is in a store call on an async thread ([`Oss::write_in_place`]).
    in_place_busy: AtomicBool,
}

/// The one turn at a store call on an async thread, held: given back when dropped (also
/// when the call panics).
struct InPlaceTurn<'a>(&'a AtomicBool);

impl<'a> InPlaceTurn<'a> {
    /// The turn, if nobody holds it.
    fn take(busy: &'a AtomicBool) -> Option<InPlaceTurn<'a>> {
        (!busy.swap(true, Ordering::Acquire)).then_some(InPlaceTurn(busy))
    }
}

impl Drop for InPlaceTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Why a request failed: refused by the service itself (fencing, a payload where none
/// belongs, the OSS stopping), or by the request checks or the store.
enum Failure {
    Wire(Error),
    Object(ObjectError),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Wire(e)
    }
}

impl From<ObjectError> for Failure {
    fn from(e: ObjectError) -> Failure {
        Failure::Object(e)
    }
}

type OpResult = Result<(OssResponse, Payload), Failure>;

/// The error a client sees for a store's error: the only conversion of an [`ObjectError`]
/// to the wire. A disk failure is EIO (never, say, ENOENT: a missing file on the OSS is not
/// the client's missing file), except no space, too big and read-only, which keep their
/// errno.
pub(super) fn to_wire(e: ObjectError) -> Error {
    match e {
        ObjectError::Invalid(why) => Error::Invalid(why),
        ObjectError::TooBig => Error::TooBig,
        ObjectError::NoSpace => Error::NoSpace,
        ObjectError::ReadOnly => Error::ReadOnly,
        ObjectError::Corrupt(why) => Error::Corrupt(why),
        ObjectError::Busy => Error::Busy,
        ObjectError::OldVersion { .. } => Error::Stale,
        e @ ObjectError::Missing(_) => Error::Missing(e.to_string()),
        e @ (ObjectError::Io { .. } | ObjectError::Internal(_)) => Error::Io(e.to_string()),
    }
}

/// True for the operations a fenced OST refuses.
fn changes_data(op: &OssOp) -> bool {
    matches!(
        op,
        OssOp::Write { .. }
            | OssOp::Repair { .. }
            | OssOp::Truncate { .. }
            | OssOp::RaiseVersion { .. }
            | OssOp::Delete { .. }
            | OssOp::DeleteMany { .. }
    )
}

impl Oss {
    pub(crate) fn new(osts: HashMap<u32, ServedOst>) -> Oss {
        Oss {
            osts,
            io_slots: Semaphore::new(OSS_IO_MAX_IN_FLIGHT),
            in_place_busy: AtomicBool::new(false),
        }
    }

    /// Runs `f` against `store` on a blocking thread once an I/O slot is free.
    async fn blocking<T: Send + 'static>(
        &self,
        store: &Arc<dyn ObjectStore>,
        f: impl FnOnce(&dyn ObjectStore) -> Result<T, ObjectError> + Send + 'static,
    ) -> Result<T, Failure> {
        let _slot = self
            .io_slots
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the OSS is stopping".into()))?;
        let store = store.clone();
        let done = rustre_proto::blocking::unblock(move || f(store.as_ref()))
            .await
            .map_err(|e| Error::Io(format!("storage task failed: {e}")))?;
        Ok(done?)
    }

    /// Whether `len` bytes at `offset` of `object` land on blocks it already holds (no hole
    /// before their end, which is within the object), so writing them takes no space: past
    /// the reserve only those writes go through, as a full file system lets a file be
    /// rewritten in place (a database rewriting its pages).
    async fn overwrites_only(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        offset: u64,
        len: usize,
    ) -> bool {
        let Some(end) = offset.checked_add(len as u64) else {
            return false;
        };
        let hole = self.blocking(store, move |s| s.seek(object, offset, false));
        matches!(hole.await, Ok(Some(hole)) if hole >= end)
    }

    /// [`ObjectStore::write_in_place`] on this async thread, unless another request is in
    /// such a call now: so at most one worker ever waits for the disk, and the others go on.
    /// A small write costs no thread hop there and back (~20 us of a new 4 KiB object's write).
    fn write_in_place(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
    ) -> Option<Result<u64, ObjectError>> {
        let _turn = InPlaceTurn::take(&self.in_place_busy)?;
        store.write_in_place(object, offset, data, crc, version)
    }

    /// A read; with `must_exist`, an absent object is [`ObjectError::Missing`], not a hole
    /// (asked only when nothing was read: a read past the end of an object that exists is
    /// empty too).
    async fn handle_read(
        &self,
        store: &Arc<dyn ObjectStore>,
        object: ObjectId,
        offset: u64,
        len: u32,
        how: ReadHow,
    ) -> OpResult {
        check_read(offset, len)?;
        // Most reads need no disk wait: answered here, without two thread hops.
        let in_place = (!how.consistent)
            .then(|| store.read_in_place(object, offset, len))
            .flatten();
        if let Some(read) = in_place {
            return Ok(data_answer(read));
        }
        let read = self
            .blocking(store, move |s| {
                let read = if how.consistent {
                    s.read_consistent(object, offset, len)?
                } else {
                    s.read(object, offset, len)?
                };
                if how.must_exist && read.data.is_empty() && s.size(object)?.is_none() {
                    return Err(ObjectError::Missing(object));
                }
                Ok(read)
            })
            .await?;
        Ok(data_answer(read))
    }

    async fn handle_op(&self, ost: &ServedOst, op: OssOp, payload: Bytes) -> OpResult {
        let store = &ost.store;
        if !payload.is_empty() && !matches!(op, OssOp::Write { .. } | OssOp::Repair { .. }) {
            return Err(Error::Invalid("only writes carry a payload".into()).into());
        }
        if let OssOp::Write { object, offset, .. } | OssOp::Repair { object, offset, .. } = op {
            if let Some(reserve) = &ost.reserve {
                if !reserve.has_room(payload.len() as u64, || store.capacity().ok())
                    && !self
                        .overwrites_only(store, object, offset, payload.len())
                        .await
                {
                    return Err(Error::NoSpace.into());
                }
            }
        }
        if let OssOp::Read { object, .. }
        | OssOp::Write { object, .. }
        | OssOp::Repair { object, .. }
        | OssOp::Truncate { object, .. }
        | OssOp::Sync { object }
        | OssOp::RaiseVersion { object, .. }
        | OssOp::Delete { object }
        | OssOp::Size { object }
        | OssOp::Scrub { object }
        | OssOp::Seek { object, .. }
        | OssOp::Checksums { object, .. } = &op
        {
            check_object(*object)?;
        }
        let done = Ok((OssResponse::Done, Payload::None));
        // A change's answer, with the object's allocation after it.
        let written = |allocated| {
            let resp = OssResponse::Written {
                instance: ost.instance,
                allocated,
            };
            Ok((resp, Payload::None))
        };
        match op {
            OssOp::Read {
                object,
                offset,
                len,
                must_exist,
                consistent,
            } => {
                let how = ReadHow {
                    must_exist,
                    consistent,
                };
                self.handle_read(store, object, offset, len, how).await
            }
            OssOp::Write {
                object,
                offset,
                sync,
                crc,
                version,
            } => {
                check_write(offset, payload.len())?;
                if !sync {
                    if let Some(allocated) =
                        self.write_in_place(store, object, offset, &payload, crc, version)
                    {
                        return written(Some(allocated?));
                    }
                }
                let allocated = self
                    .blocking(store, move |s| {
                        s.write(object, offset, &payload, crc, version, sync)?;
                        s.allocated(object)
                    })
                    .await?;
                written(Some(allocated))
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
                    )
                    .into());
                }
                let allocated = self
                    .blocking(store, move |s| {
                        s.repair(object, offset, &payload, crc, version, &seen)?;
                        s.allocated(object)
                    })
                    .await?;
                written(Some(allocated))
            }
            OssOp::Truncate {
                object,
                size,
                version,
            } => {
                check_size(size)?;
                let allocated = self
                    .blocking(store, move |s| {
                        s.truncate(object, size, version)?;
                        s.allocated(object)
                    })
                    .await?;
                written(Some(allocated))
            }
            OssOp::RaiseVersion { object, version } => {
                self.blocking(store, move |s| s.raise_version(object, version))
                    .await?;
                written(None)
            }
            OssOp::Sync { object } => {
                self.blocking(store, move |s| s.sync(object)).await?;
                let synced = OssResponse::Synced {
                    instance: ost.instance,
                };
                Ok((synced, Payload::None))
            }
            OssOp::Delete { object } => {
                self.blocking(store, move |s| s.delete(object)).await?;
                done
            }
            OssOp::DeleteMany { objects } => {
                if objects.len() > DELETE_MANY_MAX_OBJECTS {
                    return Err(Error::Invalid(format!(
                        "{} objects in one delete, at most {DELETE_MANY_MAX_OBJECTS}",
                        objects.len()
                    ))
                    .into());
                }
                for object in &objects {
                    check_object(*object)?;
                }
                let failed = self
                    .blocking(store, move |s| Ok(delete_each(s, &objects)))
                    .await?;
                Ok((OssResponse::DeletedMany { failed }, Payload::None))
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
            OssOp::Seek {
                object,
                offset,
                data,
            } => {
                let at = self
                    .blocking(store, move |s| s.seek(object, offset, data))
                    .await?;
                Ok((OssResponse::Offset(at), Payload::None))
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

    async fn handle(
        self: Arc<Self>,
        req: OssRequest,
        payload: Bytes,
        _caller: Caller,
    ) -> Reply<OssResponse> {
        let Some(m) = metrics::get() else {
            return self.answer(req, payload).await;
        };
        let (start, ost, op) = (Instant::now(), req.ost, metrics::op_name(&req.op));
        let sent = payload.len();
        let reply = self.answer(req, payload).await;
        m.request(Service::Oss, op, start, reply.result.is_ok());
        match &reply.result {
            Ok(_) if op == READ_OP => m.ost_read(ost, reply.payload.len()),
            Ok(_) if op == WRITE_OP || op == REPAIR_OP => m.ost_write(ost, sent),
            Ok(_) => {}
            Err(e) => m.ost_refused(ost, e),
        }
        reply
    }
}

/// Names of the operations counted per OST (see `metrics::op_name`).
const READ_OP: &str = "Read";
const WRITE_OP: &str = "Write";
const REPAIR_OP: &str = "Repair";

impl Oss {
    /// Answers one request (what [`Handler::handle`] does, without the metrics).
    async fn answer(self: Arc<Self>, req: OssRequest, payload: Bytes) -> Reply<OssResponse> {
        let Some(ost) = self.osts.get(&req.ost) else {
            return Reply::plain(Err(Error::Invalid(format!(
                "OST {} is not served here",
                req.ost
            ))));
        };
        let result = match self.admit(ost, req.epoch, &req.op).await {
            Ok(()) => self.handle_op(ost, req.op, payload).await,
            Err(e) => {
                // One line per refusal: an operator tracing a client's EIO finds it here.
                match &e {
                    Error::Fenced(_) => tracing::warn!(
                        ost = req.ost,
                        epoch = req.epoch,
                        "fenced: refused a change: {e}"
                    ),
                    _ => tracing::info!(ost = req.ost, epoch = req.epoch, "refused: {e}"),
                }
                Err(Failure::Wire(e))
            }
        };
        match result {
            Ok((resp, payload)) => Reply {
                result: Ok(resp),
                payload,
            },
            Err(failure) => {
                let e = match failure {
                    Failure::Wire(e) => e,
                    Failure::Object(e) => to_wire(e),
                };
                match &e {
                    Error::Io(_) | Error::NoSpace | Error::Corrupt(_) | Error::Missing(_) => {
                        tracing::warn!(ost = req.ost, "object I/O failed: {e}");
                    }
                    _ => tracing::debug!(ost = req.ost, "request refused: {e}"),
                }
                Reply::plain(Err(e))
            }
        }
    }
}

/// How an `OssOp::Read` asks (see its fields).
#[derive(Debug, Clone, Copy)]
struct ReadHow {
    must_exist: bool,
    consistent: bool,
}

/// The answer to a read that found `read`.
fn data_answer(read: ObjectRead) -> (OssResponse, Payload) {
    let resp = OssResponse::Data {
        len: read.data.len(),
        crcs: read.crcs,
        version: read.version,
    };
    (resp, read.data.into_payload())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rustre_proto::checksum::crc32c;
    use rustre_proto::msg::oss::ObjectInfo;
    use tokio::time::Instant;

    use super::*;
    use crate::oss::{FileStore, OSS_LEASE};

    #[test]
    fn a_disk_error_keeps_only_the_errnos_a_client_can_act_on() {
        let path = Path::new("/ost/objects/07/0000000000000007.0");
        let on_disk = |errno| {
            to_wire(ObjectError::io(
                path,
                std::io::Error::from_raw_os_error(errno),
            ))
        };
        let enoent = on_disk(libc::ENOENT);
        assert!(
            matches!(&enoent, Error::Io(m) if m.contains("0000000000000007.0")),
            "{enoent:?}"
        );
        assert_eq!(enoent.errno(), libc::EIO);
        for errno in [
            libc::EACCES,
            libc::EEXIST,
            libc::ENOTDIR,
            libc::EIO,
            libc::EBADF,
        ] {
            assert_eq!(on_disk(errno).errno(), libc::EIO, "errno {errno}");
        }
        assert_eq!(on_disk(libc::ENOSPC), Error::NoSpace);
        assert_eq!(on_disk(libc::EDQUOT), Error::NoSpace);
        assert_eq!(on_disk(libc::EFBIG), Error::TooBig);
        assert_eq!(on_disk(libc::EROFS), Error::ReadOnly);
        let internal = to_wire(ObjectError::Internal("lost".into()));
        assert_eq!(internal, Error::Io("lost".into()));
    }

    /// An OSS of one OST (0) on `store`, registered with epoch 1 just now.
    fn oss_on(store: FileStore) -> Arc<Oss> {
        let lease = Arc::new(OstLease::new(OSS_LEASE));
        lease.registered(1, Instant::now());
        let ost = ServedOst {
            store: Arc::new(store),
            lease,
            instance: new_instance(),
            reserve: None,
        };
        Arc::new(Oss::new(HashMap::from([(0, ost)])))
    }

    async fn ask(oss: &Arc<Oss>, op: OssOp, payload: &[u8]) -> Result<OssResponse, Error> {
        let req = OssRequest {
            epoch: 1,
            ost: 0,
            op,
        };
        oss.clone()
            .handle(
                req,
                Bytes::copy_from_slice(payload),
                Caller::plain(([127, 0, 0, 1], 0).into()),
            )
            .await
            .result
    }

    /// The write verifier: one instance answers every change and sync of one start of the
    /// OST, and the next start answers another.
    #[tokio::test]
    async fn changes_and_syncs_answer_the_instance_of_this_start() {
        let dir = tempfile::tempdir().unwrap();
        let object = ObjectId { ino: 3, stripe: 0 };
        let instance_of = |answer: Result<OssResponse, Error>| match answer.unwrap() {
            OssResponse::Written { instance, .. } | OssResponse::Synced { instance } => instance,
            other => panic!("answered {other:?}"),
        };
        let write = OssOp::Write {
            object,
            offset: 0,
            sync: false,
            crc: crc32c(b"data"),
            version: 1,
        };
        let truncate = OssOp::Truncate {
            object,
            size: 2,
            version: 1,
        };
        let oss = oss_on(FileStore::open(dir.path(), 8).unwrap());
        let first = instance_of(ask(&oss, write.clone(), b"data").await);
        assert_ne!(first, 0);
        assert_eq!(instance_of(ask(&oss, truncate, &[]).await), first);
        let synced = ask(&oss, OssOp::Sync { object }, &[]).await;
        assert!(
            matches!(synced, Ok(OssResponse::Synced { .. })),
            "{synced:?}"
        );
        assert_eq!(instance_of(synced), first);
        drop(oss);

        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let restarted = oss_on(FileStore::open(dir.path(), 8).unwrap());
        let synced = ask(&restarted, OssOp::Sync { object }, &[]).await;
        assert_ne!(instance_of(synced), first, "a new start is a new instance");
    }

    /// A read that must find its object: `Missing` (EIO) for an absent one, a hole for one
    /// that exists but ends before the read, and a hole for an absent one read without it.
    #[tokio::test]
    async fn a_read_that_must_find_its_object_answers_missing_for_an_absent_one() {
        let dir = tempfile::tempdir().unwrap();
        let oss = oss_on(FileStore::open(dir.path(), 8).unwrap());
        let object = ObjectId { ino: 5, stripe: 1 };
        let read = |offset, must_exist| OssOp::Read {
            object,
            offset,
            len: CHECKSUM_BLOCK,
            must_exist,
            consistent: false,
        };
        let hole = |answer: Result<OssResponse, Error>| {
            matches!(answer, Ok(OssResponse::Data { len: 0, .. }))
        };
        assert!(hole(ask(&oss, read(0, false), &[]).await));
        let missing = ask(&oss, read(0, true), &[]).await.unwrap_err();
        assert!(matches!(missing, Error::Missing(_)), "{missing:?}");
        assert_eq!(missing.errno(), libc::EIO);
        assert!(missing.marks_copy_stale());
        let write = OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: crc32c(b"data"),
            version: 1,
        };
        ask(&oss, write, b"data").await.unwrap();
        let past_the_end = ask(&oss, read(u64::from(CHECKSUM_BLOCK), true), &[]).await;
        assert!(hole(past_the_end), "an object that exists ends there");
        let got = ask(&oss, read(0, true), &[]).await;
        assert!(
            matches!(got, Ok(OssResponse::Data { len: 4, .. })),
            "{got:?}"
        );
    }

    /// A small unsynced write answers alike whether it was made on the async thread (the
    /// turn free) or on a blocking thread (the turn held by another request), and the turn
    /// is given back after it, also when the call in it panics.
    #[tokio::test]
    async fn a_small_write_answers_alike_in_place_or_on_a_blocking_thread() {
        let dir = tempfile::tempdir().unwrap();
        let oss = oss_on(FileStore::open(dir.path(), 8).unwrap());
        let data = b"a small file's bytes";
        let write = |ino| OssOp::Write {
            object: ObjectId { ino, stripe: 0 },
            offset: 0,
            sync: false,
            crc: crc32c(data),
            version: 1,
        };
        let allocated = |answer: Result<OssResponse, Error>| match answer.unwrap() {
            OssResponse::Written { allocated, .. } => allocated,
            other => panic!("answered {other:?}"),
        };
        let in_place = allocated(ask(&oss, write(11), data).await);
        assert!(
            !oss.in_place_busy.load(Ordering::Acquire),
            "the turn is given back"
        );
        let turn = InPlaceTurn::take(&oss.in_place_busy).expect("the turn is free");
        assert!(
            InPlaceTurn::take(&oss.in_place_busy).is_none(),
            "one turn at a time"
        );
        let pooled = allocated(ask(&oss, write(12), data).await);
        drop(turn);
        assert_eq!(in_place, pooled);
        assert!(in_place.is_some_and(|a| a > 0), "{in_place:?}");
        for ino in [11, 12] {
            let read = OssOp::Read {
                object: ObjectId { ino, stripe: 0 },
                offset: 0,
                len: CHECKSUM_BLOCK,
                must_exist: true,
                consistent: true,
            };
            let got = ask(&oss, read, &[]).await.unwrap();
            assert!(
                matches!(&got, OssResponse::Data { len, crcs, .. }
                    if *len as usize == data.len() && crcs[..] == [crc32c(data)]),
                "object {ino}: {got:?}"
            );
        }
        let busy = &oss.in_place_busy;
        let panicked = std::panic::catch_unwind(|| {
            let _turn = InPlaceTurn::take(busy).expect("free");
            panic!("a store call panics");
        });
        assert!(panicked.is_err());
        assert!(InPlaceTurn::take(&oss.in_place_busy).is_some());
    }

    #[tokio::test]
    async fn an_enoent_under_the_store_reaches_the_client_as_eio() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), 8).unwrap();
        let object = ObjectId { ino: 7, stripe: 0 };
        // The directory the object would live in disappears under the store.
        std::fs::remove_dir_all(dir.path().join("objects/07")).unwrap();
        let data = b"bytes";
        let err = store
            .write(object, 0, data, crc32c(data), 1, false)
            .unwrap_err();
        assert!(
            matches!(&err, ObjectError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );

        let oss = oss_on(store);
        let write = OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: crc32c(data),
            version: 1,
        };
        let answer = ask(&oss, write, data).await;
        assert!(
            matches!(&answer, Err(Error::Io(m)) if m.contains("objects/07")),
            "{answer:?}"
        );
        assert_eq!(answer.unwrap_err().errno(), libc::EIO);
        let list = OssOp::List {
            after: None,
            limit: 10,
        };
        let answer = ask(&oss, list.clone(), &[]).await;
        assert!(matches!(&answer, Err(Error::Io(_))), "{answer:?}");
        // With the directory back, the OST lists again.
        std::fs::create_dir(dir.path().join("objects/07")).unwrap();
        let answer = ask(&oss, list, &[]).await.unwrap();
        let listed: Vec<ObjectInfo> = match answer {
            OssResponse::Objects { objects, .. } => objects,
            other => panic!("list answered {other:?}"),
        };
        assert!(listed.is_empty(), "{listed:?}");
    }
}

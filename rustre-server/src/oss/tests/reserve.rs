//! An OST within its reserve: writes that would take space are ENOSPC, rewrites of blocks an
//! object already holds go through, as a full local file system lets a file be rewritten in
//! place.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use tokio::time::Instant;

use rustre_proto::rpc::server::{Caller, Handler};

use super::*;
use crate::oss::fence::OstLease;
use crate::oss::file_store::FileStore;
use crate::oss::service::{new_instance, Oss, ServedOst};
use crate::oss::store::{ObjectStore, ReadData};
use crate::space::{ReserveRule, SpaceGuard};

/// A reserve of the whole file system: never any room.
const ALL_RESERVED: ReserveRule = ReserveRule {
    min_bytes: u64::MAX,
    share: 1,
    most_share: 1,
};

/// One write of `data` at `offset` of `object` through `oss`'s OST 0.
async fn write_via(
    oss: &Arc<Oss>,
    object: ObjectId,
    offset: u64,
    data: &[u8],
) -> Result<(), Error> {
    let req = OssRequest {
        epoch: 1,
        ost: 0,
        op: OssOp::Write {
            object,
            offset,
            sync: false,
            crc: crc32c(data),
            version: 0,
        },
    };
    let caller = Caller::plain(([127, 0, 0, 1], 0).into());
    let reply = oss
        .clone()
        .handle(req, Bytes::copy_from_slice(data), caller)
        .await;
    reply.result.map(|_| ())
}

/// The `len` bytes of `object` from its start.
fn bytes_of(store: &dyn ObjectStore, object: ObjectId, len: u32) -> Vec<u8> {
    match store.read(object, 0, len).unwrap().data {
        ReadData::Bytes(b) => b.to_vec(),
        ReadData::File { file, offset, len } => {
            let mut buf = vec![0; len as usize];
            file.read_exact_at(&mut buf, offset).unwrap();
            buf
        }
    }
}

#[tokio::test]
async fn within_the_reserve_only_rewrites_of_held_blocks_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FileStore::open(dir.path(), 8).unwrap());
    // An object of 64 KiB written whole, and a sparse one: 4 KiB, a hole, 4 KiB at 1 MiB.
    let (full, sparse) = (obj(5, 0), obj(6, 0));
    let block = pattern(64 << 10, 1);
    store
        .write(full, 0, &block, crc32c(&block), 0, false)
        .unwrap();
    let small = pattern(4096, 2);
    store
        .write(sparse, 0, &small, crc32c(&small), 0, false)
        .unwrap();
    store
        .write(sparse, 1 << 20, &small, crc32c(&small), 0, false)
        .unwrap();
    let lease = Arc::new(OstLease::new(Duration::from_secs(30)));
    lease.registered(1, Instant::now());
    let ost = ServedOst {
        store: store.clone(),
        lease,
        instance: new_instance(),
        reserve: Some(Arc::new(SpaceGuard::new(ALL_RESERVED, "test OST"))),
    };
    let oss = Arc::new(Oss::new(HashMap::from([(0, ost)])));

    // Rewrites inside what the objects hold.
    let again = pattern(8192, 3);
    write_via(&oss, full, 4096, &again).await.unwrap();
    write_via(&oss, sparse, 0, &small[..100]).await.unwrap();
    write_via(&oss, sparse, 1 << 20, &again[..4096])
        .await
        .unwrap();
    let read = bytes_of(store.as_ref(), full, 64 << 10);
    assert_eq!(&read[4096..12288], &again[..]);
    assert_eq!(&read[..4096], &block[..4096]);

    // Whatever would take space: past an object's end, into a hole, a new object.
    for (object, offset, what) in [
        (full, (64 << 10) - 100, "across the end"),
        (full, 64 << 10, "at the end"),
        (sparse, 512 << 10, "into a hole"),
        (sparse, 4000, "from held blocks into a hole"),
        (obj(7, 0), 0, "a new object"),
    ] {
        let r = write_via(&oss, object, offset, &again).await;
        assert_eq!(r, Err(Error::NoSpace), "{what}");
    }
    assert_eq!(store.size(full).unwrap(), Some(64 << 10));
    assert_eq!(store.size(obj(7, 0)).unwrap(), None);
}

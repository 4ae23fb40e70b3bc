//! OSS tests over real TCP on 127.0.0.1, in process: object I/O through a real
//! `Connection` (with an MGS, since an OST changes nothing until it is registered), checksums
//! end to end and hostile bytes on raw sockets here; the registration with a real MGS,
//! fencing and disk identity in `registration`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::auth::{self, Nonce, Side};
use rustre_proto::checksum::{block_crcs, crc32c, first_bad_block, CHECKSUM_BLOCK};
use rustre_proto::codec;
use rustre_proto::frame::{
    read_frame, FrameKind, Header, Service, MAX_PAYLOAD_BYTES, PROTOCOL_VERSION,
};
use rustre_proto::msg::mgs::{ClusterMap, MgsRequest, MgsResponse, NodeState};
use rustre_proto::msg::oss::{ObjectId, ObjectInfo, OssOp, OssRequest, OssResponse};
use rustre_proto::rpc::client::Connection;
use rustre_proto::rpc::{ClientProof, Hello, ServerProof};
use rustre_proto::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{run, run_with_lease, OssConfig, IDENTITY_FILE, MAX_OBJECT_BYTES, OSS_LEASE};
use crate::test_cluster::{start_mgs_on, test_key, TestMgs};

mod deletes;
mod registration;
mod reserve;

const CLUSTER: &str = "testfs";
const B: usize = CHECKSUM_BLOCK as usize;

struct TestOss {
    addr: String,
    mgs_addr: String,
    osts: Vec<u32>,
    lease: Duration,
    dirs: Vec<PathBuf>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
    mgs: Option<TestMgs>,
    mgs_dir: Option<tempfile::TempDir>,
    _tmp: tempfile::TempDir,
}

impl TestOss {
    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.expect("OSS task panicked").unwrap();
        if let Some(mgs) = self.mgs {
            mgs.stop().await.unwrap();
        }
    }

    /// Stops the OSS process (not the MGS) and starts it again on the same address and
    /// directories, after `before_start` (which may wipe them).
    async fn restart(&mut self, before_start: impl FnOnce(&[PathBuf])) {
        self.stop.send_replace(true);
        (&mut self.task).await.expect("OSS task panicked").unwrap();
        before_start(&self.dirs);
        let listener = TcpListener::bind(&self.addr).await.unwrap();
        let (stop, task) = spawn_oss(&self.osts, &self.dirs, &self.mgs_addr, listener, self.lease);
        self.stop = stop;
        self.task = task;
    }
}

/// Runs an OSS serving `osts` from `dirs` on `listener`.
fn spawn_oss(
    osts: &[u32],
    dirs: &[PathBuf],
    mgs_addr: &str,
    listener: TcpListener,
    lease: Duration,
) -> (watch::Sender<bool>, JoinHandle<Result<(), Error>>) {
    let cfg = OssConfig {
        mgs_addr: mgs_addr.to_string(),
        advertise_addr: listener.local_addr().unwrap().to_string(),
        cluster: CLUSTER.to_string(),
        key: test_key(),
        osts: osts.iter().copied().zip(dirs.iter().cloned()).collect(),
    };
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(run_with_lease(cfg, listener, rx, lease));
    (stop, task)
}

/// An address nothing listens on (the port was just released).
async fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

/// An OSS serving `osts`, reporting to the MGS at `mgs_addr` (which may be dead).
async fn start_oss_with(osts: &[u32], mgs_addr: &str, lease: Duration) -> TestOss {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = osts
        .iter()
        .map(|i| tmp.path().join(format!("ost{i}")))
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, task) = spawn_oss(osts, &dirs, mgs_addr, listener, lease);
    TestOss {
        addr,
        mgs_addr: mgs_addr.to_string(),
        osts: osts.to_vec(),
        lease,
        dirs,
        stop,
        task,
        mgs: None,
        mgs_dir: None,
        _tmp: tmp,
    }
}

/// An MGS and an OSS serving `osts` with `lease`, once the MGS lists every OST as up.
async fn start_cluster_with(osts: &[u32], lease: Duration) -> TestOss {
    let mgs_dir = tempfile::tempdir().unwrap();
    let mgs = start_mgs_on(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        mgs_dir.path(),
        CLUSTER,
    );
    let mut oss = start_oss_with(osts, &mgs.addr, lease).await;
    wait_for_map(&mgs.addr, "the OSTs registered", |m| {
        osts.iter()
            .all(|&i| m.ost(i).is_some_and(|o| o.state == NodeState::Up))
    })
    .await;
    oss.mgs = Some(mgs);
    oss.mgs_dir = Some(mgs_dir);
    oss
}

/// An MGS and an OSS serving `osts`, ready for writes.
async fn start_oss(osts: &[u32]) -> TestOss {
    start_cluster_with(osts, OSS_LEASE).await
}

/// A connection and the map epoch it sends.
struct TestClient {
    conn: Arc<Connection>,
    epoch: u64,
}

/// A client of `oss` holding the MGS's current map epoch (0 without an MGS).
async fn connect(oss: &TestOss) -> TestClient {
    let epoch = get_map(&oss.mgs_addr).await.map(|m| m.epoch).unwrap_or(0);
    connect_at(&oss.addr, epoch).await
}

async fn connect_at(addr: &str, epoch: u64) -> TestClient {
    let conn = Connection::connect(addr, Service::Oss, CLUSTER, "oss-test", &test_key())
        .await
        .unwrap();
    TestClient { conn, epoch }
}

async fn call(
    c: &TestClient,
    ost: u32,
    op: OssOp,
    payload: Bytes,
) -> Result<(OssResponse, Bytes), Error> {
    let req = OssRequest {
        epoch: c.epoch,
        ost,
        op,
    };
    c.conn.call(&req, payload).await
}

fn obj(ino: u64, stripe: u32) -> ObjectId {
    ObjectId { ino, stripe }
}

fn write_op(object: ObjectId, offset: u64, data: &[u8]) -> OssOp {
    OssOp::Write {
        object,
        offset,
        sync: false,
        crc: crc32c(data),
        version: 1,
    }
}

async fn try_write(
    c: &TestClient,
    ost: u32,
    object: ObjectId,
    offset: u64,
    data: &[u8],
) -> Result<(), Error> {
    let op = write_op(object, offset, data);
    let (resp, _) = call(c, ost, op, Bytes::copy_from_slice(data)).await?;
    assert!(matches!(resp, OssResponse::Written { .. }), "{resp:?}");
    Ok(())
}

async fn write(c: &TestClient, ost: u32, object: ObjectId, offset: u64, data: &[u8]) {
    try_write(c, ost, object, offset, data).await.unwrap();
}

/// A read's bytes, CRCs and version, as sent.
async fn read_raw(
    c: &TestClient,
    ost: u32,
    object: ObjectId,
    offset: u64,
    len: u32,
) -> (Vec<u8>, Vec<u32>, u64) {
    let op = OssOp::Read {
        object,
        offset,
        len,
        must_exist: false,
        consistent: false,
    };
    match call(c, ost, op, Bytes::new()).await.unwrap() {
        (OssResponse::Data { len, crcs, version }, data) => {
            assert_eq!(
                len as usize,
                data.len(),
                "announced and sent lengths differ"
            );
            (data.to_vec(), crcs, version)
        }
        other => panic!("read answered {other:?}"),
    }
}

/// A read whose CRCs are checked as a client does.
async fn read(c: &TestClient, ost: u32, object: ObjectId, offset: u64, len: u32) -> Vec<u8> {
    let (data, crcs, _) = read_raw(c, ost, object, offset, len).await;
    assert_eq!(first_bad_block(&data, &crcs), None, "read failed its CRCs");
    data
}

async fn size(c: &TestClient, ost: u32, object: ObjectId) -> Option<u64> {
    match call(c, ost, OssOp::Size { object }, Bytes::new())
        .await
        .unwrap()
        .0
    {
        OssResponse::Size(s) => s,
        other => panic!("size answered {other:?}"),
    }
}

async fn scrub(c: &TestClient, ost: u32, object: ObjectId) -> Vec<u64> {
    match call(c, ost, OssOp::Scrub { object }, Bytes::new())
        .await
        .unwrap()
        .0
    {
        OssResponse::Scrubbed { bad_blocks } => bad_blocks,
        other => panic!("scrub answered {other:?}"),
    }
}

async fn list(
    c: &TestClient,
    ost: u32,
    after: Option<ObjectId>,
    limit: u32,
) -> (Vec<ObjectInfo>, bool) {
    match call(c, ost, OssOp::List { after, limit }, Bytes::new())
        .await
        .unwrap()
        .0
    {
        OssResponse::Objects { objects, done } => (objects, done),
        other => panic!("list answered {other:?}"),
    }
}

async fn done(c: &TestClient, ost: u32, op: OssOp) {
    let r = call(c, ost, op, Bytes::new()).await.unwrap().0;
    assert!(
        matches!(
            r,
            OssResponse::Done | OssResponse::Written { .. } | OssResponse::Synced { .. }
        ),
        "{r:?}"
    );
}

fn truncate(object: ObjectId, size: u64) -> OssOp {
    OssOp::Truncate {
        object,
        size,
        version: 1,
    }
}

async fn get_map(addr: &str) -> Result<ClusterMap, Error> {
    let c = Connection::connect(addr, Service::Mgs, CLUSTER, "oss-test", &test_key()).await?;
    match c.call(&MgsRequest::GetMap, Bytes::new()).await?.0 {
        MgsResponse::Map(m) => Ok(m),
        other => panic!("GetMap answered {other:?}"),
    }
}

/// Polls the MGS at `addr` until `ok` holds for its map.
async fn wait_for_map(addr: &str, what: &str, ok: impl Fn(&ClusterMap) -> bool) -> ClusterMap {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(m) = get_map(addr).await {
            if ok(&m) {
                return m;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn oss_write_read_round_trip() {
    let oss = start_oss(&[0, 1]).await;
    let c = connect(&oss).await;
    let o = obj(0x1234_5678, 3);
    let data = pattern(1 << 20, 7);
    let op = OssOp::Write {
        object: o,
        offset: 0,
        sync: true,
        crc: crc32c(&data),
        version: 3,
    };
    call(&c, 0, op, Bytes::from(data.clone())).await.unwrap();
    assert_eq!(read(&c, 0, o, 0, 1 << 20).await, data);
    let (part, crcs, version) = read_raw(&c, 0, o, 4096, 8192).await;
    assert_eq!(part, &data[4096..12288]);
    assert_eq!(crcs, block_crcs(&data[4096..12288]));
    assert_eq!(version, 3);
    assert_eq!(size(&c, 0, o).await, Some(1 << 20));
    // Same object id on another OST is another object.
    assert_eq!(size(&c, 1, o).await, None);
    write(&c, 1, o, 0, b"other ost").await;
    assert_eq!(read(&c, 1, o, 0, 4096).await, b"other ost");
    assert_eq!(read(&c, 0, o, 0, 4096).await, &data[..4096]);
    done(&c, 0, OssOp::Sync { object: o }).await;
    // The documented on-disk layout.
    let on_disk = oss.dirs[0].join("objects/78/0000000012345678.3");
    assert_eq!(std::fs::read(on_disk).unwrap(), data);
    let sidecar = std::fs::read(oss.dirs[0].join("objects/78/0000000012345678.3.sum")).unwrap();
    assert_eq!(sidecar.len(), 16 + 4 * 256);
    assert_eq!(&sidecar[..4], b"RSUM");
    assert!(oss.dirs[0].join(IDENTITY_FILE).is_file());
    oss.stop().await;
}

#[tokio::test]
async fn oss_sparse_and_past_eof_reads() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let o = obj(42, 0);
    let mib = 1u64 << 20;
    write(&c, 0, o, mib + 100, &[0xee; 4096]).await;
    assert_eq!(size(&c, 0, o).await, Some(mib + 4196));
    // A hole reads as zeros, with the CRCs of zeros.
    let (hole, crcs, _) = read_raw(&c, 0, o, 0, 8192).await;
    assert_eq!(hole, vec![0u8; 8192]);
    assert_eq!(crcs, block_crcs(&hole));
    let edge = read(&c, 0, o, mib - 4096, 8192).await;
    assert_eq!(edge.len(), 8192);
    assert_eq!(&edge[..4196], &[0u8; 4196][..]);
    assert_eq!(&edge[4196..], &[0xee; 8192 - 4196][..]);
    // A read crossing the end is cut at the end (its last CRC covers the short block); past
    // it, nothing.
    let (tail, crcs, _) = read_raw(&c, 0, o, mib + 4096, 8192).await;
    assert_eq!(tail, vec![0xee; 100]);
    assert_eq!(crcs, vec![crc32c(&[0xee; 100])]);
    assert!(read(&c, 0, o, mib + 8192, 4096).await.is_empty());
    assert!(read(&c, 0, o, 10 * mib, 4096).await.is_empty());
    // An absent object reads as nothing and has no size.
    let (nothing, crcs, version) = read_raw(&c, 0, obj(43, 0), 0, 4096).await;
    assert!(nothing.is_empty() && crcs.is_empty() && version == 0);
    assert_eq!(size(&c, 0, obj(43, 0)).await, None);
    // Unaligned reads are refused.
    let unaligned = OssOp::Read {
        object: o,
        offset: 100,
        len: 4096,
        must_exist: false,
        consistent: false,
    };
    let r = call(&c, 0, unaligned, Bytes::new()).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    oss.stop().await;
}

#[tokio::test]
async fn oss_truncate() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let o = obj(5, 1);
    let data = pattern(10_000, 1);
    write(&c, 0, o, 0, &data).await;
    done(&c, 0, truncate(o, 4096)).await;
    assert_eq!(size(&c, 0, o).await, Some(4096));
    assert_eq!(read(&c, 0, o, 0, 12288).await, &data[..4096]);
    // Growing again shows zeros, never the old bytes.
    done(&c, 0, truncate(o, 10_000)).await;
    let back = read(&c, 0, o, 0, 12288).await;
    assert_eq!(&back[..4096], &data[..4096]);
    assert_eq!(&back[4096..], &vec![0u8; 10_000 - 4096][..]);
    // Shrinking into a block keeps the CRCs right.
    done(&c, 0, truncate(o, 5000)).await;
    assert_eq!(read(&c, 0, o, 0, 8192).await, &back[..5000]);
    // Truncating an absent object creates it.
    let fresh = obj(6, 0);
    done(&c, 0, truncate(fresh, 100)).await;
    assert_eq!(size(&c, 0, fresh).await, Some(100));
    assert_eq!(read(&c, 0, fresh, 0, 4096).await, vec![0u8; 100]);
    done(&c, 0, truncate(fresh, 0)).await;
    assert_eq!(size(&c, 0, fresh).await, Some(0));
    let too_big = truncate(fresh, MAX_OBJECT_BYTES + 1);
    assert_eq!(
        call(&c, 0, too_big, Bytes::new()).await.unwrap_err(),
        Error::TooBig
    );
    oss.stop().await;
}

#[tokio::test]
async fn oss_unknown_ost_and_bad_requests_refused() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let o = obj(9, 0);
    let invalid = |r: Result<(OssResponse, Bytes), Error>| {
        assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    };
    invalid(call(&c, 9, OssOp::StatFs, Bytes::new()).await);
    invalid(call(&c, 9, OssOp::Size { object: o }, Bytes::new()).await);
    let overflow = OssOp::Read {
        object: o,
        offset: u64::MAX - 4095,
        len: 4096,
        must_exist: false,
        consistent: false,
    };
    invalid(call(&c, 0, overflow, Bytes::new()).await);
    let huge_read = OssOp::Read {
        object: o,
        offset: 0,
        len: MAX_PAYLOAD_BYTES + 4096,
        must_exist: false,
        consistent: false,
    };
    invalid(call(&c, 0, huge_read, Bytes::new()).await);
    let payload_on_read = OssOp::Read {
        object: o,
        offset: 0,
        len: 4096,
        must_exist: false,
        consistent: false,
    };
    invalid(call(&c, 0, payload_on_read, Bytes::from_static(b"x")).await);
    let inode_zero = OssOp::Size { object: obj(0, 0) };
    invalid(call(&c, 0, inode_zero, Bytes::new()).await);
    invalid(call(&c, 0, OssOp::Scrub { object: obj(0, 0) }, Bytes::new()).await);
    let seek_inode_zero = OssOp::Seek {
        object: obj(0, 0),
        offset: 0,
        data: true,
    };
    invalid(call(&c, 0, seek_inode_zero, Bytes::new()).await);
    invalid(
        call(
            &c,
            0,
            OssOp::List {
                after: None,
                limit: 0,
            },
            Bytes::new(),
        )
        .await,
    );
    let far = write_op(o, MAX_OBJECT_BYTES - 1, b"ab");
    let r = call(&c, 0, far, Bytes::from_static(b"ab")).await;
    assert_eq!(r.unwrap_err(), Error::TooBig);
    let wrap = write_op(o, u64::MAX, b"ab");
    invalid(call(&c, 0, wrap, Bytes::from_static(b"ab")).await);
    // A payload damaged on the way is refused.
    let damaged = write_op(o, 0, b"ab");
    let r = call(&c, 0, damaged, Bytes::from_static(b"aB")).await;
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
    assert_eq!(size(&c, 0, o).await, None, "refused writes create nothing");

    match call(&c, 0, OssOp::StatFs, Bytes::new()).await.unwrap().0 {
        OssResponse::Capacity(cap) => {
            assert!(cap.total_bytes > 0);
            assert!(cap.avail_bytes <= cap.free_bytes && cap.free_bytes <= cap.total_bytes);
        }
        other => panic!("StatFs answered {other:?}"),
    }
    // The connection survived every refusal.
    write(&c, 0, o, 0, b"still here").await;
    assert_eq!(read(&c, 0, o, 0, 4096).await, b"still here");
    oss.stop().await;
}

#[tokio::test]
async fn oss_scrub_and_crcs_expose_flipped_bytes() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let o = obj(0x300, 1);
    let data = pattern(5 * B + 123, 4);
    write(&c, 0, o, 0, &data).await;
    done(&c, 0, OssOp::Sync { object: o }).await;
    assert!(scrub(&c, 0, o).await.is_empty());
    assert!(
        scrub(&c, 0, obj(0x301, 0)).await.is_empty(),
        "absent: nothing bad"
    );
    // Bit rot on the disk.
    let path = oss.dirs[0].join("objects/00/0000000000000300.1");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * B + 7] ^= 0x10;
    bytes[5 * B + 100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(scrub(&c, 0, o).await, vec![2, 5]);
    let (got, crcs, _) = read_raw(&c, 0, o, 0, 6 * B as u32).await;
    assert_eq!(got, bytes);
    assert_eq!(first_bad_block(&got, &crcs), Some(2));
    assert_eq!(first_bad_block(&got[3 * B..], &crcs[3..]), Some(2));
    // A partial write into a bad block is refused; a whole-block write repairs it.
    let r = try_write(&c, 0, o, (2 * B + 100) as u64, b"patch").await;
    assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");
    write(&c, 0, o, (2 * B) as u64, &data[2 * B..3 * B]).await;
    assert_eq!(scrub(&c, 0, o).await, vec![5]);
    write(&c, 0, o, (5 * B) as u64, &data[5 * B..]).await;
    assert!(scrub(&c, 0, o).await.is_empty());
    assert_eq!(read(&c, 0, o, 0, 6 * B as u32).await, data);
    oss.stop().await;
}

#[tokio::test]
async fn oss_lists_objects_in_pages() {
    let oss = start_oss(&[0, 1]).await;
    let c = connect(&oss).await;
    let mut ids = Vec::new();
    for ino in [3u64, 1, 0x1_0000_0003, 259, 2] {
        for stripe in [1u32, 0] {
            let o = obj(ino, stripe);
            write(&c, 0, o, 0, &vec![7u8; ino as usize % 50 + 1]).await;
            ids.push(o);
        }
    }
    ids.sort();
    write(&c, 1, obj(1, 0), 0, b"on the other OST").await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, done) = list(&c, 0, after, 3).await;
        for info in &page {
            assert_eq!(info.size, info.id.ino % 50 + 1);
            assert_eq!(info.version, 1);
        }
        seen.extend(page.iter().map(|i| i.id));
        after = page.last().map(|i| i.id);
        if done {
            break;
        }
    }
    assert_eq!(seen, ids);
    let (other, done) = list(&c, 1, None, u32::MAX).await;
    assert!(done);
    assert_eq!(other.len(), 1);
    oss.stop().await;
}

fn hello_frame(cluster: &str, nonce: Nonce) -> Vec<u8> {
    let body = codec::encode(&Hello {
        cluster: cluster.to_string(),
        client: "raw-test".to_string(),
        nonce,
    })
    .unwrap();
    frame(FrameKind::Hello, 0, &body)
}

fn frame(kind: FrameKind, id: u64, body: &[u8]) -> Vec<u8> {
    let h = Header {
        kind,
        service: Service::Oss,
        flags: 0,
        request_id: id,
        body_len: body.len() as u32,
        payload_len: 0,
    };
    let mut bytes = h.encode().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// A raw connection past a good (authenticated) handshake.
async fn raw_session(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let client_nonce = auth::nonce().unwrap();
    s.write_all(&hello_frame(CLUSTER, client_nonce))
        .await
        .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(reply.header.kind, FrameKind::HelloReply);
    let server = codec::decode::<Result<ServerProof, Error>>(&reply.body)
        .unwrap()
        .unwrap();
    let key = test_key();
    assert!(key.verify(
        Side::Server,
        CLUSTER,
        &client_nonce,
        &server.nonce,
        &server.proof
    ));
    let proof = ClientProof {
        proof: key.prove(Side::Client, CLUSTER, &client_nonce, &server.nonce),
        admin: None,
    };
    let body = codec::encode(&proof).unwrap();
    s.write_all(&frame(FrameKind::Auth, 0, &body))
        .await
        .unwrap();
    s
}

/// Waits until the server closes `s` (EOF or reset), reading through anything it sends.
async fn assert_closed(mut s: TcpStream, what: &str) {
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "server did not close the connection after {what}"
    );
}

#[tokio::test]
async fn oss_closes_bad_connections_and_keeps_serving_others() {
    let oss = start_oss(&[0]).await;
    let good = connect(&oss).await;
    let o = obj(1000, 0);
    write(&good, 0, o, 0, b"before").await;

    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(&oss.addr).await.unwrap();
    s.write_all(&[0xab; 64]).await.unwrap();
    assert_closed(s, "garbage before the handshake").await;

    // A handshake in an unknown protocol version.
    let mut s = TcpStream::connect(&oss.addr).await.unwrap();
    let mut hello = hello_frame(CLUSTER, auth::nonce().unwrap());
    hello[4..6].copy_from_slice(&99u16.to_be_bytes());
    s.write_all(&hello).await.unwrap();
    assert_closed(s, "a wrong protocol version in the handshake").await;

    // A handshake for another cluster: refused, then closed.
    let mut s = TcpStream::connect(&oss.addr).await.unwrap();
    s.write_all(&hello_frame("otherfs", auth::nonce().unwrap()))
        .await
        .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert!(codec::decode::<Result<ServerProof, Error>>(&reply.body)
        .unwrap()
        .is_err());
    assert_closed(s, "a handshake for another cluster").await;

    // Garbage after a good handshake.
    let mut s = raw_session(&oss.addr).await;
    s.write_all(&[0x5a; 100]).await.unwrap();
    assert_closed(s, "garbage after the handshake").await;

    // A header announcing a 4 GiB body.
    let mut s = raw_session(&oss.addr).await;
    let mut h = frame(FrameKind::Request, 1, &[]);
    h[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&h).await.unwrap();
    assert_closed(s, "a 4 GiB body length").await;

    // A request in another protocol version.
    let mut s = raw_session(&oss.addr).await;
    let body = codec::encode(&OssRequest {
        epoch: good.epoch,
        ost: 0,
        op: OssOp::StatFs,
    })
    .unwrap();
    let mut f = frame(FrameKind::Request, 2, &body);
    f[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    s.write_all(&f).await.unwrap();
    assert_closed(s, "a wrong protocol version").await;

    // A frame cut short by the peer closing its side.
    let mut s = raw_session(&oss.addr).await;
    let mut f = frame(FrameKind::Request, 3, &[0u8; 100]);
    f.truncate(32 + 10);
    s.write_all(&f).await.unwrap();
    s.shutdown().await.unwrap();
    assert_closed(s, "a truncated frame").await;

    // A whole frame whose body does not decode gets an error answer, and the stream goes on.
    let mut s = raw_session(&oss.addr).await;
    s.write_all(&frame(FrameKind::Request, 4, &[0xff; 7]))
        .await
        .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(reply.header.request_id, 4);
    let answer = codec::decode::<Result<OssResponse, Error>>(&reply.body).unwrap();
    assert!(matches!(answer, Err(Error::Protocol(_))), "{answer:?}");
    s.write_all(&frame(FrameKind::Request, 5, &body))
        .await
        .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert_eq!(reply.header.request_id, 5);
    let answer = codec::decode::<Result<OssResponse, Error>>(&reply.body).unwrap();
    assert!(matches!(answer, Ok(OssResponse::Capacity(_))), "{answer:?}");

    // The well-behaved client never noticed, and new ones are welcome.
    assert!(!good.conn.is_closed());
    write(&good, 0, o, 6, b" and after").await;
    assert_eq!(read(&good, 0, o, 0, 4096).await, b"before and after");
    let fresh = connect(&oss).await;
    assert_eq!(read(&fresh, 0, o, 0, 4096).await, b"before and after");
    oss.stop().await;
}

//! MDS replication tests over a whole in-process cluster ([`crate::local`]) on loopback TCP:
//! replicated layouts, `MarkStale`, `MoveCopies` and the resync worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::checksum;
use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
use rustre_proto::msg::mgs::{LayoutDefaults, NodeState};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssRequest, OssResponse};
use rustre_proto::msg::{Attr, Creds, LayoutSpec, ROOT_INO};
use rustre_proto::Error;
use tokio::sync::watch;

use crate::local::{self, LocalConfig};

const CLUSTER: &str = "replfs";

pub(super) struct TestCluster {
    pub(super) cluster: Arc<Cluster>,
    session: u64,
    seq: std::sync::atomic::AtomicU64,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    pub(super) async fn start(osts: u32) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let key = ClusterKey::generate().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let cfg = LocalConfig {
            data_dir: dir.path().to_path_buf(),
            osts,
            mds: 1,
            store: None,
            mgs_listen: "127.0.0.1:0".parse().unwrap(),
            cluster: CLUSTER.into(),
            key: key.clone(),
            defaults: LayoutDefaults::default(),
            durable: false,
            session_lease_ms: 30_000,
        };
        let lc = local::start(cfg, shutdown).await.unwrap();
        let cluster = Cluster::connect(&lc.mgs_addr.to_string(), CLUSTER, "test", &key)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let map = cluster.refresh().await.unwrap();
            let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
            if up == osts as usize && map.mds_up().count() == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not come up: {map:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut t = TestCluster {
            cluster,
            session: 0,
            seq: std::sync::atomic::AtomicU64::new(1),
            _stop: stop,
            _dir: dir,
        };
        match t
            .call_as(
                Creds::root(),
                0,
                MdsOp::OpenSession {
                    client: "test".into(),
                },
            )
            .await
            .unwrap()
        {
            MdsResponse::Session { id, .. } => t.session = id,
            other => panic!("{other:?}"),
        }
        t
    }

    pub(super) async fn call_as(
        &self,
        creds: Creds,
        seq: u64,
        op: MdsOp,
    ) -> Result<MdsResponse, Error> {
        let req = MdsRequest {
            creds,
            session: self.session,
            seq,
            op,
        };
        let peer = self.cluster.mds_peers()[0].clone();
        Ok(peer.call(&req, Bytes::new()).await?.0)
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) async fn call(&self, op: MdsOp) -> Result<MdsResponse, Error> {
        self.call_as(Creds::root(), self.next_seq(), op).await
    }

    pub(super) async fn attr(&self, op: MdsOp) -> Result<Attr, Error> {
        match self.call(op).await? {
            MdsResponse::Attr(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    pub(super) async fn create(
        &self,
        name: &str,
        stripes: u32,
        replicas: u32,
    ) -> Result<Attr, Error> {
        self.attr(MdsOp::Create {
            parent: ROOT_INO,
            name: name.into(),
            perm: 0o644,
            exclusive: true,
            open_flags: None,
            layout: Some(LayoutSpec {
                stripe_size: Some(64 << 10),
                stripe_count: Some(stripes),
                osts: None,
                replicas: Some(replicas),
            }),
        })
        .await
    }

    pub(super) async fn oss(&self, ost: u32, op: OssOp, payload: Bytes) -> (OssResponse, Bytes) {
        let req = OssRequest {
            epoch: self.cluster.map().epoch,
            ost,
            op,
        };
        self.cluster
            .oss(ost)
            .unwrap()
            .call(&req, payload)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn mark_stale_is_idempotent_and_keeps_a_live_copy() {
    let t = TestCluster::start(3).await;
    match t.create("too-many", 1, 4).await {
        Err(Error::Invalid(m)) => assert!(m.contains('4') && m.contains('3'), "{m}"),
        other => panic!("{other:?}"),
    }
    let a = t.create("f", 2, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.clone().unwrap();
    assert_eq!((l.stripe_count(), l.replicas, l.osts.len()), (2, 2, 4));
    l.validate().unwrap();
    // Held open for writing: the resync worker leaves the file alone.
    let open = t
        .attr(MdsOp::Open {
            ino,
            flags: libc::O_WRONLY,
        })
        .await
        .unwrap();
    assert_eq!(open.layout.unwrap().version, 0, "no stale slot, no bump");

    let seq = t.next_seq();
    let op = MdsOp::MarkStale {
        ino,
        slots: vec![2],
        version: 0,
    };
    let first = match t.call_as(Creds::root(), seq, op.clone()).await.unwrap() {
        MdsResponse::Attr(a) => a,
        other => panic!("{other:?}"),
    };
    let fl = first.layout.clone().unwrap();
    assert_eq!((fl.stale.clone(), fl.version), (vec![2], 1));
    // A retry of the same call gets the recorded answer.
    match t.call_as(Creds::root(), seq, op.clone()).await.unwrap() {
        MdsResponse::Attr(a) => assert_eq!(a, first),
        other => panic!("{other:?}"),
    }
    // Marking it again (a new call) changes nothing.
    let again = t.attr(op).await.unwrap();
    assert_eq!(again.layout, first.layout);
    // Copy 0 of stripe 0 is its last live copy.
    match t
        .attr(MdsOp::MarkStale {
            ino,
            slots: vec![0],
            version: 1,
        })
        .await
    {
        Err(Error::Io(m)) => assert!(m.contains("stripe 0"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.attr(MdsOp::MarkStale {
            ino,
            slots: vec![4],
            version: 1
        })
        .await,
        Err(Error::Invalid(_))
    ));
    let now = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
    assert_eq!(now.layout, first.layout, "refused calls change nothing");

    // Its last copy cannot move off OST osts[0] either.
    match t
        .attr(MdsOp::MoveCopies {
            ino,
            ost: l.osts[0],
        })
        .await
    {
        Err(Error::Invalid(m)) => {
            assert_eq!(m, format!("stripe 0 of inode {ino} has no other copy"))
        }
        other => panic!("{other:?}"),
    }

    // Once the writer is gone, the resync worker takes the file (stripe 0 has no object
    // anywhere, so the copy is a delete) and clears the mark.
    t.call(MdsOp::Release { inos: vec![ino] }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
        let l = a.layout.unwrap();
        if l.stale.is_empty() {
            assert_eq!(l.version, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never resynced: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn move_copies_moves_and_marks_stale() {
    let t = TestCluster::start(3).await;
    let a = t.create("g", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let (from, other) = (l.osts[0], l.osts[1]);
    // Not for ordinary users.
    let user = Creds {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    assert_eq!(
        t.call_as(user, t.next_seq(), MdsOp::MoveCopies { ino, ost: from })
            .await
            .err(),
        Some(Error::NotPermitted)
    );
    // Keep the resync worker off the file while looking at it.
    t.attr(MdsOp::Open {
        ino,
        flags: libc::O_RDWR,
    })
    .await
    .unwrap();
    let moved = t
        .attr(MdsOp::MoveCopies { ino, ost: from })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert_eq!(moved.stale, vec![0]);
    assert_eq!(moved.version, 1);
    assert_eq!(moved.osts[1], other);
    assert!(moved.osts[0] != from && moved.osts[0] != other, "{moved:?}");
    moved.validate().unwrap();
    // Nothing on `from` any more: unchanged.
    let same = t.attr(MdsOp::MoveCopies { ino, ost: from }).await.unwrap();
    assert_eq!(same.layout.unwrap(), moved);
    // An unreplicated file cannot lose its only copy.
    let u = t.create("u", 1, 1).await.unwrap();
    let ost = u.layout.unwrap().osts[0];
    assert!(matches!(
        t.attr(MdsOp::MoveCopies { ino: u.ino, ost }).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn resync_copies_a_stale_copy_from_a_live_one() {
    let t = TestCluster::start(2).await;
    let a = t.create("r", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let (src, dst) = (l.osts[0], l.osts[1]);
    let object = ObjectId { ino, stripe: 0 };
    t.attr(MdsOp::Open {
        ino,
        flags: libc::O_WRONLY,
    })
    .await
    .unwrap();
    // 1.5 MiB and a bit: two chunks for the worker, the last block partial.
    let data: Vec<u8> = (0..(3u32 << 19) + 1000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (r, _) = t
        .oss(
            src,
            OssOp::Write {
                object,
                offset: 0,
                sync: true,
                crc: checksum::crc32c(&data),
                version: 0,
            },
            Bytes::from(data.clone()),
        )
        .await;
    assert!(matches!(r, OssResponse::Done), "{r:?}");
    // Old bytes on the copy that missed the write, longer than the data.
    let junk = vec![0xeeu8; 2 << 20];
    t.oss(
        dst,
        OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: checksum::crc32c(&junk),
            version: 0,
        },
        Bytes::from(junk),
    )
    .await;
    let marked = t
        .attr(MdsOp::MarkStale {
            ino,
            slots: vec![1],
            version: 0,
        })
        .await
        .unwrap();
    assert_eq!(marked.layout.unwrap().version, 1);
    // While the writer holds it open the copy stays stale.
    tokio::time::sleep(super::resync::RESYNC_INTERVAL + Duration::from_millis(500)).await;
    let a = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
    assert_eq!(a.layout.unwrap().stale, vec![1]);
    t.call(MdsOp::Release { inos: vec![ino] }).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = t
            .attr(MdsOp::GetAttr { ino })
            .await
            .unwrap()
            .layout
            .unwrap();
        if l.stale.is_empty() {
            assert_eq!(l.version, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never resynced: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ost in [src, dst] {
        match t.oss(ost, OssOp::Size { object }, Bytes::new()).await.0 {
            OssResponse::Size(s) => assert_eq!(s, Some(data.len() as u64), "OST {ost}"),
            other => panic!("{other:?}"),
        }
        let mut got = Vec::new();
        while got.len() < data.len() {
            let op = OssOp::Read {
                object,
                offset: got.len() as u64,
                len: 1 << 20,
            };
            match t.oss(ost, op, Bytes::new()).await {
                (OssResponse::Data { crcs, .. }, payload) => {
                    assert_eq!(checksum::first_bad_block(&payload, &crcs), None);
                    assert!(!payload.is_empty());
                    got.extend_from_slice(&payload);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(got == data, "copy on OST {ost} differs");
    }
}

#[tokio::test]
async fn one_release_call_drops_an_open_of_each_inode_it_names() {
    use rustre_proto::msg::mds::RELEASE_MAX_INOS;
    let t = TestCluster::start(1).await;
    let mut inos = Vec::new();
    for name in ["a", "b", "c"] {
        let a = t
            .attr(MdsOp::Create {
                parent: ROOT_INO,
                name: name.into(),
                perm: 0o644,
                exclusive: true,
                open_flags: Some(libc::O_RDWR),
                layout: None,
            })
            .await
            .unwrap();
        inos.push(a.ino);
    }
    let (a, b, c) = (inos[0], inos[1], inos[2]);
    // "a" is open twice; all three lose their names and live on as open orphans.
    t.attr(MdsOp::Open {
        ino: a,
        flags: libc::O_RDONLY,
    })
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        t.call(MdsOp::Unlink {
            parent: ROOT_INO,
            name: name.into(),
        })
        .await
        .unwrap();
    }
    // More than the bound is refused whole.
    let too_many = MdsOp::Release {
        inos: vec![b; RELEASE_MAX_INOS + 1],
    };
    assert!(matches!(t.call(too_many).await, Err(Error::Invalid(_))));
    assert_eq!(t.attr(MdsOp::GetAttr { ino: b }).await.unwrap().nlink, 0);
    // One call: both opens of "a", the only open of "b"; "c" stays open.
    t.call(MdsOp::Release {
        inos: vec![a, b, a],
    })
    .await
    .unwrap();
    for gone in [a, b] {
        assert_eq!(
            t.attr(MdsOp::GetAttr { ino: gone }).await,
            Err(Error::NotFound)
        );
    }
    assert_eq!(t.attr(MdsOp::GetAttr { ino: c }).await.unwrap().nlink, 0);
}

//! MGS tests over real TCP on 127.0.0.1, in process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::frame::Service;
use rustre_proto::msg::mgs::{ClusterMap, MgsRequest, MgsResponse, NodeState, OstUuid};
use rustre_proto::msg::Capacity;
use rustre_proto::rpc::client::Connection;
use rustre_proto::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::registry::Registry;
use super::service::Mgs;
use super::{embedded_store_dir, persist, run, NODE_DOWN_AFTER};
use crate::meta::Kv;
use crate::test_cluster::{
    mgs_config as config, start_mgs_on, start_mgs_with as start_with, test_key, TestMgs,
};
use rustre_proto::rpc::server::{Caller, Handler};

const CLUSTER: &str = "testfs";

/// Starts an MGS whose data directory `dir` may hold a registry file of earlier versions.
async fn start_importing(dir: &Path) -> TestMgs {
    let mut cfg = config(dir, CLUSTER);
    cfg.legacy_registry_dir = Some(dir.to_path_buf());
    start_with(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg)
}

async fn start_mgs(dir: &Path) -> TestMgs {
    start_mgs_on(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        dir,
        CLUSTER,
    )
}

async fn connect(addr: &str) -> Arc<Connection> {
    Connection::connect(addr, Service::Mgs, CLUSTER, "mgs-test", &test_key())
        .await
        .unwrap()
}

async fn call(c: &Connection, req: MgsRequest) -> Result<MgsResponse, Error> {
    c.call(&req, Bytes::new()).await.map(|(r, _)| r)
}

async fn map(c: &Connection) -> ClusterMap {
    match call(c, MgsRequest::GetMap).await.unwrap() {
        MgsResponse::Map(m) => m,
        other => panic!("GetMap answered {other:?}"),
    }
}

fn ok_epoch(r: Result<MgsResponse, Error>) -> u64 {
    match r {
        Ok(MgsResponse::Ok { epoch }) => epoch,
        other => panic!("expected Ok, got {other:?}"),
    }
}

fn cap(free: u64) -> Capacity {
    Capacity {
        total_bytes: 1 << 40,
        free_bytes: free,
        avail_bytes: free,
    }
}

/// The disk OST `index` registers from in these tests.
fn disk(index: u32) -> OstUuid {
    OstUuid::from_u128(0xd15c_0000 + u128::from(index))
}

fn register_ost(index: u32, addr: &str, free: u64) -> MgsRequest {
    register_ost_from(index, addr, free, disk(index))
}

fn register_ost_from(index: u32, addr: &str, free: u64, disk: OstUuid) -> MgsRequest {
    MgsRequest::RegisterOst {
        index,
        addr: addr.to_string(),
        capacity: cap(free),
        disk,
    }
}

#[tokio::test]
async fn mgs_register_heartbeat_and_get_map() {
    let dir = tempfile::tempdir().unwrap();
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;

    let m0 = map(&c).await;
    assert!(m0.osts.is_empty() && m0.mds.is_empty());
    assert_eq!(m0.cluster_name, CLUSTER);
    assert_eq!(m0.defaults, config(dir.path(), CLUSTER).defaults);
    let e0 = m0.epoch;

    assert_eq!(
        ok_epoch(call(&c, register_ost(0, "10.0.0.1:9401", 100)).await),
        e0 + 1
    );
    assert_eq!(
        ok_epoch(call(&c, register_ost(1, "10.0.0.2:9401", 200)).await),
        e0 + 2
    );
    let mds = MgsRequest::RegisterMds {
        addr: "10.0.0.9:9402".into(),
    };
    assert_eq!(ok_epoch(call(&c, mds).await), e0 + 3);

    // Heartbeats refresh capacity without moving the epoch.
    let beat = MgsRequest::OstHeartbeat {
        index: 0,
        capacity: cap(50),
    };
    assert_eq!(ok_epoch(call(&c, beat).await), e0 + 3);
    let mds_beat = MgsRequest::MdsHeartbeat {
        addr: "10.0.0.9:9402".into(),
    };
    assert_eq!(ok_epoch(call(&c, mds_beat).await), e0 + 3);
    let m = map(&c).await;
    assert_eq!(m.epoch, e0 + 3);
    assert_eq!(m.osts.len(), 2);
    let ost0 = m.ost(0).unwrap();
    assert_eq!(
        (ost0.addr.as_str(), ost0.state),
        ("10.0.0.1:9401", NodeState::Up)
    );
    assert_eq!(ost0.capacity, cap(50));
    assert_eq!(m.ost(1).unwrap().capacity, cap(200));
    assert_eq!(m.mds_up().count(), 1);

    // Strangers are told to register.
    let stranger = MgsRequest::OstHeartbeat {
        index: 7,
        capacity: cap(1),
    };
    assert!(matches!(call(&c, stranger).await, Ok(MgsResponse::Unknown)));
    let stranger = MgsRequest::MdsHeartbeat {
        addr: "10.0.0.8:1".into(),
    };
    assert!(matches!(call(&c, stranger).await, Ok(MgsResponse::Unknown)));

    // Another address claiming an OST that is up is refused, and nothing changes.
    let err = call(&c, register_ost(0, "10.0.0.3:9401", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m.contains("conflict")),
        "{err:?}"
    );
    // Bad input is refused too.
    assert!(call(&c, register_ost(2, "", 1)).await.is_err());
    let with_payload = c
        .call::<_, MgsResponse>(&MgsRequest::GetMap, Bytes::from_static(b"x"))
        .await;
    assert!(
        matches!(with_payload, Err(Error::Invalid(_))),
        "{with_payload:?}"
    );
    let m = map(&c).await;
    assert_eq!(m.epoch, e0 + 3);
    assert_eq!(m.ost(0).unwrap().addr, "10.0.0.1:9401");

    mgs.stop().await.unwrap();
}

#[tokio::test]
async fn mgs_marks_silent_node_down_and_fences_it_until_it_registers() {
    let dir = tempfile::tempdir().unwrap();
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;

    ok_epoch(call(&c, register_ost(0, "10.0.0.1:9401", 1)).await);
    ok_epoch(call(&c, register_ost(1, "10.0.0.2:9401", 1)).await);
    let registered_at = std::time::Instant::now();
    let e1 = ok_epoch(call(&c, MgsRequest::RegisterMds { addr: "m:1".into() }).await);
    // The MDS keeps beating; the OSTs fall silent.
    let beater = {
        let c = c.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let beat = MgsRequest::MdsHeartbeat { addr: "m:1".into() };
                assert!(matches!(call(&c, beat).await, Ok(MgsResponse::Ok { .. })));
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let m = map(&c).await;
    assert_eq!(
        m.ost(0).unwrap().state,
        NodeState::Up,
        "one missed beat is not enough"
    );
    assert_eq!(m.epoch, e1);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = map(&c).await;
        if m.osts.iter().all(|o| o.state == NodeState::Down) {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "OSTs never marked down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        registered_at.elapsed() >= NODE_DOWN_AFTER,
        "marked down too early"
    );
    assert_eq!(m.mds[0].state, NodeState::Up, "a beating MDS stays up");
    // The two OSTs went silent a few microseconds apart: one or two sweeps caught them.
    assert!(
        m.epoch == e1 + 1 || m.epoch == e1 + 2,
        "one new epoch per sweep: {e1} -> {}",
        m.epoch
    );
    let e_down = m.epoch;
    beater.abort();

    // Fenced: its beats do not count until it registers again.
    let beat = MgsRequest::OstHeartbeat {
        index: 0,
        capacity: cap(9),
    };
    assert!(matches!(
        call(&c, beat.clone()).await,
        Ok(MgsResponse::Unknown)
    ));
    assert_eq!(map(&c).await.ost(0).unwrap().state, NodeState::Down);
    let e2 = ok_epoch(call(&c, register_ost(0, "10.0.0.1:9401", 9)).await);
    assert_eq!(e2, e_down + 1);
    assert_eq!(ok_epoch(call(&c, beat).await), e2);
    // A down OST's index may move to a new address.
    let e3 = ok_epoch(call(&c, register_ost(1, "10.0.0.7:9401", 9)).await);
    assert_eq!(e3, e2 + 1);
    let m = map(&c).await;
    assert_eq!(m.ost(0).unwrap().state, NodeState::Up);
    assert_eq!(m.ost(1).unwrap().addr, "10.0.0.7:9401");
    assert_eq!(m.ost(1).unwrap().state, NodeState::Up);
    assert_eq!(m.epoch, e3);

    mgs.stop().await.unwrap();
}

#[tokio::test]
async fn mgs_registry_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    ok_epoch(call(&c, register_ost(0, "10.0.0.1:9401", 10)).await);
    ok_epoch(call(&c, register_ost(5, "10.0.0.2:9401", 20)).await);
    let mds = MgsRequest::RegisterMds { addr: "m:1".into() };
    let before = ok_epoch(call(&c, mds).await);

    // A second MGS cannot open the same directory while the first runs.
    let second = start_mgs(dir.path()).await;
    let err = second.task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");

    mgs.stop().await.unwrap();
    drop(c);

    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    let m = map(&c).await;
    assert!(m.epoch > before, "epoch went from {before} to {}", m.epoch);
    let listed: Vec<_> = m
        .osts
        .iter()
        .map(|o| (o.index, o.addr.as_str(), o.state))
        .collect();
    assert_eq!(
        listed,
        [
            (0, "10.0.0.1:9401", NodeState::Down),
            (5, "10.0.0.2:9401", NodeState::Down)
        ]
    );
    assert_eq!(m.ost(5).unwrap().capacity, cap(20));
    assert_eq!(
        (m.mds[0].addr.as_str(), m.mds[0].state),
        ("m:1", NodeState::Down)
    );

    // Known but down: must register again before it counts.
    let beat = MgsRequest::OstHeartbeat {
        index: 0,
        capacity: cap(1),
    };
    assert!(matches!(call(&c, beat).await, Ok(MgsResponse::Unknown)));
    let e = ok_epoch(call(&c, register_ost(0, "10.0.0.1:9401", 10)).await);
    assert_eq!(e, m.epoch + 1);
    let m = map(&c).await;
    assert_eq!(m.ost(0).unwrap().state, NodeState::Up);
    assert_eq!(m.ost(5).unwrap().state, NodeState::Down);
    mgs.stop().await.unwrap();
    drop(c);

    // And once more: the epoch keeps growing across restarts.
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    assert!(map(&c).await.epoch > e);
    mgs.stop().await.unwrap();
}

#[tokio::test]
async fn mgs_binds_each_ost_to_its_disk_durably_until_an_administrator_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (OstUuid::from_u128(0xa), OstUuid::from_u128(0xb));
    let wrong = |r: Result<MgsResponse, Error>, want: OstUuid| match r {
        Ok(MgsResponse::WrongDisk { bound }) => assert_eq!(bound, want),
        other => panic!("expected WrongDisk, got {other:?}"),
    };
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    let e = ok_epoch(call(&c, register_ost_from(2, "h:1", 1, a)).await);
    wrong(call(&c, register_ost_from(2, "h:1", 1, b)).await, a);
    assert_eq!(map(&c).await.epoch, e, "a refusal changes nothing");
    // Replacing the disk of an OST that is up, or of an unknown one, is refused.
    let r = call(&c, MgsRequest::ReplaceOst { index: 2 }).await;
    assert!(
        matches!(&r, Err(Error::Invalid(m)) if m.contains("is up")),
        "{r:?}"
    );
    let r = call(&c, MgsRequest::ReplaceOst { index: 9 }).await;
    assert!(
        matches!(&r, Err(Error::Invalid(m)) if m.contains("not in the registry")),
        "{r:?}"
    );
    mgs.stop().await.unwrap();
    drop(c);

    // The binding survives a restart (every OST is down then).
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    wrong(call(&c, register_ost_from(2, "h:1", 1, b)).await, a);
    assert_eq!(map(&c).await.ost(2).unwrap().state, NodeState::Down);
    let before = map(&c).await.epoch;
    assert!(ok_epoch(call(&c, MgsRequest::ReplaceOst { index: 2 }).await) > before);
    mgs.stop().await.unwrap();
    drop(c);

    // So does its release: the next registration binds the disk it offers.
    let mgs = start_mgs(dir.path()).await;
    let c = connect(&mgs.addr).await;
    ok_epoch(call(&c, register_ost_from(2, "h:1", 1, b)).await);
    assert_eq!(map(&c).await.ost(2).unwrap().state, NodeState::Up);
    wrong(call(&c, register_ost_from(2, "h:1", 1, a)).await, b);
    mgs.stop().await.unwrap();
}

#[tokio::test]
async fn mgs_refuses_bad_config_damaged_or_foreign_registry() {
    let dir = tempfile::tempdir().unwrap();
    let listener = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };

    let mut bad = config(dir.path(), CLUSTER);
    bad.defaults.stripe_size = 1000;
    let (_tx, rx) = watch::channel(false);
    assert!(matches!(
        run(bad, listener().await, rx).await,
        Err(Error::Invalid(_))
    ));
    let (_tx, rx) = watch::channel(false);
    let bad = config(dir.path(), "");
    assert!(matches!(
        run(bad, listener().await, rx).await,
        Err(Error::Invalid(_))
    ));

    // A registry of another cluster.
    let mgs = start_mgs_on(listener().await, dir.path(), "otherfs");
    mgs.stop().await.unwrap();
    let err = start_mgs(dir.path()).await.task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("otherfs"), "{err}");

    // A damaged registry: refused, never silently replaced.
    let store = embedded_store_dir(dir.path());
    let chunk = crate::schema::mgs_registry_chunk(0);
    let kv = Kv::open_embedded(&store).unwrap();
    kv.transact(|tx| {
        tx.set(&chunk, b"garbage");
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(kv);
    let err = start_mgs(dir.path()).await.task.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    let kv = Kv::open_embedded(&store).unwrap();
    assert_eq!(
        kv.transact(|tx| tx.get(&chunk)).unwrap(),
        Some(b"garbage".to_vec())
    );
}

#[tokio::test]
async fn mgs_imports_the_registry_file_of_earlier_versions_once() {
    let dir = tempfile::tempdir().unwrap();
    let old = persist::RegistryFile {
        cluster: CLUSTER.into(),
        epoch: 41,
        osts: vec![persist::SavedOst {
            index: 2,
            addr: "10.0.0.1:9401".into(),
            capacity: cap(5),
            disk: None,
        }],
        mds: vec!["m:1".into()],
    };
    crate::records::write_record(
        dir.path(),
        persist::REGISTRY_FILE,
        persist::REGISTRY_MAGIC,
        &old,
    )
    .unwrap();
    let mgs = start_importing(dir.path()).await;
    let c = connect(&mgs.addr).await;
    let m = map(&c).await;
    assert!(
        m.epoch > 41,
        "the epoch carries on from the file: {}",
        m.epoch
    );
    assert_eq!(m.ost(2).unwrap().state, NodeState::Down);
    assert_eq!(m.ost(2).unwrap().capacity, cap(5));
    assert_eq!(m.mds[0].addr, "m:1");
    assert!(!dir.path().join(persist::REGISTRY_FILE).exists());
    assert!(dir.path().join(persist::IMPORTED_REGISTRY_FILE).exists());
    let first = m.epoch;
    mgs.stop().await.unwrap();
    drop(c);

    // Later starts use the store; a registry file that reappears is ignored.
    std::fs::rename(
        dir.path().join(persist::IMPORTED_REGISTRY_FILE),
        dir.path().join(persist::REGISTRY_FILE),
    )
    .unwrap();
    let mgs = start_importing(dir.path()).await;
    let c = connect(&mgs.addr).await;
    assert!(map(&c).await.epoch > first);
    assert!(dir.path().join(persist::REGISTRY_FILE).exists());
    mgs.stop().await.unwrap();
}

/// Two MGS over one store (as two MGS over one FoundationDB cluster) registering nodes at
/// the same time: every epoch either hands out is unique, and the store ends at the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mgs_over_one_store_never_hand_out_the_same_epoch() {
    const NODES: u32 = 40;
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open_embedded(dir.path()).unwrap();
    let defaults = config(dir.path(), CLUSTER).defaults;
    let a = Arc::new(Mgs::new(
        CLUSTER.into(),
        defaults,
        kv.clone(),
        Registry::new(),
    ));
    let b = Arc::new(Mgs::new(
        CLUSTER.into(),
        defaults,
        kv.clone(),
        Registry::new(),
    ));
    a.save_live().await.unwrap();
    b.save_live().await.unwrap();
    let register = |mgs: Arc<Mgs>, first: u32| {
        tokio::spawn(async move {
            let mut epochs = Vec::new();
            for index in first..first + NODES {
                let req = register_ost(index, &format!("10.0.0.1:{index}"), 1);
                let reply = mgs
                    .clone()
                    .handle(req, Bytes::new(), Caller::plain(([127, 0, 0, 1], 0).into()))
                    .await;
                epochs.push(ok_epoch(reply.result));
            }
            epochs
        })
    };
    let (ea, eb) = (register(a.clone(), 0), register(b.clone(), 1000));
    let (ea, eb) = (ea.await.unwrap(), eb.await.unwrap());
    assert!(ea.windows(2).all(|w| w[0] < w[1]), "{ea:?}");
    assert!(eb.windows(2).all(|w| w[0] < w[1]), "{eb:?}");
    let mut all: Vec<u64> = ea.iter().chain(&eb).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        2 * NODES as usize,
        "an epoch was handed out twice"
    );
    let stored = kv.transact(persist::load_registry).unwrap().unwrap();
    assert_eq!(stored.epoch, *all.last().unwrap());
    a.stop().await;
    b.stop().await;
}

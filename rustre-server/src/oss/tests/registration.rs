//! The OSS with a real MGS: registration through MGS outages, fencing after the lease, bad
//! configurations and foreign directories, and disk identity (a wiped directory is refused
//! and serves nothing until `ReplaceOst`).

use super::*;

#[tokio::test]
async fn oss_registers_survives_mgs_outage_and_reregisters() {
    let mgs_dir = tempfile::tempdir().unwrap();
    // The OSS starts on new directories while no MGS is up: it serves nothing (the MGS never
    // accepted their disks), and changes nothing.
    let mgs_addr = dead_addr().await;
    let mut oss = start_oss_with(&[0, 3], &mgs_addr, OSS_LEASE).await;
    let c = connect_at(&oss.addr, 0).await;
    let r = try_write(&c, 3, obj(1, 0), 0, b"not without an MGS").await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    let r = call(&c, 3, OssOp::Size { object: obj(1, 0) }, Bytes::new()).await;
    assert!(
        matches!(&r, Err(Error::Unavailable(m)) if m.contains("serves nothing")),
        "{r:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !oss.task.is_finished(),
        "the OSS must not exit without an MGS"
    );

    let both_up = |m: &ClusterMap| {
        [0, 3]
            .iter()
            .all(|&i| m.ost(i).is_some_and(|o| o.state == NodeState::Up))
    };
    let mgs = start_mgs_on(
        TcpListener::bind(&mgs_addr).await.unwrap(),
        mgs_dir.path(),
        CLUSTER,
    );
    let m = wait_for_map(&mgs_addr, "both OSTs registered", both_up).await;
    let ost = m.ost(3).unwrap();
    assert_eq!(ost.addr, oss.addr);
    assert!(ost.capacity.total_bytes > 0, "capacity comes from statvfs");
    let first_epoch = m.epoch;
    let c = connect_at(&oss.addr, first_epoch).await;
    write(&c, 3, obj(1, 0), 0, b"served with an MGS").await;
    mgs.stop().await.unwrap();

    // The MGS is down for a while; the OSS keeps serving reads, even restarted: the MGS
    // accepted its disks, and that is on record in their identity files.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(read(&c, 3, obj(1, 0), 0, 4096).await, b"served with an MGS");
    oss.restart(|_| {}).await;
    let c = connect_at(&oss.addr, first_epoch).await;
    assert_eq!(read(&c, 3, obj(1, 0), 0, 4096).await, b"served with an MGS");
    let r = try_write(&c, 3, obj(1, 0), 0, b"not without an MGS").await;
    assert!(matches!(r, Err(Error::Fenced(_))), "{r:?}");

    // A restarted MGS lists the OSTs as down; their next beats are answered Unknown and
    // the OSS registers both again.
    let mgs = start_mgs_on(
        TcpListener::bind(&mgs_addr).await.unwrap(),
        mgs_dir.path(),
        CLUSTER,
    );
    let m = wait_for_map(&mgs_addr, "both OSTs registered again", both_up).await;
    assert!(
        m.epoch > first_epoch + 1,
        "epoch {} after {first_epoch}",
        m.epoch
    );
    assert_eq!(m.ost(0).unwrap().addr, oss.addr);
    // A caller with the map from before the re-registration must refresh it.
    let r = call(&c, 3, OssOp::Size { object: obj(1, 0) }, Bytes::new()).await;
    assert!(
        matches!(r, Err(Error::OldEpoch { caller, server }) if caller == first_epoch && server > first_epoch),
        "{r:?}"
    );
    let c = connect_at(&oss.addr, m.epoch).await;
    write(&c, 3, obj(1, 0), 0, b"SERVED").await;
    assert_eq!(read(&c, 3, obj(1, 0), 0, 4096).await, b"SERVED with an MGS");
    mgs.stop().await.unwrap();
    oss.stop().await;
}

#[tokio::test]
async fn oss_fenced_after_losing_the_mgs_for_its_lease() {
    let lease = Duration::from_millis(2000);
    let mut oss = start_cluster_with(&[0], lease).await;
    let c = connect(&oss).await;
    let o = obj(11, 0);
    write(&c, 0, o, 0, b"before").await;
    // Older maps are refused, whatever they ask.
    let old = connect_at(&oss.addr, c.epoch - 1).await;
    for op in [
        OssOp::StatFs,
        OssOp::Size { object: o },
        write_op(o, 0, b"x"),
    ] {
        let payload = if matches!(op, OssOp::Write { .. }) {
            Bytes::from_static(b"x")
        } else {
            Bytes::new()
        };
        let r = call(&old, 0, op, payload).await;
        assert!(matches!(r, Err(Error::OldEpoch { .. })), "{r:?}");
    }

    // The MGS goes away: once the lease has run out, changes are fenced.
    oss.mgs.take().unwrap().stop().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match try_write(&c, 0, o, 0, b"during").await {
            Ok(()) => {}
            Err(Error::Fenced(_)) => break,
            Err(e) => panic!("write failed with {e:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "never fenced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fenced = |r: Result<(OssResponse, Bytes), Error>| {
        assert!(matches!(r, Err(Error::Fenced(_))), "{r:?}");
    };
    fenced(call(&c, 0, truncate(o, 1), Bytes::new()).await);
    fenced(call(&c, 0, OssOp::Delete { object: o }, Bytes::new()).await);
    let many = OssOp::DeleteMany { objects: vec![o] };
    fenced(call(&c, 0, many, Bytes::new()).await);
    // Everything else is still served.
    assert_eq!(read(&c, 0, o, 0, 4096).await.len(), 6);
    assert_eq!(size(&c, 0, o).await, Some(6));
    assert!(scrub(&c, 0, o).await.is_empty());
    assert_eq!(list(&c, 0, None, 10).await.0.len(), 1);
    done(&c, 0, OssOp::Sync { object: o }).await;
    assert!(call(&c, 0, OssOp::StatFs, Bytes::new()).await.is_ok());

    // A new MGS on the same address: the OSS registers again, and serves changes again to
    // callers with the new map.
    let mgs = start_mgs_on(
        TcpListener::bind(&oss.mgs_addr).await.unwrap(),
        oss.mgs_dir.as_ref().unwrap().path(),
        CLUSTER,
    );
    let m = wait_for_map(&oss.mgs_addr, "the OST registered again", |m| {
        m.ost(0).is_some_and(|o| o.state == NodeState::Up)
    })
    .await;
    let c = connect_at(&oss.addr, m.epoch).await;
    write(&c, 0, o, 0, b"after!").await;
    assert_eq!(read(&c, 0, o, 0, 4096).await, b"after!");
    oss.mgs = Some(mgs);
    oss.stop().await;
}

#[tokio::test]
async fn oss_refuses_bad_config_and_foreign_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ost");
    let cfg = |osts: Vec<(u32, PathBuf)>| OssConfig {
        mgs_addr: "127.0.0.1:1".into(),
        advertise_addr: "127.0.0.1:2".into(),
        cluster: CLUSTER.into(),
        key: test_key(),
        osts,
    };
    let start = |cfg: OssConfig| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_tx, rx) = watch::channel(false);
        run(cfg, listener, rx).await
    };
    assert!(start(cfg(vec![])).await.is_err());
    assert!(
        start(cfg(vec![(1, dir.clone()), (1, tmp.path().join("b"))]))
            .await
            .is_err()
    );
    let same_dir = start(cfg(vec![(1, dir.clone()), (2, dir.join("."))])).await;
    assert!(
        matches!(&same_dir, Err(Error::Invalid(m)) if m.contains("two OSTs")),
        "{same_dir:?}"
    );

    // The directory now belongs to OST 1 of this cluster (written by the attempt above).
    let oss = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(cfg(vec![(1, dir.clone())]), listener, rx));
        // A finished handshake means it is serving, so it holds the directory.
        connect_at(&addr, 0).await;
        (stop, task)
    };
    // While served, a second OSS cannot open it.
    let busy = tokio::time::timeout(Duration::from_secs(10), start(cfg(vec![(1, dir.clone())])))
        .await
        .expect("a second OSS on a locked directory must fail, not serve");
    assert!(
        matches!(&busy, Err(Error::Io(m)) if m.contains("in use")),
        "{busy:?}"
    );
    oss.0.send_replace(true);
    oss.1.await.unwrap().unwrap();
    // Served as another OST, it is refused.
    let other = start(cfg(vec![(2, dir.clone())])).await;
    assert!(
        matches!(&other, Err(Error::Invalid(m)) if m.contains("OST 1")),
        "{other:?}"
    );
}

/// The MGS's answer to `req`.
async fn mgs_call(addr: &str, req: MgsRequest) -> Result<MgsResponse, Error> {
    let c = Connection::connect(addr, Service::Mgs, CLUSTER, "oss-test", &test_key()).await?;
    c.call(&req, Bytes::new()).await.map(|(r, _)| r)
}

#[tokio::test]
async fn a_wiped_ost_is_refused_and_serves_nothing_until_its_disk_is_replaced() {
    let mut oss = start_oss(&[0, 1]).await;
    let c = connect(&oss).await;
    let o = obj(7, 0);
    write(&c, 0, o, 0, b"only here").await;
    write(&c, 1, o, 0, b"on OST 1").await;
    // Replacing the disk of an OST that is up is refused.
    let r = mgs_call(&oss.mgs_addr, MgsRequest::ReplaceOst { index: 0 }).await;
    assert!(
        matches!(&r, Err(Error::Invalid(m)) if m.contains("OST 0 is up")),
        "{r:?}"
    );

    // OST 0's directory is wiped while its OSS is down: it comes back as a new disk.
    oss.restart(|dirs| std::fs::remove_dir_all(&dirs[0]).unwrap())
        .await;
    let down = |m: &ClusterMap| m.ost(0).is_some_and(|o| o.state == NodeState::Down);
    let m = wait_for_map(&oss.mgs_addr, "OST 0 marked down", down).await;
    // Refused for good, not just late: it stays down over several beats, and serves
    // nothing (a read would hand out a hole where "only here" was).
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let m2 = get_map(&oss.mgs_addr).await.unwrap();
    assert!(down(&m2), "{m2:?}");
    assert!(m2.ost(1).is_some_and(|o| o.state == NodeState::Up));
    let c = connect_at(&oss.addr, m2.epoch).await;
    let r = call(&c, 0, OssOp::Size { object: o }, Bytes::new()).await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    let r = call(&c, 0, OssOp::StatFs, Bytes::new()).await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    // OST 1, whose disk is the bound one, serves on.
    assert_eq!(read(&c, 1, o, 0, 4096).await, b"on OST 1");

    // The administrator accepts the new disk: it registers by itself and serves (empty).
    let r = mgs_call(&oss.mgs_addr, MgsRequest::ReplaceOst { index: 0 }).await;
    assert!(
        matches!(r, Ok(MgsResponse::Ok { epoch }) if epoch > m.epoch),
        "{r:?}"
    );
    let up = |m: &ClusterMap| m.ost(0).is_some_and(|o| o.state == NodeState::Up);
    let m = wait_for_map(&oss.mgs_addr, "the new disk registered", up).await;
    let c = connect_at(&oss.addr, m.epoch).await;
    assert!(read(&c, 0, o, 0, 4096).await.is_empty());
    write(&c, 0, o, 0, b"refilled").await;
    assert_eq!(read(&c, 0, o, 0, 4096).await, b"refilled");

    // The old disk is the stranger now: a registration offering it is refused.
    let old = MgsRequest::RegisterOst {
        index: 0,
        addr: oss.addr.clone(),
        capacity: Default::default(),
        disk: rustre_proto::msg::mgs::OstUuid::from_u128(1),
    };
    let r = mgs_call(&oss.mgs_addr, old).await;
    assert!(matches!(r, Ok(MgsResponse::WrongDisk { .. })), "{r:?}");
    oss.stop().await;
}

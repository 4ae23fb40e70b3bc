//! A client's session with the MDS when the MDS evicts it (its lease ran out while the MDS or
//! the network was away for longer than the lease): the client's next open or create
//! replaces the session at once and succeeds, instead of failing with ESTALE until the
//! renewal, a third of the lease later, notices (docs/mount.md, "Sessions").

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::frame::Service;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
use rustre_proto::msg::{Creds, ROOT_INO};
use rustre_proto::rpc::client::Peer;
use rustre_server::local::{self, LocalConfig};
use tokio::sync::watch;

/// Session lease of the test's MDS: long, so that the renewal (every third of it) cannot
/// be what repairs the session during the test.
const LEASE_MS: u64 = 60_000;

async fn connect(cfg: &ClientConfig) -> Arc<Client> {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(cfg).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_client_opens_and_creates_at_once_in_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_stop, rx) = watch::channel(false);
    let cfg = LocalConfig {
        data_dir: dir.path().to_path_buf(),
        osts: 1,
        mds: 1,
        store: common::test_store("session"),
        mgs_listen: "127.0.0.1:0".parse().unwrap(),
        cluster: "session".into(),
        key: common::test_key(),
        defaults: Default::default(),
        durable: false,
        session_lease_ms: LEASE_MS,
        inline_max: rustre_server::mds::DEFAULT_INLINE_MAX,
    };
    let running = local::start(cfg, rx).await.unwrap();
    let client_cfg = ClientConfig {
        mgs_addr: running.mgs_addr.to_string(),
        cluster: "session".into(),
        key: common::test_key(),
        client_name: "evicted".into(),
    };
    let c = connect(&client_cfg).await;
    let r = Creds::root();
    let held = c
        .create_file(&r, ROOT_INO, "held", 0o644, libc::O_RDWR, None)
        .await
        .unwrap();
    c.write_file(held.fh, 0, Bytes::from_static(b"before"))
        .await
        .unwrap();
    c.flush_file(held.fh).await.unwrap();

    // The MDS ends the client's session, as its reaper does when the lease runs out.
    let evicted = c.session();
    let mds = Peer::new(
        &running.mds_addrs[0].to_string(),
        Service::Mds,
        "session",
        "reaper",
        &common::test_key(),
        1,
    );
    let end = MdsRequest {
        creds: Creds::root(),
        session: evicted,
        seq: 0,
        op: MdsOp::CloseSession,
    };
    let (ended, _) = mds
        .call::<_, MdsResponse>(&end, Bytes::new())
        .await
        .unwrap();
    assert!(matches!(ended, MdsResponse::Done), "{ended:?}");

    // At once (the renewal is 20 s away): a create and an open work, in a new session.
    let created = c
        .create_file(&r, ROOT_INO, "after", 0o644, libc::O_RDWR, None)
        .await
        .unwrap_or_else(|e| panic!("create after the eviction: {e}"));
    assert_ne!(c.session(), evicted, "a new session");
    c.write_file(created.fh, 0, Bytes::from_static(b"after"))
        .await
        .unwrap();
    c.release_file(created.fh).await.unwrap();
    let reopened = c
        .open_file(&r, held.attr.ino, libc::O_RDONLY)
        .await
        .unwrap_or_else(|e| panic!("open after the eviction: {e}"));
    let read = c.read_file(reopened.fh, 0, 16).await.unwrap();
    assert_eq!(&read[..], b"before");
    c.release_file(reopened.fh).await.unwrap();
    // The handle opened in the evicted session is evicted with it.
    let e = c.write_file(held.fh, 6, Bytes::from_static(b"more")).await;
    assert!(e.is_err(), "a write through an evicted handle: {e:?}");
}

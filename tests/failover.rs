//! Stateless MDS failover: two MDS share one store; one dies in the middle of a storm of
//! creates, renames, mkdirs and unlinks. No call may fail, and the final namespace must be
//! exactly what the workers did (a retried call that had committed returns its recorded
//! result instead of EEXIST/ENOENT). The store is the embedded one, or FoundationDB when
//! `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{Creds, ROOT_INO};
use rustre_server::local::{self, LocalConfig};
use tokio::sync::watch;

const WORKERS: usize = 8;
const FILES_PER_WORKER: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_mds_mid_storm_loses_nothing_and_fails_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let (_stop, rx) = watch::channel(false);
    let cfg = LocalConfig {
        data_dir: dir.path().to_path_buf(),
        osts: 1,
        mds: 2,
        store: common::test_store("failover"),
        mgs_listen: "127.0.0.1:0".parse().unwrap(),
        cluster: "failover".into(),
        defaults: Default::default(),
        durable: true,
        session_lease_ms: 30_000,
    };
    let running = local::start(cfg, rx).await.unwrap();
    let client_cfg = ClientConfig {
        mgs_addr: running.mgs_addr.to_string(),
        cluster: "failover".into(),
        client_name: "storm".into(),
    };
    let client = wait_for_cluster(&client_cfg).await;
    let r = Creds::root();

    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = Creds::root();
            let d = c.mkdir(&r, ROOT_INO, &format!("w{w}"), 0o755).await?.ino;
            for i in 0..FILES_PER_WORKER {
                c.create(&r, d, &format!("f{i}"), 0o644, true, None, None)
                    .await?;
                c.rename(&r, d, &format!("f{i}"), d, &format!("g{i}"), 0)
                    .await?;
                if i % 3 == 0 {
                    c.mkdir(&r, d, &format!("d{i}"), 0o755).await?;
                }
                if i % 5 == 0 {
                    c.unlink(&r, d, &format!("g{i}")).await?;
                }
            }
            Ok::<_, rustre_proto::Error>(())
        }));
    }
    // Let the storm run on both MDS, then kill one of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.mds_kill[0].send(true).unwrap();
    for t in tasks {
        t.await.unwrap().expect("an error reached the application");
    }

    for w in 0..WORKERS {
        let d = client
            .lookup(&r, ROOT_INO, &format!("w{w}"))
            .await
            .unwrap()
            .ino;
        let mut names: Vec<String> = client
            .readdir_all(&r, d, false)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        let mut expected: Vec<String> = (0..FILES_PER_WORKER)
            .filter(|i| i % 5 != 0)
            .map(|i| format!("g{i}"))
            .chain(
                (0..FILES_PER_WORKER)
                    .filter(|i| i % 3 == 0)
                    .map(|i| format!("d{i}")),
            )
            .collect();
        expected.sort();
        assert_eq!(names, expected, "namespace of worker {w}");
    }
}

async fn wait_for_cluster(cfg: &ClientConfig) -> Arc<Client> {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(cfg).await {
            let map = c.cluster().refresh().await.unwrap();
            let mds_up = map.mds.iter().filter(|m| m.state == NodeState::Up).count();
            if mds_up == 2 && map.osts.iter().any(|o| o.state == NodeState::Up) {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster did not come up");
}

//! An in-process cluster (MGS, MDS, OSTs on loopback TCP; the embedded store, or FoundationDB
//! when `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on) and a client library
//! connected to it, for the tests of metadata operations.

use std::sync::Arc;
use std::time::Duration;

use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{Creds, Ino, LayoutSpec, ROOT_INO};
use rustre_server::local::{self, LocalConfig};
use tokio::sync::watch;

/// An in-process cluster (2 OSTs, durable MDS) and a client of it.
pub(crate) struct TestCluster {
    pub(crate) client: Arc<Client>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) mgs: String,
    /// The first MDS's address.
    pub(crate) mds: String,
    _stop: watch::Sender<bool>,
}

/// [`start_with`] one MDS.
pub(crate) async fn start(lease_ms: u64) -> TestCluster {
    start_with(lease_ms, 1).await
}

/// [`start`] with data on the MDS off: every file's bytes in its objects (the tests of
/// what reads and writes of objects do).
#[allow(dead_code)] // not every test binary uses it
pub(crate) async fn start_objects_only(lease_ms: u64) -> TestCluster {
    start_inline(lease_ms, 1, 0).await
}

/// A cluster of `mds` MDS with session lease `lease_ms`, in a temporary directory.
pub(crate) async fn start_with(lease_ms: u64, mds: u32) -> TestCluster {
    let inline_max = super::test_inline_max().unwrap_or(rustre_server::mds::DEFAULT_INLINE_MAX);
    start_inline(lease_ms, mds, inline_max).await
}

/// [`start_with`] whose MDS keep at most `inline_max` bytes of a file (0: none).
async fn start_inline(lease_ms: u64, mds: u32, inline_max: u32) -> TestCluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let (stop, rx) = watch::channel(false);
    let cfg = LocalConfig {
        data_dir: dir.path().to_path_buf(),
        osts: 2,
        mds,
        store: super::test_store("metadata"),
        mgs_listen: "127.0.0.1:0".parse().unwrap(),
        cluster: "test".into(),
        key: super::test_key(),
        defaults: Default::default(),
        durable: true,
        session_lease_ms: lease_ms,
        inline_max,
    };
    let running = local::start(cfg, rx).await.unwrap();
    let mgs = running.mgs_addr.to_string();
    let client = connect(&mgs).await;
    TestCluster {
        client,
        dir,
        mgs,
        mds: running.mds_addrs[0].to_string(),
        _stop: stop,
    }
}

/// A client of the cluster of `mgs`, once both OSTs are up.
pub(crate) async fn connect(mgs: &str) -> Arc<Client> {
    let cfg = ClientConfig {
        mgs_addr: mgs.to_string(),
        cluster: "test".into(),
        key: super::test_key(),
        client_name: "test".into(),
    };
    // The MDS and OSTs register a moment after the MGS is up.
    for _ in 0..100 {
        if let Ok(c) = Client::connect(&cfg).await {
            let map = c.refresh_map().await.unwrap();
            let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
            if up == 2 {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster did not come up");
}

/// A new file `name` in the root holding `data`, written through an open of its own and
/// closed; on OST 0, in stripes of `stripe` bytes (`None`: the default). Its inode.
pub(crate) async fn new_file_on_ost0(
    c: &Arc<Client>,
    name: &str,
    stripe: Option<u32>,
    data: &[u8],
) -> Ino {
    let spec = LayoutSpec {
        osts: Some(vec![0]),
        stripe_size: stripe,
        ..Default::default()
    };
    let flags = libc::O_WRONLY | libc::O_EXCL;
    let f = c
        .create_file(&root(), ROOT_INO, name, 0o644, flags, Some(spec))
        .await
        .unwrap();
    c.write_file(f.fh, 0, data.to_vec().into()).await.unwrap();
    c.release_file(f.fh).await.unwrap();
    f.attr.ino
}

/// Looks `name` in the root up through `c` until `c`'s metadata cache holds `ino`'s
/// attributes (a lookup answered while the change feed does not vouch for the cache is not
/// kept); false if that takes over 5 s.
pub(crate) async fn learn(c: &Arc<Client>, name: &str, ino: Ino) -> bool {
    for _ in 0..100 {
        c.lookup(&root(), ROOT_INO, name).await.unwrap();
        if c.cached_getattr(ino).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until `c`'s metadata cache is trusted (its change feeds answered once: the first
/// answer of a feed voids whatever the cache held before it), asking the root's attributes
/// until they are kept; false if that takes over 5 s. A test that checks what a change's
/// answer left in the cache makes the change after this, or the feed's first answer may
/// void it.
pub(crate) async fn until_trusted(c: &Arc<Client>) -> bool {
    for _ in 0..100 {
        c.getattr(&root(), ROOT_INO).await.unwrap();
        if c.cached_getattr(ROOT_INO).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls `f` every 50 ms, without blocking the runtime, until true or `limit` passes.
pub(crate) async fn wait_async(limit: Duration, f: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

pub(crate) fn root() -> Creds {
    Creds::root()
}

/// User `uid` in its own group `uid`.
pub(crate) fn user(uid: u32) -> Creds {
    Creds {
        uid,
        gid: uid,
        groups: vec![],
    }
}

/// The names a listing of directory `ino` hands `creds` ("." and ".." left out), in order.
pub(crate) async fn listed_names(c: &Arc<Client>, creds: &Creds, ino: u64) -> Vec<String> {
    let fh = c.open_dir(creds, ino).await.unwrap();
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let page = c.read_dir(fh, offset).await.unwrap();
        let Some(last) = page.last() else { break };
        offset = last.offset;
        names.extend(
            page.into_iter()
                .map(|l| l.entry.name)
                .filter(|n| n != "." && n != ".."),
        );
    }
    c.release_dir(fh);
    names
}

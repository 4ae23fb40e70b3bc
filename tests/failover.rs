//! Stateless MDS failover: two MDS share one store; one dies in the middle of a storm of
//! creates, renames, mkdirs and unlinks. No call may fail, and the final namespace must be
//! exactly what the workers did (a retried call that had committed returns its recorded
//! result instead of EEXIST/ENOENT). The store is the embedded one, or FoundationDB when
//! `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{Creds, ROOT_INO};
use rustre_proto::sync::lock;
use rustre_server::local::{self, LocalConfig};
use rustre_server::mds::INO_BATCH;
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
        key: common::test_key(),
        defaults: Default::default(),
        durable: true,
        session_lease_ms: 30_000,
        inline_max: rustre_server::mds::DEFAULT_INLINE_MAX,
    };
    let running = local::start(cfg, rx).await.unwrap();
    let client_cfg = ClientConfig {
        mgs_addr: running.mgs_addr.to_string(),
        cluster: "failover".into(),
        key: common::test_key(),
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
                c.create(&r, d, &format!("f{i}"), 0o644, true, None).await?;
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
            let map = c.refresh_map().await.unwrap();
            let mds_up = map.mds.iter().filter(|m| m.state == NodeState::Up).count();
            if mds_up == 2 && map.osts.iter().any(|o| o.state == NodeState::Up) {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cluster did not come up");
}

/// Worker threads of the storm through the mount.
const MOUNT_WORKERS: usize = 8;
/// Rounds per worker; each round is 2 to 7 file system calls (about 490 per worker).
const MOUNT_ROUNDS: usize = 150;
/// Calls done (over all workers) before one MDS is killed: the storm is flowing on both.
const MOUNT_KILL_AFTER_OPS: usize = 250;
/// Longest the whole storm may take before the test fails instead of hanging.
const MOUNT_STORM_LIMIT: Duration = Duration::from_secs(240);

/// What a path holds in the model the workers build (and in what the mount shows).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

type Model = BTreeMap<PathBuf, Node>;

/// Moves `from` (and for a directory everything under it) to `to` in the model, replacing
/// what `to` held.
fn model_rename(m: &mut Model, from: &Path, to: &Path) {
    m.remove(to);
    let moved: Vec<PathBuf> = m.keys().filter(|k| k.starts_with(from)).cloned().collect();
    for k in moved {
        let v = m.remove(&k).unwrap();
        let rest = k.strip_prefix(from).unwrap();
        let nk = if rest.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rest)
        };
        m.insert(nk, v);
    }
}

/// One worker's storm in its own directory `w{w}` of the mount: creates with data, renames
/// (within a directory, across directories, over an existing file, of whole directories),
/// mkdir, rmdir and unlink. Every call is plain std::fs; the first error ends the worker.
/// Returns the worker's part of the namespace and `(ino, created before the kill)` of every
/// file it created.
fn mount_worker(
    w: usize,
    mnt: &Path,
    ops: &AtomicUsize,
    killed: &AtomicBool,
) -> Result<(Model, Vec<(u64, bool)>), String> {
    let mut model = Model::new();
    let mut inos = Vec::new();
    let step = |what: String, r: std::io::Result<()>| -> Result<(), String> {
        ops.fetch_add(1, Ordering::SeqCst);
        r.map_err(|e| format!("worker {w}: {what}: {e}"))
    };
    let root = PathBuf::from(format!("w{w}"));
    step(
        format!("mkdir {}", root.display()),
        fs::create_dir(mnt.join(&root)),
    )?;
    model.insert(root.clone(), Node::Dir);
    // Files of this worker still present, by current path, in creation order.
    let mut live: Vec<PathBuf> = Vec::new();
    for i in 0..MOUNT_ROUNDS {
        // Create, write, close.
        let f = root.join(format!("f{i}"));
        let data = common::random_bytes(1 + (i * 997 + w * 131) % 20_000, (w * 1000 + i) as u64);
        let mut ino = 0;
        step(format!("write {}", f.display()), {
            (|| {
                let mut h = fs::File::create(mnt.join(&f))?;
                h.write_all(&data)?;
                ino = h.metadata()?.ino();
                Ok(())
            })()
        })?;
        inos.push((ino, !killed.load(Ordering::SeqCst)));
        model.insert(f.clone(), Node::File(data));
        // Rename within the directory.
        let g = root.join(format!("g{i}"));
        step(
            format!("rename {} {}", f.display(), g.display()),
            fs::rename(mnt.join(&f), mnt.join(&g)),
        )?;
        model_rename(&mut model, &f, &g);
        let mut cur = g;
        if i % 3 == 0 {
            let d = root.join(format!("d{i}"));
            step(
                format!("mkdir {}", d.display()),
                fs::create_dir(mnt.join(&d)),
            )?;
            model.insert(d, Node::Dir);
        }
        if i % 3 == 1 {
            // Into the subdirectory made last round (it may have been renamed since).
            let d = model
                .keys()
                .rev()
                .find(|k| {
                    k.parent() == Some(root.as_path())
                        && model[*k] == Node::Dir
                        && k.file_name().unwrap().to_str().unwrap() == format!("d{}", i - 1)
                })
                .cloned();
            if let Some(d) = d {
                let to = d.join(format!("g{i}"));
                step(
                    format!("rename {} {}", cur.display(), to.display()),
                    fs::rename(mnt.join(&cur), mnt.join(&to)),
                )?;
                model_rename(&mut model, &cur, &to);
                cur = to;
            }
        }
        if i % 5 == 0 {
            step(
                format!("unlink {}", cur.display()),
                fs::remove_file(mnt.join(&cur)),
            )?;
            model.remove(&cur);
        } else {
            live.push(cur.clone());
        }
        if i % 7 == 3 && live.len() > 2 {
            // Rename the newest file over the oldest one still there.
            let over = live.remove(0);
            let newest = live.pop().unwrap();
            step(
                format!("rename {} over {}", newest.display(), over.display()),
                fs::rename(mnt.join(&newest), mnt.join(&over)),
            )?;
            model_rename(&mut model, &newest, &over);
            live.push(over);
        }
        if i % 11 == 5 {
            let e = root.join(format!("e{i}"));
            step(
                format!("mkdir {}", e.display()),
                fs::create_dir(mnt.join(&e)),
            )?;
            step(
                format!("rmdir {}", e.display()),
                fs::remove_dir(mnt.join(&e)),
            )?;
        }
        if i % 13 == 12 {
            // Rename a whole directory (with what was moved into it) to a new name: the
            // newest d{j} older than last round's (no other round renames it).
            let j = (i - 2) / 3 * 3;
            let d = root.join(format!("d{j}"));
            let to = root.join(format!("D{j}"));
            step(
                format!("rename {} {}", d.display(), to.display()),
                fs::rename(mnt.join(&d), mnt.join(&to)),
            )?;
            model_rename(&mut model, &d, &to);
            for p in live.iter_mut() {
                if let Ok(rest) = p.strip_prefix(&d) {
                    *p = to.join(rest);
                }
            }
        }
    }
    Ok((model, inos))
}

/// A log writer appending to a shared buffer.
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Shuts down (both directions) every TCP connection this process accepted on `port`, as the
/// death of the process serving them would: calls in flight there lose their replies even if
/// they commit. Returns how many were cut. (The kill switch of an in-process MDS only stops
/// it reading new calls; the calls it is already running still send their replies.)
fn cut_connections_on_port(port: u16) -> usize {
    use std::collections::HashSet;
    let mut inodes = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(local_port) = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            // State 0A is LISTEN: only connections are cut.
            if local_port == port && f.get(3) != Some(&"0A") {
                if let Some(inode) = f.get(9) {
                    inodes.insert(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let mut cut = 0;
    for e in fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        if !inodes.contains(target.to_string_lossy().as_ref()) {
            continue;
        }
        if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            // SAFETY: shutdown(2) on a descriptor of this process; it closes nothing, so the
            // descriptor stays valid for its owner (which then sees the connection end).
            if unsafe { libc::shutdown(fd, libc::SHUT_RDWR) } == 0 {
                cut += 1;
            }
        }
    }
    cut
}

/// Everything under `dir` (relative to `base`): directories and file contents.
fn read_tree(base: &Path, dir: &Path, out: &mut Model) {
    for e in fs::read_dir(base.join(dir)).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}")) {
        let e = e.unwrap();
        let rel = dir.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            out.insert(rel.clone(), Node::Dir);
            read_tree(base, &rel, out);
        } else {
            let data = fs::read(base.join(&rel)).unwrap_or_else(|e| panic!("read {rel:?}: {e}"));
            out.insert(rel, Node::File(data));
        }
    }
}

/// Lists the differences of two models briefly (paths and sizes, not contents).
fn model_diff(want: &Model, got: &Model) -> String {
    let show = |n: Option<&Node>| match n {
        None => "absent".to_string(),
        Some(Node::Dir) => "dir".to_string(),
        Some(Node::File(d)) => format!("file of {} bytes", d.len()),
    };
    let mut out = String::new();
    let keys: std::collections::BTreeSet<&PathBuf> = want.keys().chain(got.keys()).collect();
    for k in keys
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .take(20)
    {
        out += &format!(
            "\n  {}: expected {}, found {}",
            k.display(),
            show(want.get(k)),
            show(got.get(k))
        );
    }
    out
}

/// The same storm as above, but from worker threads doing plain std::fs calls on a real FUSE
/// mount (`rustre mount -f`, a separate process) of an in-process cluster with 2 MDS, one of
/// which is killed once the storm flows. No call may fail, and the namespace seen through
/// the mount afterwards (and through a second, fresh mount) must be exactly what the workers
/// did.
#[test]
fn killing_an_mds_under_a_mount_storm_fails_nothing_and_loses_nothing() {
    if let Some(why) = common::fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    // Dropped last: the cluster (on `rt`) and the mounts go first.
    let dir = tempfile::tempdir().unwrap();
    // The cluster's threads log warnings, and each retried call an MDS answers with its
    // recorded result, into `server_log`.
    let server_log = Arc::new(Mutex::new(Vec::new()));
    let sink = server_log.clone();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter("warn,rustre_server::mds::requests=debug")
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads (blocking ones too) live as long as the runtime.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap();
    let (_stop, rx) = watch::channel(false);
    let cfg = LocalConfig {
        data_dir: dir.path().join("data"),
        osts: 1,
        mds: 2,
        store: common::test_store("failover-mount"),
        mgs_listen: "127.0.0.1:0".parse().unwrap(),
        cluster: "rustre".into(),
        key: common::test_key(),
        defaults: Default::default(),
        durable: true,
        session_lease_ms: 30_000,
        inline_max: rustre_server::mds::DEFAULT_INLINE_MAX,
    };
    let running = rt.block_on(local::start(cfg, rx)).unwrap();
    let mgs = running.mgs_addr.to_string();
    // Both MDS (and the OST) up in the map before the mount reads it.
    let client_cfg = ClientConfig {
        mgs_addr: mgs.clone(),
        cluster: "rustre".into(),
        key: common::test_key(),
        client_name: "probe".into(),
    };
    drop(rt.block_on(wait_for_cluster(&client_cfg)));

    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    // The client logs every metadata call it sends again (which MDS failed, and why).
    let mut mount = common::ForegroundMount::start_logged(
        &mgs,
        &mnt,
        "",
        "warn,rustre_fuse::client::meta=debug",
    );
    let mnt = mount.path.clone();

    let ops = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for w in 0..MOUNT_WORKERS {
        let (mnt, ops, killed, done) = (mnt.clone(), ops.clone(), killed.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let _ = done.send(mount_worker(w, &mnt, &ops, &killed));
        });
    }
    drop(done_tx);
    let start = Instant::now();
    assert!(
        common::wait_until(MOUNT_STORM_LIMIT, || ops.load(Ordering::SeqCst)
            >= MOUNT_KILL_AFTER_OPS),
        "the storm did not reach {MOUNT_KILL_AFTER_OPS} calls"
    );
    killed.store(true, Ordering::SeqCst);
    // Its connections first, so the calls it is running lose their replies, then the MDS.
    let cut = cut_connections_on_port(running.mds_addrs[0].port());
    running.mds_kill[0].send(true).unwrap();
    let ops_at_kill = ops.load(Ordering::SeqCst);
    eprintln!(
        "killed MDS {} after {ops_at_kill} calls ({:?}), cut {cut} connections",
        running.mds_addrs[0],
        start.elapsed()
    );
    assert!(
        cut > 0,
        "the mount had no connection to the MDS that was killed"
    );

    let mut model = Model::new();
    let mut inos = Vec::new();
    for _ in 0..MOUNT_WORKERS {
        let left = MOUNT_STORM_LIMIT.saturating_sub(start.elapsed());
        let r = done_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the storm did not finish within {MOUNT_STORM_LIMIT:?}"));
        let (m, i) = r.expect("an error reached the application");
        model.extend(m);
        inos.extend(i);
    }
    let total = ops.load(Ordering::SeqCst);
    eprintln!("storm: {total} calls in {:?}", start.elapsed());
    assert!(
        ops_at_kill < total * 3 / 4,
        "the MDS died too late in the storm ({ops_at_kill} of {total} calls done)"
    );

    // Both MDS created files before the kill: each MDS takes inode numbers from the shared
    // counter in batches of INO_BATCH, so files made by two MDS have inodes from two batches
    // (as long as fewer than INO_BATCH were created before the kill).
    let before: Vec<u64> = inos.iter().filter(|(_, b)| *b).map(|(i, _)| *i).collect();
    assert!(
        (before.len() as u64) < INO_BATCH,
        "{} creates before the kill",
        before.len()
    );
    let batches: BTreeSet<u64> = before
        .iter()
        .map(|i| (i - ROOT_INO - 1) / INO_BATCH)
        .collect();
    assert!(
        batches.len() >= 2,
        "only one MDS served the {} creates before the kill (inode batches {batches:?})",
        before.len()
    );

    let log = lock(&mount.log).clone();
    let retried = log.matches("metadata call failed, retrying").count();
    let server_log = String::from_utf8_lossy(&lock(&server_log)).into_owned();
    let replayed = server_log
        .matches("replaying the recorded result of a retried call")
        .count();
    eprintln!(
        "calls sent again: {retried}; answered with their recorded result (they had \
         committed): {replayed}"
    );
    for l in server_log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
    {
        eprintln!("[cluster] {l}");
    }

    let mut seen = Model::new();
    read_tree(&mnt, Path::new(""), &mut seen);
    assert!(
        seen == model,
        "the mount shows another namespace than the workers built:{}",
        model_diff(&model, &seen)
    );
    // A fresh mount (cold caches, a map with one MDS) sees the same.
    let mnt2 = dir.path().join("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let mut mount2 = common::ForegroundMount::start(&mgs, &mnt2, "");
    let mut fresh = Model::new();
    read_tree(&mount2.path, Path::new(""), &mut fresh);
    assert!(
        fresh == model,
        "a fresh mount shows another namespace than the workers built:{}",
        model_diff(&model, &fresh)
    );
    assert!(mount2.unmount(), "second mount did not unmount cleanly");
    assert!(mount.unmount(), "mount did not unmount cleanly");
}

//! `rustre fsck` against real processes: inconsistencies written straight into the MDS's
//! store (the MDS stopped meanwhile) are found and repaired, and overlong objects that may
//! hold a writer's unreported bytes are left alone. The rules are in docs/replication.md,
//! "Resync and repair".

mod common;

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::msg::{Creds, FileKind, ROOT_INO};
use rustre_proto::Error;
use rustre_server::mds::store::{self, Dentry, Inode};
use rustre_server::meta::{Kv, Transaction};
use rustre_server::schema;

/// Longest wait for a stopped MDS to exit after SIGTERM.
const MDS_STOP_WAIT: Duration = Duration::from_secs(10);
/// Longer than the MDS's periodic sync: bookkeeping (size reports) is on disk after it.
const SYNC_WAIT: Duration = Duration::from_millis(1500);

/// Stops the MDS, runs `f` in one transaction on its embedded store, and starts it again.
fn edit_metadata(c: &mut ProcCluster, f: impl Fn(&mut dyn Transaction) -> Result<(), Error>) {
    std::thread::sleep(SYNC_WAIT);
    if let Some(mut p) = c.mds.take() {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while p.child.try_wait().unwrap().is_none() && start.elapsed() < MDS_STOP_WAIT {
            std::thread::sleep(Duration::from_millis(50));
        }
        p.kill();
    }
    let dir = rustre_server::mds::embedded_store_dir(&c.path("mds"));
    let kv = Kv::open_embedded(&dir).unwrap();
    kv.transact(|tx| f(tx)).unwrap();
    kv.sync().unwrap();
    drop(kv);
    c.start_mds();
    c.wait_all_up();
}

/// The inode record `ino`, changed by `f`.
fn change_inode(
    tx: &mut dyn Transaction,
    ino: u64,
    f: impl FnOnce(&mut Inode),
) -> Result<(), Error> {
    let mut i = store::inode(tx, ino)?;
    f(&mut i);
    store::put_inode(tx, &i)
}

fn inode_of(m: &str, path: &str) -> u64 {
    field(&cli_ok(m, &["stat", path]), "inode").parse().unwrap()
}

fn links_of(m: &str, path: &str) -> u32 {
    field(&cli_ok(m, &["stat", path]), "links").parse().unwrap()
}

#[test]
fn fsck_finds_and_repairs_link_counts_dangling_entries_unreachable_inodes_the_stale_index_and_kept_bytes(
) {
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    cli_ok(&m, &["mkdir", "/d"]);
    let data = random_bytes(200_000, 61);
    let src = c.path("src.bin");
    fs::write(&src, &data).unwrap();
    for path in ["/b.bin", "/d/a.bin", "/lost.bin", "/rep/s.bin"] {
        cli_ok(&m, &["put", src.to_str().unwrap(), path]);
    }
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
    let (b, d, lost, s, a) = (
        inode_of(&m, "/b.bin"),
        inode_of(&m, "/d"),
        inode_of(&m, "/lost.bin"),
        inode_of(&m, "/rep/s.bin"),
        inode_of(&m, "/d/a.bin"),
    );
    let (ghost, unknown, stray) = (999_999, 888_888, 777_777);

    // Behind the MDS's back: wrong link counts, an entry naming no inode, a file no entry
    // names, stale copies the index lacks, an index entry naming no inode, a file marked as
    // data on the MDS without kept bytes (it reads as zeros) and bytes kept for no inode.
    edit_metadata(&mut c, |tx| {
        change_inode(tx, b, |i| i.attr.nlink = 3)?;
        change_inode(tx, d, |i| i.attr.nlink = 5)?;
        let kind = FileKind::File;
        store::put_dentry(tx, d, "ghost", Dentry { ino: ghost, kind })?;
        tx.clear(&schema::dentry(ROOT_INO, "lost.bin"));
        change_inode(tx, s, |i| i.attr.layout.as_mut().unwrap().stale = vec![1])?;
        tx.set(&schema::stale(unknown), &[]);
        change_inode(tx, a, |i| i.attr.inline = true)?;
        tx.set(&schema::inline(stray), b"stray bytes");
        Ok(())
    });

    let found = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&found.stdout).to_string();
    assert!(!found.status.success(), "{out}");
    for line in [
        format!("inode {b}: link count 3, entries naming it: 1"),
        format!("inode {d}: link count 5, 2 plus its subdirectories: 2"),
        format!("entry \"ghost\" of directory {d} names inode {ghost}, which does not exist"),
        format!("inode {lost} (File) is named by no entry and not open"),
        format!("inode {s} has stale copies but is not in the stale index"),
        format!("the stale index names inode {unknown}, which has no stale copies"),
        format!("inode {a} is data on the MDS, but the store keeps no bytes for it"),
        format!("the store keeps bytes for inode {stray}, which is gone or not data on the MDS"),
    ] {
        assert!(out.contains(&line), "no {line:?} in\n{out}");
    }

    let repaired = cli(&m, &["fsck", "--repair"]);
    let out = String::from_utf8_lossy(&repaired.stdout).to_string();
    assert_eq!(out.matches("repaired:").count(), 8, "{out}");
    assert!(
        out.contains(&format!("linked as /lost+found/#{lost}")),
        "{out}"
    );
    assert_eq!(links_of(&m, "/b.bin"), 1);
    assert_eq!(links_of(&m, "/d"), 2);
    let listing = cli_ok(&m, &["ls", "/d"]);
    assert!(!listing.contains("ghost"), "{listing}");
    let back = c.path("back.bin");
    let reattached = format!("/lost+found/#{lost}");
    cli_ok(&m, &["get", &reattached, back.to_str().unwrap()]);
    assert!(
        fs::read(&back).unwrap() == data,
        "the reattached file differs"
    );
    assert_eq!(links_of(&m, &reattached), 1);
    // Unmarked, the file reads its objects again.
    cli_ok(&m, &["get", "/d/a.bin", back.to_str().unwrap()]);
    assert!(fs::read(&back).unwrap() == data, "/d/a.bin differs");
    // Indexed again, the stale copy is resynced.
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/s.bin")),
        "the stale copy was not resynced"
    );
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
}

/// Makes object `(ino, 0)` on `ost` `extra` bytes longer than its file: bytes a writer put on
/// the OST whose size report has not reached the MDS.
fn write_past_the_size(c: &ProcCluster, ost: u32, ino: u64, extra: &[u8]) -> u64 {
    let path = c.object_file(ost, ino, 0);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(extra).unwrap();
    f.sync_all().unwrap();
    fs::metadata(&path).unwrap().len()
}

async fn connect(mgs: &str) -> Arc<Client> {
    let cfg = ClientConfig {
        mgs_addr: mgs.to_string(),
        cluster: rustre_proto::DEFAULT_CLUSTER_NAME.into(),
        key: test_key(),
        client_name: "fsck-test-writer".into(),
    };
    Client::connect(&cfg).await.unwrap()
}

#[test]
fn fsck_repair_never_truncates_a_file_open_for_writing_or_changed_recently() {
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    let data = random_bytes(300_000, 71);
    let src = c.path("src.bin");
    fs::write(&src, &data).unwrap();
    cli_ok(&m, &["put", src.to_str().unwrap(), "/w.bin"]);
    cli_ok(&m, &["put", src.to_str().unwrap(), "/r.bin"]);
    let (w, w_osts, _) = placement(&m, "/w.bin");
    let (r, r_osts, _) = placement(&m, "/r.bin");

    // Another client holds /w.bin open for writing, and bytes past its size reached the
    // OST: the writer has not reported them yet.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let writer = rt.block_on(connect(&m));
    let opened = rt
        .block_on(writer.open_file(&Creds::root(), w, libc::O_WRONLY))
        .unwrap();
    let unreported = random_bytes(8192, 72);
    let w_len = write_past_the_size(&c, w_osts[0], w, &unreported);
    let r_len = write_past_the_size(&c, r_osts[0], r, &unreported);
    let w_obj = c.object_file(w_osts[0], w, 0);
    let r_obj = c.object_file(r_osts[0], r, 0);

    // Default grace: both were written moments ago; /w.bin is also open for writing.
    let run = cli(&m, &["fsck", "--repair"]);
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(!run.status.success(), "{out}");
    let w_line = format!("object {w}.0 on OST {} is {w_len} bytes", w_osts[0]);
    assert!(out.contains(&w_line), "{out}");
    assert!(
        out.contains("(not truncated: the file is open for writing)"),
        "{out}"
    );
    assert!(out.contains("(not truncated: the file changed"), "{out}");
    assert_eq!(out.matches("left alone:").count(), 2, "{out}");
    assert_eq!(out.matches("repaired:").count(), 0, "{out}");
    assert_eq!(fs::metadata(&w_obj).unwrap().len(), w_len);
    assert_eq!(fs::metadata(&r_obj).unwrap().len(), r_len);

    // No grace: the quiet file is cut; the one open for writing keeps its bytes.
    let run = cli(&m, &["fsck", "--repair", "--grace", "0"]);
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(out.contains("truncated to 300000"), "{out}");
    assert_eq!(fs::metadata(&r_obj).unwrap().len(), data.len() as u64);
    let w_bytes = fs::read(&w_obj).unwrap();
    assert_eq!(w_bytes.len() as u64, w_len);
    assert!(
        w_bytes[data.len()..] == unreported[..],
        "unreported bytes lost"
    );

    // Closed (the writer's report would have come with the close): now it is fsck's.
    rt.block_on(writer.release_file(opened.fh)).unwrap();
    let run = cli(&m, &["fsck", "--repair", "--grace", "0"]);
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    assert_eq!(
        out.matches("repaired: truncated to 300000").count(),
        1,
        "{out}"
    );
    assert_eq!(fs::metadata(&w_obj).unwrap().len(), data.len() as u64);
    rt.block_on(writer.close()).unwrap();
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
}

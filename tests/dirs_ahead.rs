//! Directories opened ahead of a tree walker (`client/dirs_ahead.rs`, issue 17), through the
//! client library against an in-process cluster: a walker that lists a directory and opens
//! its subdirectories in listing order finds their first pages fetched ahead, each listing
//! still exactly what the directory holds, another client's change included.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::meta_cluster::{connect, listed_names, root, start, until_trusted, wait_async};
use rustre_fuse::client::FEED_LEASE;
use rustre_fuse::Client;
use rustre_proto::msg::{Ino, ROOT_INO};

/// Subdirectories of the walked directory.
const SUBDIRS: usize = 12;
/// Subdirectories opened ahead at an open that asks the MDS (`DIRS_AHEAD`).
const AHEAD: usize = 8;

/// The client metrics are the process's: one test at a time counts them.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes `top` holding SUBDIRS subdirectories `s00`.. (each with a file `f`) and as many
/// files `x00`.. beside them (only directories are opened ahead), then lists `top` as a
/// walker would, once the cache is trusted. Returns `top` and the subdirectories in order.
async fn walked_tree(c: &Arc<Client>) -> (Ino, Vec<Ino>) {
    let top = c.mkdir(&root(), ROOT_INO, "top", 0o755).await.unwrap();
    let mut subdirs = Vec::new();
    for i in 0..SUBDIRS {
        let d = c
            .mkdir(&root(), top.ino, &format!("s{i:02}"), 0o755)
            .await
            .unwrap();
        c.create(&root(), d.ino, "f", 0o644, true, None)
            .await
            .unwrap();
        c.create(&root(), top.ino, &format!("x{i:02}"), 0o644, true, None)
            .await
            .unwrap();
        subdirs.push(d.ino);
    }
    assert!(until_trusted(c).await);
    assert_eq!(listed_names(c, &root(), top.ino).await.len(), 2 * SUBDIRS);
    (top.ino, subdirs)
}

fn counters() -> (u64, u64) {
    let m = rustre_fuse::client::metrics::get().unwrap();
    (m.dirs_opened_ahead.get(), m.first_pages_reused.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walker_finds_the_next_subdirectories_opened_ahead_and_each_as_it_is() {
    let _counting = COUNTING.lock().await;
    let t = start(30_000).await;
    let c = &t.client;
    rustre_fuse::client::metrics::enable(&mut prometheus_client::registry::Registry::default());
    // The walker lists the top directory, then opens its first subdirectory: that open
    // asks the MDS, and the next AHEAD subdirectories are opened beside it.
    let (_, subdirs) = walked_tree(c).await;
    let (ahead0, reused0) = counters();
    assert_eq!(listed_names(c, &root(), subdirs[0]).await, ["f"]);
    assert!(
        wait_async(Duration::from_secs(5), || counters().0
            == ahead0 + AHEAD as u64)
        .await,
        "opened ahead: {} (expected {AHEAD})",
        counters().0 - ahead0
    );

    // Another client adds a name to one of them: once this client's feed reported it (its
    // cache asks the MDS for the directory's attributes again), that directory's page kept
    // ahead is not handed out.
    let changed = subdirs[3];
    let before = c.getattr(&root(), changed).await.unwrap();
    let other = connect(&t.mgs).await;
    other
        .create(&root(), changed, "g", 0o644, true, None)
        .await
        .unwrap();
    let mut now = before.clone();
    let start = std::time::Instant::now();
    while now.mtime == before.mtime && start.elapsed() < FEED_LEASE * 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = c.getattr(&root(), changed).await.unwrap();
    }
    assert_ne!(
        now.mtime, before.mtime,
        "the other client's create never showed"
    );

    // The walker goes on in listing order: every listing is what the directory holds, and
    // the directories opened ahead and unchanged answer from their kept pages.
    for (i, ino) in subdirs.iter().enumerate().skip(1).take(AHEAD) {
        let want: &[&str] = if *ino == changed { &["f", "g"] } else { &["f"] };
        assert_eq!(listed_names(c, &root(), *ino).await, want, "s{i:02}");
    }
    let reused = counters().1 - reused0;
    assert!(
        reused >= (AHEAD - 1) as u64,
        "opens answered from pages opened ahead: {reused} (expected at least {})",
        AHEAD - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_opened_ahead_of_a_walker_that_removes() {
    let _counting = COUNTING.lock().await;
    let t = start(30_000).await;
    let c = &t.client;
    rustre_fuse::client::metrics::enable(&mut prometheus_client::registry::Registry::default());
    c.set_async_dirops(rustre_fuse::client::AsyncDirops::Everywhere);
    let (top, subdirs) = walked_tree(c).await;
    // As `rm -r` does: files removed (answered ahead), then a subdirectory opened.
    for i in 0..SUBDIRS {
        c.unlink(&root(), top, &format!("x{i:02}")).await.unwrap();
    }
    let (ahead0, _) = counters();
    assert_eq!(listed_names(c, &root(), subdirs[0]).await, ["f"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        counters().0,
        ahead0,
        "directories opened ahead of a remover"
    );
}

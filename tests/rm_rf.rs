//! `rm -rf` through a mount costs the MDS one unlink per file (issue 17), sent alone or in a
//! batch of unlinks answered ahead, and nothing else. Its answer
//! carries the directory's attributes (`MdsResponse::NamesChanged`), so the kernel's
//! GETATTR of the directory before the next unlink (`default_permissions`) is answered by
//! the client's cache, and so is the directory's access ACL that the kernel then asks for
//! when the caller does not own the directory (none: ENODATA from the cached attributes).

mod common;

use std::fs;
use std::os::unix::fs::chown;
use std::process::Command;

use common::*;

/// Files removed per tree.
const FILES: usize = 100;

#[test]
fn rm_rf_asks_the_mds_for_neither_the_directory_s_attributes_nor_its_acl() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let metrics = free_addr();
    let m = ForegroundMount::start(&c.mgs_addr, &mnt, &format!("metrics={metrics}"));
    let calls = |op: &str| mds_calls(&metrics, op);
    // Root's own tree, and a user's (root is not the owner: the kernel checks the ACL).
    for owner in [0, 1000] {
        let tree = m.path.join(format!("tree-{owner}"));
        fs::create_dir(&tree).unwrap();
        chown(&tree, Some(owner), Some(owner)).unwrap();
        for i in 0..FILES {
            fs::write(tree.join(format!("f{i:03}")), b"small").unwrap();
        }
        let batched = || mount_counter(&metrics, "rustre_client_dirops_ahead_batched_total");
        let (before, batched_before) = (["Unlink", "GetAttr", "GetXattr"].map(calls), batched());
        let rm = Command::new("rm").arg("-rf").arg(&tree).status().unwrap();
        assert!(rm.success());
        assert!(!tree.exists());
        let after = ["Unlink", "GetAttr", "GetXattr"].map(calls);
        let made = |i: usize| after[i] - before[i];
        // Each unlink sent once: alone, or in a batch with others answered ahead.
        let in_batches = batched() - batched_before;
        assert_eq!(made(0) + in_batches, FILES as f64, "unlinks, owner {owner}");
        // Was one GetAttr per file, and for the user's tree one GetXattr too. A few are
        // left where the cache was not trusted for a moment (a feed answer more than
        // FEED_LEASE old on a loaded machine).
        assert!(
            made(1) + made(2) < FILES as f64 / 2.0,
            "owner {owner}: {} GetAttr and {} GetXattr for {FILES} files",
            made(1),
            made(2)
        );
    }
}

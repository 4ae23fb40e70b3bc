//! Repair commands: `rustre fsck` (namespace against objects), `rustre scrub` (objects
//! against their checksums), `rustre evacuate` (move copies off an OST gone for good) and
//! `rustre ost replace` (accept a new disk for an OST whose disk was wiped or replaced).
//! The rules they apply live in the client library (`rustre_fuse::client::admin`,
//! docs/replication.md, "Resync and repair"); these commands print what it finds.

use std::time::Duration;

use crate::client_cmds::{connect, Global};

/// `rustre fsck [--repair] [--grace SECS]`: exits non-zero when something is (or, with
/// repair, was) wrong.
pub(crate) async fn fsck(g: &Global, repair: bool, grace: Duration) -> Result<(), String> {
    let c = connect(g).await?;
    let report = c.fsck(grace).await.map_err(|e| format!("fsck: {e}"))?;
    for ost in &report.osts_down {
        println!("OST {ost} is down: its objects are not checked");
    }
    for line in &report.not_compared {
        println!("{line}");
    }
    println!(
        "fsck: {} inodes, {} entries, {} files, {} objects on {} OSTs; {} stale copies \
         waiting for resync",
        report.inodes,
        report.entries,
        report.files,
        report.objects,
        report.osts_up.len(),
        report.stale_copies
    );
    if report.changed > 0 {
        println!(
            "fsck: {} problems seen changed while fsck looked (not reported)",
            report.changed
        );
    }
    for f in &report.findings {
        println!("{f}");
        if repair {
            match c.repair_finding(f, grace).await {
                Ok(done) => println!("  {done}"),
                Err(e) => println!("  not repaired: {e}"),
            }
        }
    }
    c.close().await.map_err(|e| e.to_string())?;
    if report.findings.is_empty() {
        println!("fsck: clean");
        Ok(())
    } else {
        Err(format!("fsck: {} problems found", report.findings.len()))
    }
}

/// `rustre scrub OST [--repair]`: checks every block of every object of the OST.
pub(crate) async fn scrub(g: &Global, ost: u32, repair: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let report = c.scrub(ost).await.map_err(|e| e.to_string())?;
    let mut unrepaired = 0;
    for bad in &report.bad {
        println!(
            "object {}.{} on OST {ost}: {} bad blocks (first {})",
            bad.id.ino,
            bad.id.stripe,
            bad.bad_blocks.len(),
            bad.bad_blocks[0]
        );
        if repair {
            match c.mark_copy_stale(ost, bad.id).await {
                Ok(()) => println!("  marked stale; resync rewrites it from another copy"),
                Err(e) => {
                    unrepaired += 1;
                    println!("  not repaired: {e}");
                }
            }
        }
    }
    let bad_objects = report.bad.len();
    println!(
        "scrub: OST {ost}: {} objects, {bad_objects} with bad blocks",
        report.objects
    );
    c.close().await.map_err(|e| e.to_string())?;
    match (bad_objects, repair) {
        (0, _) => Ok(()),
        (_, true) if unrepaired == 0 => Ok(()),
        _ => Err(format!(
            "scrub: {bad_objects} objects with bad blocks on OST {ost}"
        )),
    }
}

/// `rustre evacuate OST`: moves every copy on the OST to other OSTs (resync fills them).
pub(crate) async fn evacuate(g: &Global, ost: u32) -> Result<(), String> {
    let c = connect(g).await?;
    let report = c
        .evacuate(ost)
        .await
        .map_err(|e| format!("namespace walk: {e}"))?;
    for (ino, e) in &report.lost {
        println!("inode {ino}: {e}");
    }
    let lost = report.lost.len();
    println!(
        "evacuate: OST {ost}: {} files moved (resync copies them), {lost} without another copy",
        report.moved
    );
    c.close().await.map_err(|e| e.to_string())?;
    if lost == 0 {
        Ok(())
    } else {
        Err(format!("{lost} files had their only copy on OST {ost}"))
    }
}

/// `rustre ost replace INDEX`: marks every copy on the OST stale, lists the files that lost
/// their only copy, and lets the new disk register. Exits non-zero when files were lost
/// (after doing everything), as `evacuate` does.
pub(crate) async fn ost_replace(g: &Global, index: u32) -> Result<(), String> {
    let c = connect(g).await?;
    let report = c
        .replace_ost(index)
        .await
        .map_err(|e| format!("ost replace: OST {index}: {e}"))?;
    for f in &report.lost {
        println!(
            "lost: {} (inode {}): its only copy was on OST {index}; it reads EIO: remove it \
             and restore it from a backup",
            f.path, f.ino
        );
    }
    let lost = report.lost.len();
    println!(
        "ost replace: OST {index}: {} of {} files had copies there; {} will be refilled by \
         resync from their other copies, {lost} lost",
        report.on_ost, report.files, report.refilled
    );
    println!(
        "ost replace: the MGS accepts a new disk for OST {index} (epoch {}); its OSS \
         registers it within a few seconds",
        report.epoch
    );
    c.close().await.map_err(|e| e.to_string())?;
    if lost == 0 {
        Ok(())
    } else {
        Err(format!("{lost} files had their only copy on OST {index}"))
    }
}

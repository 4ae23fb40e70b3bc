//! Repair commands: `rustre fsck` (namespace against objects), `rustre scrub` (objects
//! against their checksums), `rustre evacuate` (move copies off an OST gone for good) and
//! `rustre ost replace` (accept a new disk for an OST whose disk was wiped or replaced).
//! The rules they apply live in the client library (`rustre_fuse::client::admin`,
//! docs/replication.md, "Resync and repair"); these commands print what it finds.

use std::time::Duration;

use crate::client_cmds::{connect, print_json, Global};
use crate::progress::Phases;

/// `rustre fsck [--repair] [--grace SECS] [--json]`: exits non-zero when something is (or,
/// with repair, was) wrong.
pub(crate) async fn fsck(
    g: &Global,
    repair: bool,
    grace: Duration,
    json: bool,
) -> Result<(), String> {
    let c = connect(g).await?;
    let bar = Phases::new("fsck");
    let report = c.fsck(grace, &bar).await;
    bar.finish();
    let report = report.map_err(|e| format!("fsck: {e}"))?;
    let mut findings = Vec::new();
    for f in &report.findings {
        let repaired = if repair {
            Some(match c.repair_finding(f, grace).await {
                Ok(done) => done.to_string(),
                Err(e) => format!("not repaired: {e}"),
            })
        } else {
            None
        };
        findings.push((f.to_string(), repaired));
    }
    c.close().await.map_err(|e| e.to_string())?;
    if json {
        let list: Vec<_> = findings
            .iter()
            .map(|(f, r)| serde_json::json!({"finding": f, "repair": r}))
            .collect();
        print_json(&serde_json::json!({
            "inodes": report.inodes,
            "entries": report.entries,
            "files": report.files,
            "objects": report.objects,
            "osts_up": report.osts_up,
            "osts_down": report.osts_down,
            "stale_copies": report.stale_copies,
            "not_compared": report.not_compared,
            "changed_while_checking": report.changed,
            "findings": list,
            "clean": findings.is_empty(),
        }))?;
    } else {
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
        for (f, repaired) in &findings {
            println!("{f}");
            if let Some(r) = repaired {
                println!("  {r}");
            }
        }
        if findings.is_empty() {
            println!("fsck: clean");
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(format!("fsck: {} problems found", findings.len()))
    }
}

/// `rustre scrub OST [--repair] [--json]`: checks every block of every object of the OST.
pub(crate) async fn scrub(g: &Global, ost: u32, repair: bool, json: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let bar = Phases::new("scrub");
    let report = c.scrub(ost, &bar).await;
    bar.finish();
    let report = report.map_err(|e| e.to_string())?;
    let mut unrepaired = 0;
    let mut bad = Vec::new();
    for b in &report.bad {
        let repaired = if repair {
            Some(match c.mark_copy_stale(ost, b.id).await {
                Ok(()) => "marked stale; resync rewrites it from another copy".to_string(),
                Err(e) => {
                    unrepaired += 1;
                    format!("not repaired: {e}")
                }
            })
        } else {
            None
        };
        bad.push((b, repaired));
    }
    c.close().await.map_err(|e| e.to_string())?;
    let bad_objects = report.bad.len();
    if json {
        let list: Vec<_> = bad
            .iter()
            .map(|(b, r)| {
                serde_json::json!({
                    "ino": b.id.ino,
                    "stripe": b.id.stripe,
                    "bad_blocks": b.bad_blocks,
                    "repair": r,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "ost": ost,
            "objects": report.objects,
            "bad_objects": list,
        }))?;
    } else {
        for (b, repaired) in &bad {
            println!(
                "object {}.{} on OST {ost}: {} bad blocks (first {})",
                b.id.ino,
                b.id.stripe,
                b.bad_blocks.len(),
                b.bad_blocks[0]
            );
            if let Some(r) = repaired {
                println!("  {r}");
            }
        }
        println!(
            "scrub: OST {ost}: {} objects, {bad_objects} with bad blocks",
            report.objects
        );
    }
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
    let bar = Phases::new("evacuate");
    let report = c.evacuate(ost, &bar).await;
    bar.finish();
    let report = report.map_err(|e| format!("namespace walk: {e}"))?;
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

//! Repair commands: `rustre fsck` (namespace against objects), `rustre scrub` (objects
//! against their checksums) and `rustre evacuate` (move copies off an OST gone for good).
//! The rules they apply are in docs/replication.md, "Resync and repair".

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rustre_fuse::client::stripe::object_size;
use rustre_fuse::Client;
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::oss::{
    ObjectId, ObjectInfo, OssOp, OssRequest, OssResponse, CHECKSUMS_MAX_BLOCKS, LIST_MAX_OBJECTS,
};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, ROOT_INO};
use rustre_proto::Error;

use crate::client_cmds::{connect, Global};

/// Most directories the namespace walk keeps queued (a breadth-first walk; deeper trees are
/// fine, this bounds the queue of one level's siblings).
const WALK_QUEUE_MAX: usize = 10_000_000;

/// One call to the OSS serving `ost`, under the client's current map.
async fn oss_call(c: &Client, ost: u32, op: OssOp) -> Result<OssResponse, Error> {
    let req = OssRequest {
        epoch: c.cluster().map().epoch,
        ost,
        op,
    };
    let first = c.cluster().oss(ost)?.call(&req, Bytes::new()).await;
    let (resp, _) = match first {
        Err(Error::OldEpoch { .. }) => {
            c.cluster().refresh().await?;
            let req = OssRequest {
                epoch: c.cluster().map().epoch,
                ..req
            };
            c.cluster().oss(ost)?.call(&req, Bytes::new()).await?
        }
        r => r?,
    };
    Ok(resp)
}

/// Every object of OST `ost`, by id.
async fn list_objects(c: &Client, ost: u32) -> Result<BTreeMap<ObjectId, ObjectInfo>, Error> {
    let mut all = BTreeMap::new();
    let mut after = None;
    loop {
        let op = OssOp::List {
            after,
            limit: LIST_MAX_OBJECTS,
        };
        match oss_call(c, ost, op).await? {
            OssResponse::Objects { objects, done } => {
                after = objects.last().map(|o| o.id);
                for o in objects {
                    all.insert(o.id, o);
                }
                if done || after.is_none() {
                    return Ok(all);
                }
            }
            r => return Err(Error::Protocol(format!("unexpected answer {r:?}"))),
        }
    }
}

/// Every regular file reachable from the root, by inode (hard links once).
async fn walk_files(c: &Client) -> Result<HashMap<Ino, Attr>, Error> {
    let creds = Creds::root();
    let mut files = HashMap::new();
    let mut dirs = vec![ROOT_INO];
    while let Some(dir) = dirs.pop() {
        let entries = match c.readdir_all(&creds, dir, true).await {
            Ok(e) => e,
            // Removed while we walked.
            Err(Error::NotFound) => continue,
            Err(e) => return Err(e),
        };
        for e in entries {
            match (e.kind, e.attr) {
                (FileKind::Dir, _) => {
                    if dirs.len() >= WALK_QUEUE_MAX {
                        return Err(Error::Invalid("too many directories queued".into()));
                    }
                    dirs.push(e.ino);
                }
                (FileKind::File, Some(a)) => {
                    files.insert(a.ino, a);
                }
                _ => {}
            }
        }
    }
    Ok(files)
}

/// The OSTs that are up, and those that are not (not checked).
fn osts_by_state(c: &Client) -> (Vec<u32>, Vec<u32>) {
    let map = c.cluster().map();
    let (up, down): (Vec<_>, Vec<_>) = map.osts.iter().partition(|o| o.state == NodeState::Up);
    (
        up.iter().map(|o| o.index).collect(),
        down.iter().map(|o| o.index).collect(),
    )
}

/// One finding of fsck, with what `--repair` does about it.
enum Finding {
    Orphan {
        ost: u32,
        id: ObjectId,
    },
    TooLong {
        ost: u32,
        id: ObjectId,
        size: u64,
        want: u64,
        version: u64,
    },
    Diverged {
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    },
    Missing {
        ino: Ino,
        stripe: u32,
    },
    Differs {
        ino: Ino,
        stripe: u32,
        block: u64,
        slots: Vec<u32>,
        version: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Orphan { ost, id } => write!(
                f,
                "orphan object {}.{} on OST {ost}: no such inode",
                id.ino, id.stripe
            ),
            Finding::TooLong {
                ost,
                id,
                size,
                want,
                ..
            } => write!(
                f,
                "object {}.{} on OST {ost} is {size} bytes, its file says {want}",
                id.ino, id.stripe
            ),
            Finding::Diverged { ino, slots, .. } => write!(
                f,
                "inode {ino}: up-to-date copies differ; shorter copies in slots {slots:?}"
            ),
            Finding::Differs {
                ino,
                stripe,
                block,
                slots,
                ..
            } => write!(
                f,
                "inode {ino}: stripe {stripe}: copies in slots {slots:?} differ from the first \
                 up-to-date copy from block {block} on"
            ),
            Finding::Missing { ino, stripe } => write!(
                f,
                "inode {ino}: stripe {stripe} holds the file's last byte but no copy has it"
            ),
        }
    }
}

/// `rustre fsck [--repair]`: exits non-zero when something is (or, with repair, was) wrong.
pub async fn fsck(g: &Global, repair: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let (up, down) = osts_by_state(&c);
    for ost in &down {
        println!("OST {ost} is down: its objects are not checked");
    }
    // Objects first, then the namespace: a file created in between has an inode, so only a
    // file removed in between can look like an orphan, and that is re-checked below.
    let mut objects = HashMap::new();
    for ost in &up {
        let list = list_objects(&c, *ost)
            .await
            .map_err(|e| format!("OST {ost}: {e}"))?;
        objects.insert(*ost, list);
    }
    let files = walk_files(&c)
        .await
        .map_err(|e| format!("namespace walk: {e}"))?;
    let mut findings = Vec::new();
    let mut stale_copies = 0;
    for a in files.values() {
        let Some(l) = &a.layout else { continue };
        stale_copies += l.stale.len();
        let last_stripe = (a.size > 0).then(|| {
            ((a.size - 1) / u64::from(l.stripe_size) % u64::from(l.stripe_count())) as u32
        });
        for stripe in 0..l.stripe_count() {
            let want = object_size(l, stripe, a.size);
            let id = ObjectId { ino: a.ino, stripe };
            let mut sizes = Vec::new();
            let mut overlong = false;
            for (slot, ost) in l.live_copies(stripe) {
                let Some(list) = objects.get(&ost) else {
                    continue;
                };
                let size = list.get(&id).map_or(0, |o| o.size);
                if size > want {
                    overlong = true;
                    findings.push(Finding::TooLong {
                        ost,
                        id,
                        size,
                        want,
                        version: l.version,
                    });
                }
                sizes.push((slot as u32, size.min(want)));
            }
            let best = sizes.iter().map(|s| s.1).max().unwrap_or(0);
            let short: Vec<u32> = sizes.iter().filter(|s| s.1 < best).map(|s| s.0).collect();
            let diverged = !short.is_empty();
            if diverged {
                findings.push(Finding::Diverged {
                    ino: a.ino,
                    slots: short,
                    version: l.version,
                });
            }
            // Same lengths (none too long either): compare the stored checksums.
            if !diverged && !overlong && sizes.len() > 1 && best > 0 {
                let copies: Vec<(u32, u32)> = l
                    .live_copies(stripe)
                    .into_iter()
                    .filter(|(_, ost)| objects.contains_key(ost))
                    .map(|(slot, ost)| (slot as u32, ost))
                    .collect();
                match differing_copies(&c, id, &copies).await {
                    Ok(Some((block, slots))) => findings.push(Finding::Differs {
                        ino: a.ino,
                        stripe,
                        block,
                        slots,
                        version: l.version,
                    }),
                    Ok(None) => {}
                    Err(e) => println!("inode {}: stripe {stripe}: not compared: {e}", a.ino),
                }
            }
            if last_stripe == Some(stripe) && !sizes.is_empty() && best < want {
                findings.push(Finding::Missing { ino: a.ino, stripe });
            }
        }
    }
    let mut checked = 0;
    for (ost, list) in &objects {
        checked += list.len();
        for id in list.keys().filter(|id| !files.contains_key(&id.ino)) {
            // Open-but-unlinked files have an inode and no name; a file removed during the
            // walk has neither.
            if matches!(
                c.getattr(&Creds::root(), id.ino).await,
                Err(Error::NotFound)
            ) {
                findings.push(Finding::Orphan { ost: *ost, id: *id });
            }
        }
    }
    println!(
        "fsck: {} files, {checked} objects on {} OSTs; {stale_copies} stale copies waiting for resync",
        files.len(),
        up.len()
    );
    for f in &findings {
        println!("{f}");
        if repair {
            match repair_one(&c, f).await {
                Ok(what) => println!("  repaired: {what}"),
                Err(e) => println!("  not repaired: {e}"),
            }
        }
    }
    c.close().await.map_err(|e| e.to_string())?;
    if findings.is_empty() {
        println!("fsck: clean");
        Ok(())
    } else {
        Err(format!("fsck: {} problems found", findings.len()))
    }
}

/// The stored checksums of `copies` (slot, OST) of object `id`, compared page by page with
/// the first copy's: the first differing block and the slots that differ there, if any.
async fn differing_copies(
    c: &Client,
    id: ObjectId,
    copies: &[(u32, u32)],
) -> Result<Option<(u64, Vec<u32>)>, Error> {
    let mut first = 0u64;
    loop {
        let mut pages = Vec::with_capacity(copies.len());
        for (_, ost) in copies {
            let op = OssOp::Checksums {
                object: id,
                first,
                count: CHECKSUMS_MAX_BLOCKS,
            };
            match oss_call(c, *ost, op).await? {
                OssResponse::Checksums { crcs, .. } => pages.push(crcs),
                r => return Err(Error::Protocol(format!("unexpected answer {r:?}"))),
            }
        }
        let base = &pages[0];
        let mut at: Option<u64> = None;
        let mut slots = Vec::new();
        for (i, page) in pages.iter().enumerate().skip(1) {
            if let Some(pos) = (0..base.len().max(page.len())).find(|&b| base.get(b) != page.get(b))
            {
                at = Some(at.map_or(pos as u64, |a| a.min(pos as u64)));
                slots.push(copies[i].0);
            }
        }
        if let Some(pos) = at {
            return Ok(Some((first + pos, slots)));
        }
        if base.len() < CHECKSUMS_MAX_BLOCKS as usize {
            return Ok(None);
        }
        first += base.len() as u64;
    }
}

async fn repair_one(c: &Client, f: &Finding) -> Result<String, Error> {
    match f {
        Finding::Differs {
            ino,
            slots,
            version,
            ..
        }
        | Finding::Diverged {
            ino,
            slots,
            version,
        } => {
            let op = MdsOp::MarkStale {
                ino: *ino,
                slots: slots.clone(),
                version: *version,
            };
            c.mds(&Creds::root(), op).await?;
            Ok(format!(
                "slots {slots:?} marked stale; resync copies the first up-to-date copy over them"
            ))
        }
        Finding::Orphan { ost, id } => {
            oss_call(c, *ost, OssOp::Delete { object: *id }).await?;
            Ok("deleted".into())
        }
        Finding::TooLong {
            ost,
            id,
            want,
            version,
            ..
        } => {
            let op = OssOp::Truncate {
                object: *id,
                size: *want,
                version: *version,
            };
            oss_call(c, *ost, op).await?;
            oss_call(c, *ost, OssOp::Sync { object: *id }).await?;
            Ok(format!("truncated to {want}"))
        }
        Finding::Missing { .. } => Err(Error::Io("no copy holds the data".into())),
    }
}

/// `rustre scrub OST [--repair]`: checks every block of every object of the OST.
pub async fn scrub(g: &Global, ost: u32, repair: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let list = list_objects(&c, ost)
        .await
        .map_err(|e| format!("OST {ost}: {e}"))?;
    let mut bad_objects = 0;
    let mut unrepaired = 0;
    for id in list.keys() {
        let bad = match oss_call(&c, ost, OssOp::Scrub { object: *id }).await {
            Ok(OssResponse::Scrubbed { bad_blocks }) => bad_blocks,
            Ok(r) => return Err(format!("unexpected answer {r:?}")),
            Err(e) => return Err(format!("OST {ost}: object {}.{}: {e}", id.ino, id.stripe)),
        };
        if bad.is_empty() {
            continue;
        }
        bad_objects += 1;
        println!(
            "object {}.{} on OST {ost}: {} bad blocks (first {})",
            id.ino,
            id.stripe,
            bad.len(),
            bad[0]
        );
        if repair {
            match mark_copy_stale(&c, ost, *id).await {
                Ok(()) => println!("  marked stale; resync rewrites it from another copy"),
                Err(e) => {
                    unrepaired += 1;
                    println!("  not repaired: {e}");
                }
            }
        }
    }
    println!(
        "scrub: OST {ost}: {} objects, {bad_objects} with bad blocks",
        list.len()
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

/// Marks the copy of object `id` on `ost` stale in its file's layout.
async fn mark_copy_stale(c: &Client, ost: u32, id: ObjectId) -> Result<(), Error> {
    let a = c.getattr(&Creds::root(), id.ino).await?;
    let l = a
        .layout
        .ok_or_else(|| Error::Invalid("the inode has no layout".into()))?;
    let slots: Vec<u32> = l
        .copies(id.stripe)
        .iter()
        .filter(|(_, o)| *o == ost)
        .map(|(s, _)| *s as u32)
        .collect();
    if slots.is_empty() {
        return Err(Error::Invalid("the file has no copy on this OST".into()));
    }
    let op = MdsOp::MarkStale {
        ino: id.ino,
        slots,
        version: l.version,
    };
    match c.mds(&Creds::root(), op).await? {
        MdsResponse::Attr(_) => Ok(()),
        r => Err(Error::Protocol(format!("unexpected answer {r:?}"))),
    }
}

/// `rustre evacuate OST`: moves every copy on the OST to other OSTs (resync fills them).
pub async fn evacuate(g: &Global, ost: u32) -> Result<(), String> {
    let c = connect(g).await?;
    let files = walk_files(&c)
        .await
        .map_err(|e| format!("namespace walk: {e}"))?;
    let (mut moved, mut lost) = (0, 0);
    for a in files.values() {
        let Some(l) = &a.layout else { continue };
        if !l.osts.contains(&ost) {
            continue;
        }
        let op = MdsOp::MoveCopies { ino: a.ino, ost };
        match c.mds(&Creds::root(), op).await {
            Ok(_) => moved += 1,
            Err(e) => {
                lost += 1;
                println!("inode {}: {e}", a.ino);
            }
        }
    }
    println!("evacuate: OST {ost}: {moved} files moved (resync copies them), {lost} without another copy");
    c.close().await.map_err(|e| e.to_string())?;
    if lost == 0 {
        Ok(())
    } else {
        Err(format!("{lost} files had their only copy on OST {ost}"))
    }
}

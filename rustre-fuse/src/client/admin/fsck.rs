//! `fsck`: the namespace against the objects. For every regular file, each live copy of each
//! stripe is checked for its length (too long, or shorter than another copy), copies of equal
//! length for their stored checksums, and the stripe holding the file's last byte for data at
//! all; every object no inode owns is an orphan. [`Client::repair_finding`] says what it does about
//! each [`Finding`].

use std::collections::HashMap;

use rustre_proto::msg::mds::MdsOp;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse, CHECKSUMS_MAX_BLOCKS};
use rustre_proto::msg::{Attr, Creds, Ino, Layout};
use rustre_proto::Error;

use super::unexpected;
use crate::client::stripe::object_size;
use crate::client::Client;

/// One problem fsck found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An object whose inode does not exist.
    Orphan { ost: u32, id: ObjectId },
    /// An object longer than its file's size gives it.
    TooLong {
        ost: u32,
        id: ObjectId,
        size: u64,
        want: u64,
        version: u64,
    },
    /// Up-to-date copies of one stripe of different lengths: the shorter ones' slots.
    Diverged {
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    },
    /// The stripe holding the file's last byte has it on no copy.
    Missing { ino: Ino, stripe: u32 },
    /// Copies of equal length whose stored checksums differ from `block` on.
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

/// What one fsck pass saw.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// Regular files walked.
    pub files: usize,
    /// Objects listed on the OSTs that are up.
    pub objects: usize,
    /// OSTs checked (up), and those skipped (down).
    pub osts_up: Vec<u32>,
    pub osts_down: Vec<u32>,
    /// Copies already marked stale, waiting for resync.
    pub stale_copies: usize,
    /// Stripes whose copies' checksums could not be compared, and why.
    pub not_compared: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Client {
    /// Checks the namespace against the objects of every OST that is up.
    pub async fn fsck(&self) -> Result<FsckReport, Error> {
        let (up, down) = self.osts_by_state();
        // Objects first, then the namespace: a file created in between has an inode, so only
        // a file removed in between can look like an orphan, and that is re-checked below.
        let mut objects = HashMap::new();
        for ost in &up {
            let list = self
                .list_objects(*ost)
                .await
                .map_err(|e| Error::Io(format!("OST {ost}: {e}")))?;
            objects.insert(*ost, list);
        }
        let files = self.walk_files().await?;
        let mut report = FsckReport {
            files: files.len(),
            objects: objects.values().map(|l| l.len()).sum(),
            osts_up: up,
            osts_down: down,
            ..FsckReport::default()
        };
        let sizes_of = |ost: u32, id: &ObjectId| {
            objects
                .get(&ost)
                .map(|list| list.get(id).map_or(0, |o| o.size))
        };
        for a in files.values() {
            let Some(l) = &a.layout else { continue };
            report.stale_copies += l.stale.len();
            for stripe in 0..l.stripe_count() {
                self.check_stripe(a, l, stripe, &sizes_of, &mut report)
                    .await;
            }
        }
        for (ost, list) in &objects {
            for id in list.keys().filter(|id| !files.contains_key(&id.ino)) {
                // Open-but-unlinked files have an inode and no name; a file removed during
                // the walk has neither.
                if matches!(
                    self.getattr(&Creds::root(), id.ino).await,
                    Err(Error::NotFound)
                ) {
                    report.findings.push(Finding::Orphan { ost: *ost, id: *id });
                }
            }
        }
        Ok(report)
    }

    /// Checks the copies of one stripe of file `a` (layout `l`); `size_on(ost, id)` is the
    /// length of object `id` on `ost` (0 if absent), `None` for an OST not listed (down).
    async fn check_stripe(
        &self,
        a: &Attr,
        l: &Layout,
        stripe: u32,
        size_on: &impl Fn(u32, &ObjectId) -> Option<u64>,
        report: &mut FsckReport,
    ) {
        let want = object_size(l, stripe, a.size);
        let id = ObjectId { ino: a.ino, stripe };
        let mut sizes = Vec::new();
        let mut overlong = false;
        for (slot, ost) in l.live_copies(stripe) {
            let Some(size) = size_on(ost, &id) else {
                continue;
            };
            if size > want {
                overlong = true;
                report.findings.push(Finding::TooLong {
                    ost,
                    id,
                    size,
                    want,
                    version: l.version,
                });
            }
            sizes.push((slot as u32, ost, size.min(want)));
        }
        let best = sizes.iter().map(|s| s.2).max().unwrap_or(0);
        let short: Vec<u32> = sizes.iter().filter(|s| s.2 < best).map(|s| s.0).collect();
        let diverged = !short.is_empty();
        if diverged {
            report.findings.push(Finding::Diverged {
                ino: a.ino,
                slots: short,
                version: l.version,
            });
        }
        // Same lengths (none too long either): compare the stored checksums.
        if !diverged && !overlong && sizes.len() > 1 && best > 0 {
            let copies: Vec<(u32, u32)> =
                sizes.iter().map(|(slot, ost, _)| (*slot, *ost)).collect();
            match self.differing_copies(id, &copies).await {
                Ok(Some((block, slots))) => report.findings.push(Finding::Differs {
                    ino: a.ino,
                    stripe,
                    block,
                    slots,
                    version: l.version,
                }),
                Ok(None) => {}
                Err(e) => report.not_compared.push(format!(
                    "inode {}: stripe {stripe}: not compared: {e}",
                    a.ino
                )),
            }
        }
        let last_stripe = (a.size > 0).then(|| {
            ((a.size - 1) / u64::from(l.stripe_size) % u64::from(l.stripe_count())) as u32
        });
        if last_stripe == Some(stripe) && !sizes.is_empty() && best < want {
            report
                .findings
                .push(Finding::Missing { ino: a.ino, stripe });
        }
    }

    /// The stored checksums of `copies` (slot, OST) of object `id`, compared page by page
    /// with the first copy's: the first differing block and the slots that differ there.
    async fn differing_copies(
        &self,
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
                match self.oss_answer(*ost, op).await? {
                    OssResponse::Checksums { crcs, .. } => pages.push(crcs),
                    r => return Err(unexpected(&r)),
                }
            }
            let base = &pages[0];
            let mut at: Option<u64> = None;
            let mut slots = Vec::new();
            for (i, page) in pages.iter().enumerate().skip(1) {
                if let Some(pos) =
                    (0..base.len().max(page.len())).find(|&b| base.get(b) != page.get(b))
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

    /// Repairs what `f` found, and says how.
    pub async fn repair_finding(&self, f: &Finding) -> Result<String, Error> {
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
                self.mark_stale(*ino, slots.clone(), *version).await?;
                Ok(format!(
                    "slots {slots:?} marked stale; resync copies the first up-to-date copy over them"
                ))
            }
            Finding::Orphan { ost, id } => {
                self.oss_answer(*ost, OssOp::Delete { object: *id }).await?;
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
                self.oss_answer(*ost, op).await?;
                self.oss_answer(*ost, OssOp::Sync { object: *id }).await?;
                Ok(format!("truncated to {want}"))
            }
            Finding::Missing { .. } => Err(Error::Io("no copy holds the data".into())),
        }
    }

    /// Asks the MDS to move every copy on `ost` of file `ino` to another OST.
    pub(super) async fn move_copies(&self, ino: Ino, ost: u32) -> Result<(), Error> {
        self.mds(&Creds::root(), MdsOp::MoveCopies { ino, ost })
            .await
            .map(|_| ())
    }
}

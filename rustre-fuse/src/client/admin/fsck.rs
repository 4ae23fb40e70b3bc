//! `fsck`: the metadata against itself (`meta_check`: link counts, dangling entries,
//! unreachable inodes, the stale index) and the inodes against the objects. For every regular
//! file, each live copy of each stripe is checked for its length (too long, or shorter than
//! another copy), copies of equal length for their stored checksums, and the stripe holding
//! the file's last byte for data at all; every object no inode owns is an orphan.
//! [`Client::repair_finding`] says what it does about each [`Finding`].
//!
//! Safe on a live cluster: an object longer than its file may hold a writer's bytes that its
//! size report has not reached the MDS yet, so a file open for writing, or whose mtime or
//! ctime is within the grace period, is reported but never truncated ([`Held`]); the repair
//! asks the MDS again just before it truncates.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rustre_proto::msg::fsck::FsckInode;
use rustre_proto::msg::mds::MdsOp;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse, CHECKSUMS_MAX_BLOCKS};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, Timestamp};
use rustre_proto::Error;

use super::finding::{Finding, Held, Repaired};
use super::meta_check;
use super::{unexpected, Progress};
use crate::client::stripe::object_size;
use crate::client::Client;

/// How recently a file must not have changed (mtime or ctime, by the MDS's clock) for fsck
/// to truncate its overlong objects: a writer reports its size within seconds (on close,
/// fsync, or every few seconds while it writes), so bytes past the size of a file this quiet
/// are nobody's.
pub const FSCK_GRACE: Duration = Duration::from_secs(300);

/// What one fsck pass saw.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// Regular files in the inode table (reachable or not).
    pub files: usize,
    /// Inodes and directory entries in the metadata store.
    pub inodes: usize,
    pub entries: usize,
    /// Objects listed on the OSTs that are up.
    pub objects: usize,
    /// OSTs checked (up), and those skipped (down).
    pub osts_up: Vec<u32>,
    pub osts_down: Vec<u32>,
    /// Copies already marked stale, waiting for resync.
    pub stale_copies: usize,
    /// Stripes whose copies' checksums could not be compared, and why.
    pub not_compared: Vec<String>,
    /// Metadata problems seen that no longer held when the MDS checked them again (the
    /// store changed while fsck read it): not reported.
    pub changed: usize,
    pub findings: Vec<Finding>,
}

/// Why an overlong object of file `i` must be left alone, with `now` the MDS's clock and
/// `grace` how recent a change counts.
fn held(i: &FsckInode, now: Timestamp, grace: Duration) -> Option<Held> {
    if i.write_open {
        return Some(Held::OpenForWriting);
    }
    let age = since(i.attr.mtime.max(i.attr.ctime), now);
    (age < grace).then_some(Held::ChangedRecently(age))
}

/// How long before `now` the time `t` is (zero for a time after it).
fn since(t: Timestamp, now: Timestamp) -> Duration {
    let nanos = |t: Timestamp| i128::from(t.sec) * 1_000_000_000 + i128::from(t.nsec);
    let d = (nanos(now) - nanos(t)).max(0);
    Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX))
}

impl Client {
    /// Checks the metadata, and the inodes against the objects of every OST that is up.
    /// Overlong objects of files open for writing or changed within `grace` are reported
    /// [`Held`].
    /// `progress` hears of each OST listed, then of each file and object checked.
    pub async fn fsck(
        &self,
        grace: Duration,
        progress: &dyn Progress,
    ) -> Result<FsckReport, Error> {
        let (up, down) = self.osts_by_state();
        progress.phase("listing OSTs", up.len() as u64);
        // Objects first, then the metadata: a file created in between has an inode, so only
        // a file removed in between can look like an orphan, and that is re-checked below.
        let mut objects = HashMap::new();
        for ost in &up {
            let list = self
                .list_objects(*ost)
                .await
                .map_err(|e| Error::Io(format!("OST {ost}: {e}")))?;
            objects.insert(*ost, list);
            progress.advance(1);
        }
        progress.phase("scanning metadata", 0);
        let (inodes, now) = self.scan_inodes().await?;
        let entries = self.scan_entries().await?;
        let indexed = self.scan_stale_index().await?;
        let kept = self.scan_kept_bytes().await?;
        let candidates = meta_check::candidates(&inodes, &entries, &indexed, &kept);
        let (findings, changed) = self.confirm(candidates).await?;
        let files: BTreeMap<Ino, &FsckInode> = inodes
            .iter()
            .filter(|(_, i)| i.attr.kind == FileKind::File)
            .map(|(ino, i)| (*ino, i))
            .collect();
        let mut report = FsckReport {
            files: files.len(),
            inodes: inodes.len(),
            entries: entries.len(),
            objects: objects.values().map(|l| l.len()).sum(),
            osts_up: up,
            osts_down: down,
            changed,
            findings,
            ..FsckReport::default()
        };
        let sizes_of = |ost: u32, id: &ObjectId| {
            objects
                .get(&ost)
                .map(|list| list.get(id).map_or(0, |o| o.size))
        };
        progress.phase("files", files.len() as u64);
        for i in files.values() {
            progress.advance(1);
            let a = &i.attr;
            let Some(l) = &a.layout else { continue };
            report.stale_copies += l.stale.len();
            let held = held(i, now, grace);
            for stripe in 0..l.stripe_count() {
                self.check_stripe(a, l, stripe, held, &sizes_of, &mut report)
                    .await;
            }
        }
        progress.phase("objects", report.objects as u64);
        for (ost, list) in &objects {
            progress.advance(list.len() as u64);
            for id in list.keys().filter(|id| !inodes.contains_key(&id.ino)) {
                // A file removed during the walk has no inode either.
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

    /// Checks the copies of one stripe of file `a` (layout `l`; overlong objects left alone
    /// if `held`); `size_on(ost, id)` is the length of object `id` on `ost` (0 if absent),
    /// `None` for an OST not listed (down).
    async fn check_stripe(
        &self,
        a: &Attr,
        l: &Layout,
        stripe: u32,
        held: Option<Held>,
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
                    held,
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
        // A file whose data is on the MDS needs no object (`Attr::inline`).
        if last_stripe == Some(stripe) && !sizes.is_empty() && best < want && !a.inline {
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

    /// Repairs what `f` found (a `fsck` with grace period `grace`), and says how, or why
    /// it left it alone.
    pub async fn repair_finding(&self, f: &Finding, grace: Duration) -> Result<Repaired, Error> {
        if let Some(fix) = meta_check::fix_of(f) {
            return self.repair_metadata(fix).await;
        }
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
                Ok(Repaired::Done(format!(
                    "slots {slots:?} marked stale; resync copies the first up-to-date copy over them"
                )))
            }
            Finding::Orphan { ost, id } => {
                self.oss_answer(*ost, OssOp::Delete { object: *id }).await?;
                Ok(Repaired::Done("deleted".into()))
            }
            Finding::TooLong { held: Some(h), .. } => Ok(Repaired::LeftAlone(h.to_string())),
            Finding::TooLong {
                ost,
                id,
                want,
                version,
                held: None,
                ..
            } => self.cut_overlong(*ost, *id, *want, *version, grace).await,
            Finding::Missing { .. } => Err(Error::Io("no copy holds the data".into())),
            _ => Err(Error::Invalid(format!("fsck cannot repair this: {f}"))),
        }
    }

    /// Truncates object `id` on `ost` to `want` (its length for layout `version`), unless the
    /// MDS says now that the file is held ([`held`]) or changed since fsck looked.
    async fn cut_overlong(
        &self,
        ost: u32,
        id: ObjectId,
        want: u64,
        version: u64,
        grace: Duration,
    ) -> Result<Repaired, Error> {
        let (fresh, now) = self.inspect(id.ino).await?;
        let Some(fresh) = fresh else {
            return Ok(Repaired::LeftAlone("the file is gone".into()));
        };
        if let Some(h) = held(&fresh, now, grace) {
            return Ok(Repaired::LeftAlone(h.to_string()));
        }
        let a = &fresh.attr;
        let now_want = a
            .layout
            .as_ref()
            .map(|l| (l.version, object_size(l, id.stripe, a.size)));
        if now_want != Some((version, want)) {
            return Ok(Repaired::LeftAlone(
                "the file changed since fsck looked".into(),
            ));
        }
        let op = OssOp::Truncate {
            object: id,
            size: want,
            version,
        };
        self.oss_answer(ost, op).await?;
        self.oss_answer(ost, OssOp::Sync { object: id }).await?;
        Ok(Repaired::Done(format!("truncated to {want}")))
    }

    /// Asks the MDS to move every copy on `ost` of file `ino` to another OST.
    pub(super) async fn move_copies(&self, ino: Ino, ost: u32) -> Result<(), Error> {
        self.mds(&Creds::root(), MdsOp::MoveCopies { ino, ost })
            .await
            .map(|_| ())
    }
}

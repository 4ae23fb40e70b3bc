//! The usage side of project quotas: the record `quota/{project}` ([`Quota`]: limits,
//! usage, grace clocks), what an inode counts ([`charge_of`]) and moving it when an inode
//! record changes ([`recount`], called by `store::put_inode` in the transaction that writes
//! the inode). Below the inode store's write path: it reads and writes records through
//! [`crate::mds::store::records`] only, so the store and the quota rules do not import
//! each other.

use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits, QuotaUsage, NO_PROJECT};
use rustre_proto::msg::{FileKind, Ino, Timestamp};
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use crate::mds::store::records::{self as store, Inode};
use crate::meta::Transaction;
use crate::schema;

/// A project's limits and usage, under `quota/{project}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limits: QuotaLimits,
    pub usage: QuotaUsage,
    /// Wall-clock milliseconds since which bytes are over the soft limit (0: they are not).
    pub bytes_over_since_ms: u64,
    /// Wall-clock milliseconds since which inodes are over the soft limit (0: they are not).
    pub inodes_over_since_ms: u64,
    /// The walk of `quota set` has not finished: usage is not complete yet.
    pub counting: bool,
}

impl Quota {
    /// What `quota get` shows of project `project`.
    pub fn info(&self, project: Ino) -> QuotaInfo {
        QuotaInfo {
            project,
            limits: self.limits,
            usage: self.usage,
            bytes_over_since_ms: self.bytes_over_since_ms,
            inodes_over_since_ms: self.inodes_over_since_ms,
            counting: self.counting,
        }
    }

    /// Starts or stops the grace clocks after a change of usage or limits.
    pub(super) fn note_soft(&mut self, now_ms: u64) {
        let over = |used: u64, soft: u64| soft != 0 && used > soft;
        let clock = |since: &mut u64, is_over: bool| {
            if !is_over {
                *since = 0;
            } else if *since == 0 {
                *since = now_ms.max(1);
            }
        };
        clock(
            &mut self.bytes_over_since_ms,
            over(self.usage.bytes, self.limits.soft_bytes),
        );
        clock(
            &mut self.inodes_over_since_ms,
            over(self.usage.inodes, self.limits.soft_inodes),
        );
    }

    /// EDQUOT unless usage may grow by `add`: past a hard limit never; past a soft limit
    /// only while the grace period that started when usage first went over it lasts.
    pub fn admits(&self, add: QuotaUsage, now_ms: u64) -> Result<(), Error> {
        let grace_ms = self.limits.grace_secs.saturating_mul(1000);
        let fits = |used: u64, add: u64, hard: u64, soft: u64, since: u64| {
            if add == 0 {
                return true;
            }
            let after = used.saturating_add(add);
            if hard != 0 && after > hard {
                return false;
            }
            // Over the soft limit: allowed until the grace period runs out (it starts now
            // for a growth that goes over first).
            !(soft != 0 && after > soft && since != 0 && now_ms >= since.saturating_add(grace_ms))
        };
        let l = &self.limits;
        let ok = fits(
            self.usage.bytes,
            add.bytes,
            l.hard_bytes,
            l.soft_bytes,
            self.bytes_over_since_ms,
        ) && fits(
            self.usage.inodes,
            add.inodes,
            l.hard_inodes,
            l.soft_inodes,
            self.inodes_over_since_ms,
        );
        if ok {
            Ok(())
        } else {
            Err(Error::QuotaExceeded)
        }
    }
}

/// What inode `inode` counts in its project: one inode, and for a regular file the larger
/// of its size and the end writers reserved.
pub fn charge_of(inode: &Inode) -> QuotaUsage {
    QuotaUsage {
        inodes: 1,
        bytes: if inode.attr.kind == FileKind::File {
            inode.attr.size.max(inode.reserved)
        } else {
            0
        },
    }
}

pub(super) fn millis(t: Timestamp) -> u64 {
    u64::try_from(t.sec).unwrap_or(0) * 1000 + u64::from(t.nsec / 1_000_000)
}

/// The quota record of `project`, if it has one.
pub fn get(tx: &mut dyn Transaction, project: Ino) -> Result<Option<Quota>, Error> {
    if project == NO_PROJECT {
        return Ok(None);
    }
    store::get(tx, &schema::quota(project))
}

pub(super) fn put(tx: &mut dyn Transaction, project: Ino, q: &Quota) -> Result<(), Error> {
    store::put(tx, &schema::quota(project), q)
}

/// Adds `add` and takes `sub` from the usage of `project` (if it has a quota).
fn apply(
    tx: &mut dyn Transaction,
    project: Ino,
    add: QuotaUsage,
    sub: QuotaUsage,
) -> Result<(), Error> {
    if add == sub {
        return Ok(());
    }
    let Some(mut q) = get(tx, project)? else {
        return Ok(());
    };
    q.usage.bytes = q
        .usage
        .bytes
        .saturating_add(add.bytes)
        .saturating_sub(sub.bytes);
    q.usage.inodes = q
        .usage
        .inodes
        .saturating_add(add.inodes)
        .saturating_sub(sub.inodes);
    q.note_soft(rustre_proto::host::now_ms());
    put(tx, project, &q)
}

/// Moves what an inode counts from its stored record `old` to its new record `new` (either
/// absent: created, removed), in its project or from one project to another. Writes the
/// quota record only when something changed.
pub fn recount(
    tx: &mut dyn Transaction,
    old: Option<&Inode>,
    new: Option<&Inode>,
) -> Result<(), Error> {
    let side = |i: Option<&Inode>| match i {
        Some(i) if i.attr.project != NO_PROJECT => (i.attr.project, charge_of(i)),
        _ => (NO_PROJECT, QuotaUsage::default()),
    };
    let (old_p, old_c) = side(old);
    let (new_p, new_c) = side(new);
    if old_p == new_p {
        return apply(tx, new_p, new_c, old_c);
    }
    apply(tx, old_p, QuotaUsage::default(), old_c)?;
    apply(tx, new_p, new_c, QuotaUsage::default())
}

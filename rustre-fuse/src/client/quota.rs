//! Project quotas at the client (docs/quotas.md): room reserved at the MDS before a write
//! grows a file of a project, `statfs` showing a project's quota as the file system's size,
//! and the calls behind `rustre quota`.
//!
//! Data goes straight to the OSTs, so the MDS cannot refuse a write it never sees. Instead,
//! before a write (or a fallocate) reaches past both the size this client knows and the room
//! it holds for the file, the client asks the MDS for room up to the write's end plus
//! [`QUOTA_RESERVE_BYTES`] (`MdsOp::QuotaReserve`). The MDS counts the room in the
//! project's usage at once, so every client's next reservation sees it: a project's bytes
//! never pass the hard limit through writes, whichever clients write. When even the write's
//! own end does not fit, the write fails with EDQUOT before anything is buffered.

use rustre_proto::msg::mds::{FsStats, MdsOp, MdsResponse, QUOTA_LIST_MAX};
use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits};
use rustre_proto::msg::{Capacity, Creds, Ino};
use rustre_proto::Error;

use super::{unexpected, Client};

/// How far past a write's end one reservation asks for: a writer asks the MDS once per
/// this many bytes it appends to a file. Also what one file's writer may hold unused when
/// another client hits the limit (the reservation goes back at the last close).
pub const QUOTA_RESERVE_BYTES: u64 = 4 << 20;

impl Client {
    /// Before a write or allocation of `ino` reaching `end`: room for it in the file's
    /// project, asked of the MDS when this client does not hold it yet; EDQUOT when the
    /// project has none left.
    pub(crate) async fn quota_room(&self, creds: &Creds, ino: Ino, end: u64) -> Result<(), Error> {
        if !self.files.needs_quota_room(ino, end) {
            return Ok(());
        }
        let want = end.saturating_add(QUOTA_RESERVE_BYTES);
        match self
            .mds(creds, MdsOp::QuotaReserve { ino, end, want })
            .await?
        {
            MdsResponse::QuotaRoom(room) => {
                self.files.set_quota_room(ino, room);
                Ok(())
            }
            r => Err(unexpected(r)),
        }
    }

    /// The quota of the project `ino` belongs to, if it is in one.
    pub async fn quota_get(&self, creds: &Creds, ino: Ino) -> Result<Option<QuotaInfo>, Error> {
        match self.mds(creds, MdsOp::QuotaGet { ino }).await? {
            MdsResponse::Quota(q) => Ok(q),
            r => Err(unexpected(r)),
        }
    }

    /// Sets the quota of directory `ino`; returns it as set, usage counted.
    pub async fn quota_set(
        &self,
        creds: &Creds,
        ino: Ino,
        limits: QuotaLimits,
    ) -> Result<QuotaInfo, Error> {
        match self.mds(creds, MdsOp::QuotaSet { ino, limits }).await? {
            MdsResponse::Quota(Some(q)) => Ok(q),
            r => Err(unexpected(r)),
        }
    }

    /// Every project's quota, by project id.
    pub async fn quota_list(&self, creds: &Creds) -> Result<Vec<QuotaInfo>, Error> {
        let mut all: Vec<QuotaInfo> = Vec::new();
        loop {
            let after = all.last().map_or(0, |q| q.project);
            match self.mds(creds, MdsOp::QuotaList { after }).await? {
                MdsResponse::Quotas(page) => {
                    let more = page.len() >= QUOTA_LIST_MAX;
                    all.extend(page);
                    if !more {
                        return Ok(all);
                    }
                }
                r => return Err(unexpected(r)),
            }
        }
    }

    /// statfs(2) of a path whose inode is `ino`: the cluster's figures, or, inside a
    /// project with limits, its quota as the size (as JuiceFS and CephFS show a directory
    /// quota).
    pub async fn statfs_at(&self, creds: &Creds, ino: Ino) -> Result<FsStats, Error> {
        let stats = self.statfs(creds).await?;
        Ok(match self.quota_get(creds, ino).await? {
            Some(q) => quota_stats(stats, &q),
            None => stats,
        })
    }
}

/// `stats` with the limits of quota `q` in place of the cluster's size and inodes (each
/// only if `q` limits it; free space is also never more than the cluster has). As the
/// cluster's, `files` is the inodes in use and `files_free` those left.
pub fn quota_stats(stats: FsStats, q: &QuotaInfo) -> FsStats {
    let mut s = stats;
    let hard = |hard: u64, soft: u64| if hard != 0 { hard } else { soft };
    let bytes = hard(q.limits.hard_bytes, q.limits.soft_bytes);
    if bytes != 0 {
        let left = bytes.saturating_sub(q.usage.bytes);
        s.capacity = Capacity {
            total_bytes: bytes,
            free_bytes: left.min(stats.capacity.free_bytes),
            avail_bytes: left.min(stats.capacity.avail_bytes),
        };
    }
    let inodes = hard(q.limits.hard_inodes, q.limits.soft_inodes);
    if inodes != 0 {
        s.files = q.usage.inodes;
        s.files_free = inodes.saturating_sub(q.usage.inodes);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::quota::QuotaUsage;

    #[test]
    fn statfs_shows_the_hard_limits_and_what_is_left_of_them() {
        let stats = FsStats {
            capacity: Capacity {
                total_bytes: 1 << 40,
                free_bytes: 1 << 39,
                avail_bytes: 1 << 38,
            },
            files: 7,
            files_free: 1 << 40,
        };
        let mut q = QuotaInfo {
            project: 5,
            limits: QuotaLimits {
                hard_bytes: 100 << 20,
                hard_inodes: 1000,
                ..QuotaLimits::default()
            },
            usage: QuotaUsage {
                bytes: 30 << 20,
                inodes: 10,
            },
            bytes_over_since_ms: 0,
            inodes_over_since_ms: 0,
            counting: false,
        };
        let s = quota_stats(stats, &q);
        assert_eq!(s.capacity.total_bytes, 100 << 20);
        assert_eq!(s.capacity.avail_bytes, 70 << 20);
        assert_eq!(s.files, 10);
        assert_eq!(s.files_free, 990);
        // No limit on a resource: the cluster's figures for it.
        q.limits.hard_inodes = 0;
        q.usage.bytes = 200 << 20;
        let s = quota_stats(stats, &q);
        assert_eq!((s.files, s.files_free), (7, 1 << 40));
        assert_eq!(s.capacity.free_bytes, 0, "over the limit: nothing free");
    }
}

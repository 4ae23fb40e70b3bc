//! The kernel's write-back cache, `-o writeback_cache` (off by default; docs/mount.md,
//! "The kernel's write-back cache"): asked of the kernel at init when the mount wants it,
//! and the setattr the kernel then sends with the times of the writes it cached.
//!
//! With the cache, the kernel keeps a file's mtime, ctime and size itself (it trusts them
//! over the MDS's for as long as it holds the inode), and writes the times back through a
//! handle open for writing, before a close's flush at the latest. Those are the times of
//! this client's writes, not a utimensat: the MDS would refuse an explicit time from a
//! writer that does not own the file, and the close would fail with EPERM.

use std::time::SystemTime;

use fuser::{FileHandle, InitFlags, KernelConfig, ReplyAttr, Request, TimeOrNow};
use rustre_proto::msg::mds::{SetAttr, TimeSet};
use rustre_proto::msg::Timestamp;

use super::{errno, file_attr, to_timestamp, Caller, RustreFs};

/// The mode, uid, gid, size and atime of a setattr.
pub(super) type OtherAttrs = (
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u64>,
    Option<TimeOrNow>,
);

/// Asks for the write-back cache at init when the mount wants it and the kernel offers it.
pub(super) fn ask(wanted: bool, config: &mut KernelConfig) {
    if !wanted {
        return;
    }
    let wb = InitFlags::FUSE_WRITEBACK_CACHE;
    if config.capabilities().contains(wb) && config.add_capabilities(wb).is_ok() {
        tracing::info!("kernel write-back cache on (-o writeback_cache)");
    } else {
        tracing::warn!("-o writeback_cache: the kernel does not offer it; writes go through");
    }
}

/// The setattr the write-back cache sends when the kernel writes an inode back: an
/// explicit mtime, a ctime (no other setattr carries one: only this cache makes the
/// kernel keep times) and a handle, nothing else. Returns the handle and the mtime.
pub(super) fn kernel_write_times(
    mtime: Option<TimeOrNow>,
    ctime: Option<SystemTime>,
    fh: Option<FileHandle>,
    others: OtherAttrs,
) -> Option<(u64, Timestamp)> {
    match (mtime, ctime, fh, others) {
        (Some(TimeOrNow::SpecificTime(t)), Some(_), Some(fh), (None, None, None, None, None)) => {
            Some((fh.0, to_timestamp(t)))
        }
        _ => None,
    }
}

impl RustreFs {
    /// Answers the kernel's write-back of the times of the writes it cached
    /// (`Client::kernel_write_times`). Through a handle not open for writing, it is a
    /// setattr like any other, and goes to the MDS.
    pub(super) fn reply_kernel_write_times(
        &self,
        req: &Request,
        ino: u64,
        fh: u64,
        t: Timestamp,
        reply: ReplyAttr,
    ) {
        let (c, who, ttl) = (self.client.clone(), Caller::of(req), self.attr_ttl());
        self.spawn(("setattr", ino), async move {
            let r = match c.kernel_write_times(ino, fh, t).await {
                Some(r) => r,
                None => {
                    let set = SetAttr {
                        mtime: Some(TimeSet::At(t)),
                        ..SetAttr::default()
                    };
                    c.setattr_file(&who.creds(), ino, set, Some(fh)).await
                }
            };
            match r {
                Ok(a) => reply.attr(&ttl, &file_attr(&a)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

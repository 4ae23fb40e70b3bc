//! The FUSE write. Most writes only join the client's write-back buffer: they are done on
//! fuser's thread when nothing in them would wait (`Client::write_buffered_now`), else on
//! the runtime (`Client::write_file_as`). The kernel's cached attributes or pages, when a
//! write makes them stale, are dropped from the runtime before the answer, never from
//! fuser's thread. A copy_file_range is a read and a write inside the client
//! (`Client::copy_range`).

use bytes::Bytes;
use fuser::{OpenFlags, ReplyWrite, WriteFlags};

use super::{drop_cached_attrs, drop_cached_data, errno, RustreFs};

impl RustreFs {
    /// Writes `data` at `offset` of `ino` through handle `fh` and replies.
    #[allow(clippy::too_many_arguments)] // the FUSE write's own arguments
    pub(super) fn write_data(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        data: Bytes,
        write_flags: WriteFlags,
        flags: OpenFlags,
        reply: ReplyWrite,
    ) {
        let (c, n) = (self.client.clone(), self.notifier.clone());
        // Set by the kernel for a writer without CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2): the
        // write clears setid bits, and the kernel's cached mode must not outlive it.
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        // The descriptor's flags as of this write (fcntl may have changed them since the
        // open). A write from the page cache (an mmap's) carries a guessed handle's flags
        // and its own place: never an append.
        let append =
            flags.0 & libc::O_APPEND != 0 && !write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        // Most writes only join the write-back buffer: done here, on fuser's thread. Not
        // one that may clear setid bits: the kernel's cached mode is dropped before the
        // answer, and never from this thread.
        let on_runtime = append || (kill && c.write_may_clear_setid(fh));
        if !on_runtime {
            if let Some(len) = c.write_buffered_now(fh, offset, &data) {
                return reply.written(len as u32);
            }
        }
        self.spawn(("write", ino), async move {
            match c.write_file_as(fh, offset, data, append).await {
                Ok(written) => {
                    if kill && c.write_cleared_setid(fh) {
                        drop_cached_attrs(&n, ino);
                    }
                    reply.written(written.len as u32);
                    if written.offset != offset && written.len > 0 {
                        // Another client appended since this kernel last learned the size:
                        // it put the bytes in its page cache at its own guess, where they
                        // are not.
                        drop_cached_data(n, ino);
                    }
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

impl RustreFs {
    /// Copies `len` bytes between two open files of this mount inside the client and
    /// replies how many it copied (`client/copy.rs`).
    pub(super) fn copy_range(
        &self,
        ino_out: u64,
        (fh_in, offset_in): (u64, u64),
        (fh_out, offset_out): (u64, u64),
        len: u64,
        reply: ReplyWrite,
    ) {
        let c = self.client.clone();
        self.spawn(("copy_file_range", ino_out), async move {
            match c
                .copy_range(fh_in, offset_in, fh_out, offset_out, len)
                .await
            {
                // At most COPY_MAX_BYTES: fits the answer.
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

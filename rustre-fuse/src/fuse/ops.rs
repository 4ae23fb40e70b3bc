//! `impl fuser::Filesystem` for [`RustreFs`]: each method converts its arguments, spawns
//! the client-library call and replies once. What would wait for nothing (a lookup, getattr
//! or getxattr the caches answer, a read the page cache holds, a write that only joins the
//! write-back buffer) is done on fuser's thread instead, without a hop to the runtime.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock, ReplyLseek,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustre_proto::msg::mds::{SetAttr, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT};
use rustre_proto::msg::FileKind;

use crate::client::NameTtl;

use super::replies::{
    open_flags, reply_empty, reply_entry, reply_listed, reply_listed_plus, reply_made, time_set,
};
use super::{
    drop_cached_attrs, errno, file_attr, name_str, placeholder_attr, xattr_reply, Caller, RustreFs,
    MAX_BACKGROUND_REQUESTS, MAX_WRITE_BYTES, STATFS_BLOCK_BYTES, STATFS_NAME_MAX,
};

/// Capabilities asked of the kernel when it offers them. POSIX and flock locks are claimed:
/// they go to the MDS, for every mount (docs/locks.md); no write-back cache unless the mount
/// asks for it ([`FuseConfig::writeback_cache`](super::FuseConfig)): by default every
/// write(2) goes through to the client.
///
/// FUSE_ATOMIC_O_TRUNC is not asked for: with it the kernel sends an open's O_TRUNC in the
/// OPEN, before its own ETXTBSY check (which Linux makes after the open), so
/// `open(O_RDONLY|O_TRUNC)` of a running program emptied it and the program crashed, though
/// the call failed with ETXTBSY. Without it the kernel checks first and then truncates with
/// a SETATTR, as for any file system.
const WANTED_CAPABILITIES: InitFlags = InitFlags::FUSE_ASYNC_READ
    .union(InitFlags::FUSE_BIG_WRITES)
    .union(InitFlags::FUSE_DO_READDIRPLUS)
    .union(InitFlags::FUSE_READDIRPLUS_AUTO)
    .union(InitFlags::FUSE_PARALLEL_DIROPS)
    .union(InitFlags::FUSE_CACHE_SYMLINKS)
    // The file system clears setuid/setgid on write, truncate and chown itself (the MDS
    // does), so the kernel need not ask for security.capability before every write.
    .union(InitFlags::FUSE_HANDLE_KILLPRIV)
    .union(InitFlags::FUSE_HANDLE_KILLPRIV_V2)
    // The kernel sends a create's mode without the umask, and the umask beside it: the MDS
    // applies it unless the directory has a default ACL, which Linux then lets decide.
    .union(InitFlags::FUSE_DONT_MASK)
    // The mount runs with default_permissions, so the kernel checks permissions itself on
    // what it caches (path walks through cached names included): it must know the ACLs
    // too. It asks for them as the system.posix_acl_* xattrs and caches them with the
    // attributes; the change feed's invalidations drop both (fuse/inval.rs).
    .union(InitFlags::FUSE_POSIX_ACL)
    .union(InitFlags::FUSE_MAX_PAGES)
    .union(InitFlags::FUSE_POSIX_LOCKS)
    .union(InitFlags::FUSE_FLOCK_LOCKS);

impl Filesystem for RustreFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let offered = config.capabilities();
        if let Err(missing) = config.add_capabilities(WANTED_CAPABILITIES & offered) {
            tracing::debug!(?missing, "kernel refused capabilities");
        }
        super::wbcache::ask(self.cfg.writeback_cache, config);
        if let Err(nearest) = config.set_max_write(MAX_WRITE_BYTES) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_WRITE_BYTES) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(MAX_BACKGROUND_REQUESTS);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND_REQUESTS * 3 / 4);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // A name that is not UTF-8 cannot exist here.
        let name = name_str(name);
        let (c, who, ttls) = (self.client.clone(), Caller::of(req), self.ttls());
        c.kernel_looked_up();
        let negative_ttl = self
            .client
            .kernel_ttl(self.cfg.negative_ttl.unwrap_or(self.cfg.entry_ttl));
        // What the kernel learns here, found or missing, it keeps for the entry TTL given
        // when answering (`Client::name_ttl`: longer while the feeds vouch for the name).
        let answer = move |reply: ReplyEntry, kept: NameTtl, r: Result<_, _>| match r {
            // Inode 0 with a TTL: the kernel remembers that the name does not exist
            // (until this mount creates it, or the TTL lapses).
            Err(rustre_proto::Error::NotFound) if !negative_ttl.is_zero() => {
                let ttl = kept.of(negative_ttl);
                let attr = placeholder_attr(0, FileKind::File);
                reply.entry_with_ttls(&ttl, &ttl, &attr, Generation(0))
            }
            r => reply_entry(reply, (ttls.0, kept.of(ttls.1)), r),
        };
        // Answered here, on fuser's thread, when the metadata cache knows.
        if let Some(r) = c.cached_lookup(|| who.creds(), who.uid, parent.0, &name) {
            return answer(reply, c.name_ttl(parent.0, &name), r);
        }
        self.spawn(("lookup", parent.0), async move {
            let r = c.lookup(&who.creds(), parent.0, &name).await;
            answer(reply, c.name_ttl(parent.0, &name), r)
        });
    }

    /// Inodes carry no per-lookup state here: everything is asked of the MDS by number.
    fn forget(&self, _req: &Request, _ino: INodeNo, _nlookup: u64) {}

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (c, who, ttl) = (self.client.clone(), Caller::of(req), self.attr_ttl());
        if let Some(a) = c.cached_getattr(ino.0) {
            return reply.attr(&ttl, &file_attr(&a));
        }
        self.spawn(("getattr", ino.0), async move {
            match c.getattr_ino(&who.creds(), ino.0).await {
                Ok(a) => reply.attr(&ttl, &file_attr(&a)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let others = (mode, uid, gid, size, atime);
        if let Some((fh, t)) = super::wbcache::kernel_write_times(mtime, ctime, fh, others) {
            return self.reply_kernel_write_times(req, ino.0, fh, t, reply);
        }
        let set = SetAttr {
            perm: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: time_set(atime),
            mtime: time_set(mtime),
            via_write_handle: false,
        };
        let (c, who, ttl) = (self.client.clone(), Caller::of(req), self.attr_ttl());
        // Kept until close (tar's times, owner and mode): answered here, on fuser's thread.
        // The file's bytes are likely all written by now: they start for the OSTs.
        if let Some(a) = c.kept_setattr(|| who.creds(), ino.0, &set) {
            let _rt = self.rt.enter();
            c.write_behind(ino.0);
            return reply.attr(&ttl, &file_attr(&a));
        }
        self.spawn(("setattr", ino.0), async move {
            match c
                .setattr_file(&who.creds(), ino.0, set, fh.map(|f| f.0))
                .await
            {
                Ok(a) => reply.attr(&ttl, &file_attr(&a)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("readlink", ino.0), async move {
            match c.readlink(&who.creds(), ino.0).await {
                Ok(t) => reply.data(&rustre_proto::raw_names::decode(&t)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let name = name_str(name);
        let Some(kind) = FileKind::from_mode(mode) else {
            return reply.error(fuser::Errno::EINVAL);
        };
        let (c, who, ttls) = (self.client.clone(), Caller::of(req), self.ttls());
        self.spawn(("mknod", parent.0), async move {
            let creds = who.creds();
            let mode = (mode & 0o7777, umask);
            let r = c
                .mknod_umask(&creds, parent.0, &name, kind, mode, u64::from(rdev))
                .await;
            reply_made(reply, &c, (parent.0, &name), ttls, r);
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name_str(name);
        let (c, who, ttls) = (self.client.clone(), Caller::of(req), self.ttls());
        self.spawn(("mkdir", parent.0), async move {
            let r = c
                .mkdir_umask(&who.creds(), parent.0, &name, mode & 0o7777, umask)
                .await;
            reply_made(reply, &c, (parent.0, &name), ttls, r);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_str(name);
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("unlink", parent.0), async move {
            let r = c.unlink(&who.creds(), parent.0, &name).await;
            if r.is_ok() {
                c.name_gone(parent.0, &name);
            }
            reply_empty(reply, r);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_str(name);
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("rmdir", parent.0), async move {
            let r = c.rmdir(&who.creds(), parent.0, &name).await;
            if r.is_ok() {
                c.name_gone(parent.0, &name);
            }
            reply_empty(reply, r);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = (name_str(link_name), name_str(target.as_os_str()));
        let (c, who, ttls) = (self.client.clone(), Caller::of(req), self.ttls());
        self.spawn(("symlink", parent.0), async move {
            let r = c.symlink(&who.creds(), parent.0, &name, &target).await;
            reply_made(reply, &c, (parent.0, &name), ttls, r);
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name_str(name), name_str(newname));
        let mut wire = 0;
        if flags.contains(RenameFlags::RENAME_WHITEOUT) {
            wire |= RENAME_WHITEOUT;
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            wire |= RENAME_NOREPLACE;
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            wire |= RENAME_EXCHANGE;
        }
        let (c, who) = (self.client.clone(), Caller::of(req));
        let exchange = wire & RENAME_EXCHANGE != 0;
        self.spawn(("rename", parent.0), async move {
            c.names_moving((parent.0, &name), (newparent.0, &newname), exchange);
            let creds = who.creds();
            let r = c
                .rename(&creds, parent.0, &name, newparent.0, &newname, wire)
                .await;
            reply_empty(reply, r);
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = name_str(newname);
        let (c, who, ttls) = (self.client.clone(), Caller::of(req), self.ttls());
        self.spawn(("link", ino.0), async move {
            let r = c.link(&who.creds(), ino.0, newparent.0, &newname).await;
            reply_made(reply, &c, (newparent.0, &newname), ttls, r);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (c, who, n) = (self.client.clone(), Caller::of(req), self.notifier.clone());
        self.spawn(("open", ino.0), async move {
            match c.open_file(&who.creds(), ino.0, flags.0).await {
                Ok(o) => {
                    if o.changed {
                        drop_cached_attrs(&n, ino.0);
                    }
                    reply.opened(FileHandle(o.fh), open_flags(o.keep_cache));
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let c = self.client.clone();
        c.kernel_asked_again(ino.0);
        // A read the page cache holds is answered here, on fuser's thread.
        let now = {
            let _rt = self.rt.enter();
            c.read_now(fh.0, offset, size as usize)
        };
        if let Some(data) = now {
            return reply.data(&data);
        }
        self.spawn(("read", ino.0), async move {
            match c.read_file(fh.0, offset, size as usize).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // fuser reuses its buffer, so the data is copied before the request moves on.
        let data = Bytes::copy_from_slice(data);
        self.write_data(ino.0, fh.0, offset, data, write_flags, flags, reply);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (from, to) = ((fh_in.0, offset_in), (fh_out.0, offset_out));
        self.copy_range(ino_out.0, from, to, len, reply);
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let c = self.client.clone();
        c.kernel_asked_again(ino.0);
        if c.may_hold_locks(ino.0, lock_owner.0) {
            // POSIX: any close by a process drops its fcntl locks on the file.
            let done = async move { reply_empty(reply, c.flush_file(fh.0).await) };
            return self.unlock_owner_then(Caller::of(req), ino.0, lock_owner.0, done);
        }
        if c.nothing_to_flush(fh.0) {
            return reply.ok();
        }
        self.spawn(("flush", ino.0), async move {
            reply_empty(reply, c.flush_file(fh.0).await)
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let c = self.client.clone();
        let done = async move { reply_empty(reply, c.release_file(fh.0).await) };
        let flock_owner = lock_owner.map(|o| o.0);
        if self.client.handle_may_hold_locks(fh.0, ino.0, flock_owner) {
            // The last close of a file flock-ed or OFD-locked through it.
            let at = (fh.0, ino.0);
            return self.release_locks_then(Caller::of(req), at, flock_owner, done);
        }
        self.spawn(("release", ino.0), done)
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        let who = Caller::of(req);
        self.get_lock(who, ino.0, lock_owner.0, (start, end), typ, reply);
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let (who, at) = (Caller::of(req), (fh.0, ino.0));
        self.set_lock(
            who,
            at,
            lock_owner.0,
            (start, end),
            (typ, pid),
            sleep,
            reply,
        );
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let c = self.client.clone();
        self.spawn(("fsync", ino.0), async move {
            reply_empty(reply, c.fsync_file(fh.0).await)
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("opendir", ino.0), async move {
            match c.open_dir(&who.creds(), ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let c = self.client.clone();
        // What the handle's buffer holds is handed out here, on fuser's thread.
        if let Some(listed) = self.read_dir_now(fh.0, offset) {
            return reply_listed(reply, Ok(listed));
        }
        self.spawn(("readdir", ino.0), async move {
            reply_listed(reply, c.read_dir(fh.0, offset).await)
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (c, ttl) = (self.client.clone(), self.attr_ttl().min(self.entry_ttl()));
        if let Some(listed) = self.read_dir_now(fh.0, offset) {
            return reply_listed_plus(reply, ttl, Ok(listed));
        }
        self.spawn(("readdirplus", ino.0), async move {
            reply_listed_plus(reply, ttl, c.read_dir(fh.0, offset).await)
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.client.release_dir(fh.0);
        reply.ok();
    }

    /// Makes every committed metadata change durable (on a durable MDS, namespace changes
    /// already are; bookkeeping and a relaxed MDS's changes are not until a sync).
    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("fsyncdir", ino.0), async move {
            reply_empty(reply, c.sync_metadata(&who.creds()).await)
        });
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("statfs", ino.0), async move {
            match c.statfs_at(&who.creds(), ino.0).await {
                Ok(s) => {
                    let b = u64::from(STATFS_BLOCK_BYTES);
                    reply.statfs(
                        s.capacity.total_bytes / b,
                        s.capacity.free_bytes / b,
                        s.capacity.avail_bytes / b,
                        s.files.saturating_add(s.files_free), // f_files is the total
                        s.files_free,
                        STATFS_BLOCK_BYTES,
                        STATFS_NAME_MAX,
                        STATFS_BLOCK_BYTES,
                    );
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        let name = name_str(name);
        if position != 0 || flags < 0 {
            return reply.error(fuser::Errno::EINVAL);
        }
        let (c, who, value) = (self.client.clone(), Caller::of(req), value.to_vec());
        self.spawn(("setxattr", ino.0), async move {
            let creds = who.creds();
            let r = c
                .set_xattr(&creds, ino.0, &name, &value, flags as u32)
                .await;
            reply_empty(reply, r);
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name_str(name);
        match self.client.cached_xattr(ino.0, &name) {
            Some(Ok(v)) => return xattr_reply(reply, size, &v),
            Some(Err(e)) => return reply.error(errno(e)),
            None => {}
        }
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("getxattr", ino.0), async move {
            match c.get_xattr(&who.creds(), ino.0, &name).await {
                Ok(v) => xattr_reply(reply, size, &v),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("listxattr", ino.0), async move {
            match c.list_xattr(&who.creds(), ino.0).await {
                Ok(names) => {
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(&rustre_proto::raw_names::decode(&n));
                        buf.push(0);
                    }
                    xattr_reply(reply, size, &buf);
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_str(name);
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("removexattr", ino.0), async move {
            reply_empty(reply, c.remove_xattr(&who.creds(), ino.0, &name).await);
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (c, who) = (self.client.clone(), Caller::of(req));
        let mask = mask.bits() as u32;
        self.spawn(("access", ino.0), async move {
            reply_empty(reply, c.access(&who.creds(), ino.0, mask).await);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name_str(name);
        if FileKind::from_mode(mode).is_some_and(|k| k != FileKind::File) {
            return reply.error(fuser::Errno::EINVAL);
        }
        // The reply carries fresh attributes, so no cached ones need dropping.
        let (c, who) = (self.client.clone(), Caller::of(req));
        let ttl = self.attr_ttl().min(self.entry_ttl());
        self.spawn(("create", parent.0), async move {
            let creds = who.creds();
            let mode = (mode & 0o7777, umask);
            match c
                .create_file_umask(&creds, parent.0, &name, mode, flags, None)
                .await
            {
                Ok(o) => reply.created(
                    &ttl,
                    &file_attr(&o.attr),
                    Generation(0),
                    FileHandle(o.fh),
                    open_flags(o.keep_cache),
                ),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (c, who, n) = (self.client.clone(), Caller::of(req), self.notifier.clone());
        self.spawn(("fallocate", ino.0), async move {
            let creds = who.creds();
            let r = c.fallocate_file(&creds, fh.0, offset, length, mode).await;
            if r.is_ok() {
                // The MDS cleared setid bits: the kernel's cached mode is stale.
                drop_cached_attrs(&n, ino.0);
            }
            reply_empty(reply, r);
        });
    }

    /// No ioctl is defined on rustre files: ENOTTY, as for a plain file (quietly: programs
    /// probe with TCGETS all the time).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(fuser::Errno::ENOTTY);
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // The kernel answers SEEK_SET/CUR/END itself; only SEEK_DATA and SEEK_HOLE come here.
        let want_data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return reply.error(fuser::Errno::EINVAL),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(fuser::Errno::ENXIO);
        };
        let (c, who) = (self.client.clone(), Caller::of(req));
        self.spawn(("lseek", ino.0), async move {
            match c
                .seek_data_hole(&who.creds(), ino.0, offset, want_data)
                .await
            {
                Ok(Some(at)) => reply.offset(at as i64),
                Ok(None) => reply.error(fuser::Errno::ENXIO),
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

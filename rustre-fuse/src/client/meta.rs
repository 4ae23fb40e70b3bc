//! Typed metadata calls. Each maps one MDS operation to its answer's type.

use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use rustre_proto::msg::acl::ACCESS_XATTR;
use rustre_proto::msg::mds::{DirEntry, FsStats, MdsOp, MdsResponse, SetAttr, READDIR_MAX_ENTRIES};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, LayoutSpec};
use rustre_proto::Error;

use super::capability::CAPABILITY_XATTR;
use super::files::Report;
use super::meta_cache::Epoch;
use super::meta_ops::check_layout;
use super::{unexpected, Client};

impl Client {
    /// A call answered with attributes (its layout checked); what this client wrote but has
    /// not reported yet is merged in.
    async fn attr_call(&self, creds: &Creds, op: MdsOp) -> Result<Attr, Error> {
        let mut a = self.raw_attr_call(creds, op).await?;
        self.merge_local(&mut a);
        Ok(a)
    }

    /// A call answered with attributes, as the MDS sent them (layout checked).
    async fn raw_attr_call(&self, creds: &Creds, op: MdsOp) -> Result<Attr, Error> {
        match self.mds(creds, op).await? {
            // A new node's (mkdir, mknod, symlink) comes with its directory's, which
            // the metadata cache took.
            MdsResponse::Attr(a) | MdsResponse::Created { attr: a, .. } => {
                check_layout(&a)?;
                Ok(a)
            }
            r => Err(unexpected(r)),
        }
    }

    /// What looking up `name` in `parent` answers, from the metadata cache, if it knows
    /// (`creds` is asked for only if the caller's groups matter; `uid` is the caller's).
    pub fn cached_lookup(
        &self,
        creds: impl FnOnce() -> Creds,
        uid: u32,
        parent: Ino,
        name: &str,
    ) -> Option<Result<Attr, Error>> {
        let known = self.meta_cache.lookup(creds, uid, parent, name)?;
        Some(Result::from(known).map(|mut a| {
            self.merge_local(&mut a);
            self.looked_up(parent, name, &a);
            a
        }))
    }

    /// A lookup found `a` as `name` in `parent`: a regular file's name is remembered for
    /// reading ahead of a reader that opens by name ([`super::lookahead`]).
    fn looked_up(&self, parent: Ino, name: &str, a: &Attr) {
        if a.kind == FileKind::File {
            self.lookahead.looked_up(a.ino, parent, name);
        }
    }

    /// The attributes of `ino` from the metadata cache, if it knows.
    pub fn cached_getattr(&self, ino: Ino) -> Option<Attr> {
        let mut a = self.meta_cache.getattr(ino)?;
        self.merge_local(&mut a);
        Some(a)
    }

    pub(super) async fn done_call(&self, creds: &Creds, op: MdsOp) -> Result<(), Error> {
        match self.mds(creds, op).await? {
            MdsResponse::Done => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    /// Resolves `name` in `parent`, from the metadata cache when it knows.
    pub async fn lookup(&self, creds: &Creds, parent: Ino, name: &str) -> Result<Attr, Error> {
        if let Some(r) = self.cached_lookup(|| creds.clone(), creds.uid, parent, name) {
            return r;
        }
        let asked = self.meta_cache.epoch();
        let op = MdsOp::Lookup {
            parent,
            name: name.to_string(),
        };
        let mut a = match self.raw_attr_call(creds, op).await {
            Ok(a) => a,
            Err(Error::NotFound) => {
                self.meta_cache.keep_entry(asked, parent, name, None);
                return Err(Error::NotFound);
            }
            Err(e) => return Err(e),
        };
        self.meta_cache.keep_entry(asked, parent, name, Some(&a));
        self.merge_local(&mut a);
        self.looked_up(parent, name, &a);
        Ok(a)
    }

    /// The attributes of `ino`, from the metadata cache when it knows.
    pub async fn getattr(&self, creds: &Creds, ino: Ino) -> Result<Attr, Error> {
        if let Some(a) = self.cached_getattr(ino) {
            return Ok(a);
        }
        self.getattr_from_mds(creds, ino).await
    }

    /// The attributes of `ino` as the MDS has them now, never from the cache: what the
    /// data path asks when an OST says the layout it holds is out of date.
    pub(crate) async fn getattr_from_mds(&self, creds: &Creds, ino: Ino) -> Result<Attr, Error> {
        let asked = self.meta_cache.epoch();
        let mut a = self.raw_attr_call(creds, MdsOp::GetAttr { ino }).await?;
        self.meta_cache.keep_attr(asked, &a);
        self.merge_local(&mut a);
        Ok(a)
    }

    /// Changes attributes. A size change is carried out by the MDS, which cuts every object
    /// to the length it has at the new size before it answers (docs/replication.md,
    /// "Truncate rule"), so bytes past the end never survive a shrink and this client sends
    /// no cut of its own: one sent after the MDS answered could land on data written since.
    pub(crate) async fn setattr(
        &self,
        creds: &Creds,
        ino: Ino,
        set: SetAttr,
    ) -> Result<Attr, Error> {
        // chown drops file capabilities on the MDS.
        self.capability.forget(ino);
        self.attr_call(creds, MdsOp::SetAttr { ino, set }).await
    }

    /// Creates a regular file without opening it (or, with `exclusive = false`, finds an
    /// existing one): an empty file with a chosen layout, as `rustre setstripe` makes. A
    /// file to write goes through [`Client::create_file`], which returns a handle.
    pub async fn create(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        perm: u32,
        exclusive: bool,
        layout: Option<LayoutSpec>,
    ) -> Result<Attr, Error> {
        self.create_open(creds, parent, name, (perm, 0), exclusive, None, layout)
            .await
            .map(|(attr, _)| attr)
    }

    /// Creates (or with `exclusive = false` opens an existing) regular file; with
    /// `open_flags` the file is opened in this session too (an existing file's O_TRUNC is
    /// carried out by the MDS before it answers). `(perm, umask)`: the mode asked for and
    /// the creating process's umask (`MdsOp::Create`).
    #[allow(clippy::too_many_arguments)] // mirrors the MDS call's fields one to one
    pub(crate) async fn create_open(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        (perm, umask): (u32, u32),
        exclusive: bool,
        open_flags: Option<i32>,
        layout: Option<LayoutSpec>,
    ) -> Result<(Attr, bool), Error> {
        let op = MdsOp::Create {
            parent,
            name: name.to_string(),
            perm,
            umask,
            exclusive,
            open_flags,
            layout,
        };
        self.make_file(creds, op).await
    }

    /// Makes directory `name` in `parent` with permission bits `perm`, as they are.
    pub async fn mkdir(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        perm: u32,
    ) -> Result<Attr, Error> {
        self.mkdir_umask(creds, parent, name, perm, 0).await
    }

    /// [`Client::mkdir`] for a process with `umask`, which the MDS applies unless `parent`
    /// has a default ACL (`MdsOp::Mkdir`).
    pub async fn mkdir_umask(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        perm: u32,
        umask: u32,
    ) -> Result<Attr, Error> {
        self.mkdir_call(creds, parent, name.to_string(), (perm, umask))
            .await
    }

    /// Makes node `name` of `kind` in `parent` with permission bits `perm`, as they are.
    pub async fn mknod(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        kind: FileKind,
        perm: u32,
        rdev: u64,
    ) -> Result<Attr, Error> {
        self.mknod_umask(creds, parent, name, kind, (perm, 0), rdev)
            .await
    }

    /// [`Client::mknod`] for a process with a umask: `(perm, umask)` (`MdsOp::Mknod`).
    pub async fn mknod_umask(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        kind: FileKind,
        (perm, umask): (u32, u32),
        rdev: u64,
    ) -> Result<Attr, Error> {
        let op = MdsOp::Mknod {
            parent,
            name: name.to_string(),
            kind,
            perm,
            umask,
            rdev,
        };
        self.make_file(creds, op).await.map(|(attr, _)| attr)
    }

    /// Sends `op`, a `Create` or a `Mknod` (a regular file's is made as an exclusive create
    /// is, and answered as one; another kind is answered with its attributes), and returns
    /// the inode's attributes. Of a regular file it made, the client learns who owns root's
    /// files (a squashing MDS), and that it has no extended attributes, so the kernel's
    /// probe before the first write needs no round trip (`O_CREAT` without `O_EXCL` too:
    /// `>` in a shell).
    /// A create or mknod: the new (or opened) file's attributes, and whether it is new.
    async fn make_file(&self, creds: &Creds, op: MdsOp) -> Result<(Attr, bool), Error> {
        let asked = tokio::time::Instant::now();
        let (mut attr, new) = match self.mds(creds, op).await? {
            MdsResponse::Attr(a) => (a, false),
            MdsResponse::Created { attr, new, .. } => (attr, new),
            r => return Err(unexpected(r)),
        };
        check_layout(&attr)?;
        self.merge_local(&mut attr);
        if new {
            self.files.note_new_inode(creds, &attr);
            self.capability.put(attr.ino, asked, &Err(Error::NoData));
        }
        Ok((attr, new))
    }

    pub async fn symlink(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        target: &str,
    ) -> Result<Attr, Error> {
        let op = MdsOp::Symlink {
            parent,
            name: name.to_string(),
            target: target.to_string(),
        };
        self.attr_call(creds, op).await
    }

    pub async fn readlink(&self, creds: &Creds, ino: Ino) -> Result<String, Error> {
        match self.mds(creds, MdsOp::Readlink { ino }).await? {
            MdsResponse::Target(t) => Ok(t),
            r => Err(unexpected(r)),
        }
    }

    pub async fn link(
        &self,
        creds: &Creds,
        ino: Ino,
        new_parent: Ino,
        new_name: &str,
    ) -> Result<Attr, Error> {
        let new_name = new_name.to_string();
        self.dirops_ahead.caps.linking(ino);
        self.attr_call(
            creds,
            MdsOp::Link {
                ino,
                new_parent,
                new_name,
            },
        )
        .await
    }

    /// Sends an unlink, rmdir or rename: its answer says what it left, which the cache
    /// keeps ([`own_results`]).
    async fn names_call(&self, creds: &Creds, op: MdsOp) -> Result<(), Error> {
        let names = super::meta_ops::request_entries(&op);
        let r = self.mds(creds, op).await;
        // Whatever the outcome, what open listings fetched for these names before may be
        // out of date: they stop handing it out.
        for (parent, name) in names {
            self.dirs.drop_listed(parent, &name).await;
        }
        match r? {
            MdsResponse::NamesChanged(n) => {
                // Pages of destroyed inodes go now rather than when the LRU reaches them.
                for ino in super::meta_ops::destroyed(&n) {
                    self.cache.invalidate(ino);
                    // A directory removed: its capability, if held, went with it.
                    self.drop_dir_cap(ino);
                }
                Ok(())
            }
            r => Err(unexpected(r)),
        }
    }

    /// Unlinks `name` from `parent`: answered ahead of the MDS when the cache settles the
    /// outcome ([`super::async_dirops`]), else sent and waited for.
    pub async fn unlink(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
    ) -> Result<(), Error> {
        if self.try_unlink_ahead(creds, parent, name).await {
            return Ok(());
        }
        let name = name.to_string();
        self.names_call(creds, MdsOp::Unlink { parent, name }).await
    }

    pub async fn rmdir(&self, creds: &Creds, parent: Ino, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.names_call(creds, MdsOp::Rmdir { parent, name }).await
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`: answered ahead of the MDS
    /// when it stays in its directory, has no flags and the cache settles the outcome
    /// ([`super::async_dirops`]), else sent and waited for.
    pub async fn rename(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
        new_parent: Ino,
        new_name: &str,
        flags: u32,
    ) -> Result<(), Error> {
        if parent == new_parent
            && flags == 0
            && self.try_rename_ahead(creds, parent, name, new_name).await
        {
            return Ok(());
        }
        // A file moved to another directory may be reached there.
        self.dirops_ahead.caps.moving_between(parent, new_parent);
        let op = MdsOp::Rename {
            parent,
            name: name.to_string(),
            new_parent,
            new_name: new_name.to_string(),
            flags,
        };
        self.names_call(creds, op).await
    }

    /// One page of a directory listing after the name cookie `after`.
    pub async fn readdir(
        &self,
        creds: &Creds,
        ino: Ino,
        after: Option<&str>,
        limit: u32,
        plus: bool,
    ) -> Result<(Vec<DirEntry>, bool), Error> {
        let op = MdsOp::Readdir {
            ino,
            after: after.map(str::to_string),
            limit: limit.min(READDIR_MAX_ENTRIES),
            plus,
        };
        let asked = self.meta_cache.epoch();
        match self.mds(creds, op).await? {
            MdsResponse::Entries { mut entries, eof } => {
                self.prime_listed(asked, ino, &mut entries)?;
                Ok((entries, eof))
            }
            r => Err(unexpected(r)),
        }
    }

    /// Entries of directory `dir` listed with their attributes (asked for at `asked`):
    /// primes the metadata cache as a lookup of each name would, and merges what this
    /// client knows into their attributes.
    pub(super) fn prime_listed(
        &self,
        asked: Epoch,
        dir: Ino,
        entries: &mut [DirEntry],
    ) -> Result<(), Error> {
        for e in entries.iter_mut() {
            let Some(a) = e.attr.as_mut() else { continue };
            check_layout(a)?;
            self.meta_cache.keep_entry(asked, dir, &e.name, Some(a));
            self.merge_local(a);
        }
        Ok(())
    }

    /// Every entry of a directory (paged underneath).
    pub async fn readdir_all(
        &self,
        creds: &Creds,
        ino: Ino,
        plus: bool,
    ) -> Result<Vec<DirEntry>, Error> {
        let mut all: Vec<DirEntry> = Vec::new();
        loop {
            let after = all.last().map(|e| e.name.clone());
            let (page, eof) = self
                .readdir(creds, ino, after.as_deref(), READDIR_MAX_ENTRIES, plus)
                .await?;
            all.extend(page);
            if eof {
                return Ok(all);
            }
        }
    }

    /// Opens `ino` in this session (permission check, O_TRUNC, open record). The MDS answers
    /// once an O_TRUNC's objects are cut; an open for reading of a file whose data is on
    /// the MDS brings its bytes (`super::inline`).
    pub(crate) async fn open(
        &self,
        creds: &Creds,
        ino: Ino,
        flags: i32,
    ) -> Result<(Attr, Option<Bytes>), Error> {
        let (mut attr, data) = match self.mds(creds, MdsOp::Open { ino, flags }).await? {
            MdsResponse::Attr(a) => (a, None),
            MdsResponse::InlineData { attr, data } => (attr, data),
            r => return Err(unexpected(r)),
        };
        check_layout(&attr)?;
        self.merge_local(&mut attr);
        Ok((attr, data))
    }

    /// Tells the MDS the size and mtime written data reached, and the stripes written.
    pub(super) async fn report_size(
        &self,
        creds: &Creds,
        ino: Ino,
        r: &Report,
    ) -> Result<Attr, Error> {
        let op = MdsOp::ReportSize {
            ino,
            size: r.size,
            mtime: r.mtime,
            truncate_version: r.truncate_version,
            written: r.written,
            allocated: r.allocated.clone(),
        };
        self.attr_call(creds, op).await
    }

    /// [`Client::report_size`] and a setattr of `set` by the same caller in one call
    /// (`MdsOp::ReportAndSetAttr`): the attributes after both, and the MDS's refusal of
    /// `set` if it refused it (the report landed all the same). An error: nothing applied.
    pub(super) async fn report_and_setattr(
        &self,
        creds: &Creds,
        ino: Ino,
        r: &Report,
        set: SetAttr,
    ) -> Result<(Attr, Option<Error>), Error> {
        // chown drops file capabilities on the MDS, as in `setattr`.
        self.capability.forget(ino);
        let op = MdsOp::ReportAndSetAttr {
            ino,
            size: r.size,
            mtime: r.mtime,
            truncate_version: r.truncate_version,
            written: r.written,
            allocated: r.allocated.clone(),
            set,
        };
        match self.mds(creds, op).await? {
            MdsResponse::ReportedSetAttr { mut attr, refused } => {
                check_layout(&attr)?;
                self.merge_local(&mut attr);
                Ok((attr, refused))
            }
            r => Err(unexpected(r)),
        }
    }

    pub async fn access(&self, creds: &Creds, ino: Ino, mask: u32) -> Result<(), Error> {
        self.done_call(creds, MdsOp::Access { ino, mask }).await
    }

    pub async fn statfs(&self, creds: &Creds) -> Result<FsStats, Error> {
        match self.mds(creds, MdsOp::StatFs).await? {
            MdsResponse::StatFs(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }

    /// What [`Client::get_xattr`] answers without asking the MDS, if it can: the probes the
    /// kernel makes around permission checks and writes. Never waits (the FUSE adapter
    /// answers these on its own thread).
    pub fn cached_xattr(&self, ino: Ino, name: &str) -> Option<Result<Vec<u8>, Error>> {
        // The kernel asks for a directory's access ACL at each permission check after a
        // getattr of it (`default_permissions`: rm -rf in a directory someone else owns,
        // once per file). The attributes carry it; "none" is answered from the cache as the
        // MDS would (it checks no permission for ACLs).
        if name == ACCESS_XATTR && self.cached_getattr(ino).is_some_and(|a| a.acl.is_none()) {
            return Some(Err(Error::NoData));
        }
        // The kernel's probe before the first write of each open (file capabilities).
        if name == CAPABILITY_XATTR {
            return self.capability.get(ino);
        }
        None
    }

    pub async fn get_xattr(&self, creds: &Creds, ino: Ino, name: &str) -> Result<Vec<u8>, Error> {
        if let Some(r) = self.cached_xattr(ino, name) {
            return r;
        }
        let probe = name == CAPABILITY_XATTR;
        let asked = Instant::now();
        let name = name.to_string();
        let r = match self.mds(creds, MdsOp::GetXattr { ino, name }).await {
            Ok(MdsResponse::Xattr(v)) => Ok(v),
            Ok(r) => Err(unexpected(r)),
            Err(e) => Err(e),
        };
        if probe {
            self.capability.put(ino, asked, &r);
        }
        r
    }

    pub async fn set_xattr(
        &self,
        creds: &Creds,
        ino: Ino,
        name: &str,
        value: &[u8],
        flags: u32,
    ) -> Result<(), Error> {
        self.send_kept_attrs(ino).await?;
        self.capability.forget(ino);
        let op = MdsOp::SetXattr {
            ino,
            name: name.to_string(),
            value: value.to_vec(),
            flags,
        };
        self.done_call(creds, op).await
    }

    pub async fn list_xattr(&self, creds: &Creds, ino: Ino) -> Result<Vec<String>, Error> {
        match self.mds(creds, MdsOp::ListXattr { ino }).await? {
            MdsResponse::XattrNames(v) => Ok(v),
            r => Err(unexpected(r)),
        }
    }

    pub async fn remove_xattr(&self, creds: &Creds, ino: Ino, name: &str) -> Result<(), Error> {
        self.send_kept_attrs(ino).await?;
        self.capability.forget(ino);
        let name = name.to_string();
        self.done_call(creds, MdsOp::RemoveXattr { ino, name })
            .await
    }

    pub async fn set_dir_layout(
        &self,
        creds: &Creds,
        ino: Ino,
        spec: Option<LayoutSpec>,
    ) -> Result<(), Error> {
        self.done_call(creds, MdsOp::SetDirLayout { ino, spec })
            .await
    }

    /// Tells the MDS that the copies in `slots` of `ino`'s layout (version `version`) missed
    /// a write (docs/replication.md, write rule); answers the new layout, which open
    /// handles of `ino` use from now on. A mutation: it carries a sequence number, so a
    /// retry after a lost answer is answered from the MDS's record.
    pub(crate) async fn mark_stale(
        &self,
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    ) -> Result<Layout, Error> {
        let op = MdsOp::MarkStale {
            ino,
            slots,
            version,
        };
        let attr = self.attr_call(&Creds::root(), op).await?;
        let layout = attr
            .layout
            .ok_or_else(|| Error::Protocol("MarkStale answered without a layout".into()))?;
        // `attr_call` merged the answer (its layout too) into the inode's state if it is
        // open here, so later reads and writes use it.
        Ok(layout)
    }

    /// Makes every metadata change acknowledged so far durable on the MDS (for fsync).
    pub async fn sync_metadata(&self, creds: &Creds) -> Result<(), Error> {
        self.done_call(creds, MdsOp::SyncMeta).await
    }

    pub async fn get_dir_layout(
        &self,
        creds: &Creds,
        ino: Ino,
    ) -> Result<Option<LayoutSpec>, Error> {
        match self.mds(creds, MdsOp::GetDirLayout { ino }).await? {
            MdsResponse::DirLayout(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }
}

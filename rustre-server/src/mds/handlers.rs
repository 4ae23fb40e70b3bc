//! One handler per MDS operation: which directory locks it takes, what kind of mutation it
//! is, and which transaction body ([`super::namespace`], [`super::attr`], [`super::open`],
//! [`super::replica`]) it runs. Handlers answer with [`MdsError`]; the dispatcher turns it
//! into the wire error.

use std::sync::Arc;

use rustre_proto::msg::mds::{
    AtimeUpdate, FsStats, MdsResponse, SetAttr, ACCESSED_MAX_INODES, READDIR_MAX_ENTRIES,
    RELEASE_MAX_INOS, RENAME_WHITEOUT,
};
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{Attr, Capacity, Creds, FileKind, Ino, LayoutSpec, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::create::CreateRequest;
use super::dispatch::Call;
use super::error::MdsError;
use super::namespace::{self, Ctx, NewInode};
use super::txn::Mutation;
use super::versions;
use super::{attr, inline, layout, open, replica, store, truncate, Mds};
use crate::meta::Transaction;
use crate::schema;

type Answer = Result<MdsResponse, MdsError>;

/// Inode numbers an MDS reports as free: far more than any store holds.
const FILES_MAX: u64 = 1 << 48;

impl Mds {
    pub(super) async fn open_session(self: &Arc<Self>, call: Call, client: String) -> Answer {
        let lease = self.cfg.session_lease_ms;
        // On disk before it is used, on every MDS: a session number handed out again after
        // a power loss would mix two clients' opens and request records.
        let change = call.on_disk();
        let id = self
            .txn(call.creds, vec![], change, move |tx, _| {
                open::open_session(tx, &client, rustre_proto::host::now_ms(), lease)
            })
            .await?;
        Ok(MdsResponse::Session {
            id,
            lease_ms: lease,
            inline_max: self.inline_max() as u32,
        })
    }

    pub(super) async fn renew_session(self: &Arc<Self>, call: Call) -> Answer {
        let (lease, session) = (self.cfg.session_lease_ms, call.session);
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            open::renew_session(tx, session, rustre_proto::host::now_ms(), lease)
        })
        .await?;
        Ok(MdsResponse::Done)
    }

    pub(super) async fn close_session(self: &Arc<Self>, call: Call) -> Answer {
        let session = call.session;
        // Each transaction ends part of the session; repeat until it is gone.
        loop {
            let ended = self
                .txn(call.creds.clone(), vec![], Mutation::WRITE, move |tx, _| {
                    open::end_session(tx, session)
                })
                .await?;
            for ino in &ended.unlocked {
                self.lock_waits.wake(*ino);
            }
            for (ino, layout) in &ended.suspect {
                versions::announce(&self.cluster, *ino, layout).await;
            }
            if ended.done {
                let _ = self.dir_caps.end_session(session);
                return Ok(MdsResponse::Done);
            }
        }
    }

    pub(super) async fn lookup(self: &Arc<Self>, call: Call, parent: Ino, name: String) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
            namespace::lookup(tx, c, parent, &name)
        })
        .await
        .map(MdsResponse::Attr)
    }

    pub(super) async fn getattr(self: &Arc<Self>, call: Call, ino: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            Ok::<_, Error>(store::inode(tx, ino)?.attr)
        })
        .await
        .map(MdsResponse::Attr)
    }

    /// A size change is answered only once its objects are cut ([`super::truncate`]); a
    /// repeat of the call (same request id) carries the cut out too.
    pub(super) async fn setattr(self: &Arc<Self>, call: Call, ino: Ino, set: SetAttr) -> Answer {
        let change = call.change();
        let mut o = self
            .txn(call.creds, vec![ino], change, move |tx, c| {
                attr::setattr(tx, c, ino, &set)
            })
            .await?;
        if o.cut_pending {
            truncate::test_crash_point(ino);
            self.cut_before_answer(&mut o.attr).await?;
        }
        Ok(MdsResponse::Attr(o.attr))
    }

    /// Carries out the pending truncate of `attr.ino` ([`Mds::finish_truncate`]); copies it
    /// marked stale show in `attr`'s layout.
    pub(super) async fn cut_before_answer(
        self: &Arc<Self>,
        attr: &mut Attr,
    ) -> Result<(), MdsError> {
        if let Some(layout) = self.finish_truncate(attr.ino).await? {
            attr.layout = Some(layout);
        }
        Ok(())
    }

    pub(super) async fn create_file(self: &Arc<Self>, call: Call, req: CreateRequest) -> Answer {
        let change = call.change();
        self.create(change, call.creds, call.session, req)
            .await
            .map(|(attr, parent, new)| MdsResponse::Created {
                attr,
                parent: Box::new(parent),
                new,
                capped: false,
            })
    }

    /// Creates a directory, device, FIFO, socket or symlink: an inode without objects.
    /// Answered as a create is, with the directory's attributes from the same transaction,
    /// so the caller's cache knows them (the kernel asks for them after every change).
    async fn make_node(
        self: &Arc<Self>,
        call: Call,
        parent: Ino,
        name: String,
        node: impl Fn(Ino) -> NewInode + Send + 'static,
    ) -> Answer {
        let ino = self.alloc_ino().await?;
        self.make_node_as(call, parent, name, ino, node).await
    }

    /// [`Mds::make_node`] of inode number `ino`, taken already.
    async fn make_node_as(
        self: &Arc<Self>,
        call: Call,
        parent: Ino,
        name: String,
        ino: Ino,
        node: impl Fn(Ino) -> NewInode + Send + 'static,
    ) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![parent], change, move |tx, c| {
            let attr = namespace::create_entry(tx, c, parent, &name, node(ino))?;
            Ok::<_, Error>((attr, store::inode(tx, parent)?.attr))
        })
        .await
        .map(|(attr, parent)| MdsResponse::Created {
            attr,
            parent: Box::new(parent),
            new: true,
            capped: false,
        })
    }

    /// With `want_cap`, the caller's session gets the new directory's capability
    /// ([`super::dir_caps`]) if this MDS grants them: granted before the directory is made,
    /// so that no other session can name it uncapped, and ended if it was not made (or a
    /// retry answered what an earlier try made).
    pub(super) async fn mkdir(
        self: &Arc<Self>,
        call: Call,
        parent: Ino,
        name: String,
        (perm, umask): (u32, u32),
        want_cap: bool,
    ) -> Answer {
        let ino = self.alloc_ino().await?;
        let granted = want_cap && self.dir_caps.grant(ino, parent, call.session);
        let node = move |ino| NewInode {
            ino,
            kind: FileKind::Dir,
            perm,
            umask,
            rdev: 0,
            target: None,
            layout: None,
        };
        let answer = self.make_node_as(call, parent, name, ino, node).await;
        match answer {
            Ok(MdsResponse::Created {
                attr,
                parent,
                new,
                capped: _,
            }) if granted && attr.ino == ino => Ok(MdsResponse::Created {
                attr,
                parent,
                new,
                capped: true,
            }),
            other => {
                if granted {
                    self.dir_caps.forget(ino);
                }
                other
            }
        }
    }

    pub(super) async fn mknod(
        self: &Arc<Self>,
        call: Call,
        parent: Ino,
        name: String,
        kind: FileKind,
        (perm, umask): (u32, u32),
        rdev: u64,
    ) -> Answer {
        match kind {
            FileKind::Dir | FileKind::Symlink => {
                return Err(Error::Invalid("mknod of a directory or symlink".into()).into())
            }
            FileKind::File => {
                let req = CreateRequest {
                    parent,
                    name,
                    perm,
                    umask,
                    exclusive: true,
                    open_flags: None,
                    layout: None,
                };
                return self.create_file(call, req).await;
            }
            FileKind::CharDev | FileKind::BlockDev if call.creds.uid != 0 => {
                return Err(Error::NotPermitted.into())
            }
            _ => {}
        }
        self.make_node(call, parent, name, move |ino| NewInode {
            ino,
            kind,
            perm,
            umask,
            rdev,
            target: None,
            layout: None,
        })
        .await
    }

    pub(super) async fn symlink(
        self: &Arc<Self>,
        call: Call,
        parent: Ino,
        name: String,
        target: String,
    ) -> Answer {
        namespace::validate_target(&target)?;
        self.make_node(call, parent, name, move |ino| NewInode {
            ino,
            kind: FileKind::Symlink,
            perm: 0o777,
            umask: 0,
            rdev: 0,
            target: Some(target.clone()),
            layout: None,
        })
        .await
    }

    pub(super) async fn readlink(self: &Arc<Self>, call: Call, ino: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            attr::readlink(tx, ino)
        })
        .await
        .map(MdsResponse::Target)
    }

    pub(super) async fn link(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        new_parent: Ino,
        new_name: String,
    ) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![new_parent, ino], change, move |tx, c| {
            namespace::link(tx, c, ino, new_parent, &new_name)
        })
        .await
        .map(MdsResponse::Attr)
    }

    pub(super) async fn unlink(self: &Arc<Self>, call: Call, parent: Ino, name: String) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![parent], change, move |tx, c| {
            namespace::unlink(tx, c, parent, &name)
        })
        .await
        .map(|n| MdsResponse::NamesChanged(Box::new(n)))
    }

    pub(super) async fn rmdir(self: &Arc<Self>, call: Call, parent: Ino, name: String) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![parent], change, move |tx, c| {
            namespace::rmdir(tx, c, parent, &name)
        })
        .await
        .map(|n| MdsResponse::NamesChanged(Box::new(n)))
    }

    pub(super) async fn rename(
        self: &Arc<Self>,
        call: Call,
        (parent, name): (Ino, String),
        (new_parent, new_name): (Ino, String),
        flags: u32,
    ) -> Answer {
        let whiteout = if flags & RENAME_WHITEOUT != 0 {
            Some(self.alloc_ino().await?)
        } else {
            None
        };
        let change = call.change();
        self.txn(
            call.creds,
            vec![parent, new_parent],
            change,
            move |tx, c| {
                namespace::rename(tx, c, parent, &name, new_parent, &new_name, flags, whiteout)
            },
        )
        .await
        .map(|n| MdsResponse::NamesChanged(Box::new(n)))
    }

    pub(super) async fn readdir(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        after: Option<String>,
        limit: u32,
        plus: bool,
    ) -> Answer {
        let limit = limit.clamp(1, READDIR_MAX_ENTRIES) as usize;
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
            namespace::readdir(tx, c, ino, after.as_deref(), limit, plus)
        })
        .await
        .map(|(entries, eof)| MdsResponse::Entries { entries, eof })
    }

    pub(super) async fn open_dir(self: &Arc<Self>, call: Call, ino: Ino, limit: u32) -> Answer {
        let limit = limit.clamp(1, READDIR_MAX_ENTRIES) as usize;
        let (attr, parent, entries, eof) = self
            .txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
                namespace::open_dir(tx, c, ino, limit)
            })
            .await?;
        Ok(MdsResponse::DirOpened {
            attr,
            parent,
            entries,
            eof,
        })
    }

    /// An open is bookkeeping, unless it truncates. A file with a truncate pending (this
    /// open's O_TRUNC, or one not carried out yet) is opened only once its objects are cut.
    pub(super) async fn open(self: &Arc<Self>, call: Call, ino: Ino, flags: i32) -> Answer {
        let kind = if flags & libc::O_TRUNC != 0 {
            call.change()
        } else {
            call.bookkeeping()
        };
        let session = call.session;
        let creds = call.creds;
        let reads_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        // The bytes with the attributes, read in the same transaction: a cold read of a
        // small file is this one call. Not in the recorded answer (`txn_then`).
        let inline_bytes = move |tx: &mut dyn Transaction, opened: &(Attr, bool)| {
            let (attr, cut_pending) = opened;
            if reads_only && attr.inline && !cut_pending {
                Ok(Some(inline::read(tx, ino)?))
            } else {
                Ok::<_, MdsError>(None)
            }
        };
        let ((mut attr, cut_pending), read) = self
            .open_after_spills(|| {
                let open = move |tx: &mut dyn Transaction, c: &Ctx| {
                    inline::check_write_open(tx, ino, flags)?;
                    let attr = open::open(tx, c, session, ino, flags, false)?;
                    Ok::<_, MdsError>((attr, truncate::pending(tx, ino)?))
                };
                self.txn_then(creds.clone(), vec![ino], kind, open, inline_bytes)
            })
            .await?;
        if let Some((attr, data)) = read {
            return Ok(MdsResponse::InlineData { attr, data });
        }
        if cut_pending {
            self.cut_before_answer(&mut attr).await?;
        }
        if reads_only && attr.inline {
            // A cut was pending: the bytes as it left them.
            let (attr, data) = self
                .txn(creds, vec![], Mutation::ReadOnly, move |tx, _| {
                    inline::read(tx, ino)
                })
                .await?;
            return Ok(MdsResponse::InlineData { attr, data });
        }
        Ok(MdsResponse::Attr(attr))
    }

    pub(super) async fn release(self: &Arc<Self>, call: Call, inos: Vec<Ino>) -> Answer {
        if inos.len() > RELEASE_MAX_INOS {
            return Err(Error::Invalid(format!(
                "release of {} inodes in one call (at most {RELEASE_MAX_INOS})",
                inos.len()
            ))
            .into());
        }
        let (kind, session) = (call.bookkeeping(), call.session);
        self.txn(call.creds, inos.clone(), kind, move |tx, _| {
            inos.iter()
                .try_for_each(|ino| open::release(tx, session, *ino))
        })
        .await
        .map(|_| MdsResponse::Done)
    }

    pub(super) async fn report_size(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        report: attr::SizeReport,
    ) -> Answer {
        let kind = call.bookkeeping();
        self.txn(call.creds, vec![ino], kind, move |tx, c| {
            attr::report_size(tx, c, ino, &report)
        })
        .await
        .map(MdsResponse::Attr)
    }

    /// A size report with the attribute changes kept until close
    /// (`MdsOp::ReportAndSetAttr`): a durable change when it carries any, as a setattr;
    /// bookkeeping otherwise, as a size report.
    pub(super) async fn report_and_setattr(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        report: attr::SizeReport,
        set: SetAttr,
    ) -> Answer {
        let kind = if set == SetAttr::default() {
            call.bookkeeping()
        } else {
            call.change()
        };
        self.txn(call.creds, vec![ino], kind, move |tx, c| {
            attr::report_and_setattr(tx, c, ino, &report, &set)
        })
        .await
        .map(|r| MdsResponse::ReportedSetAttr {
            attr: r.attr,
            refused: r.refused,
        })
    }

    /// An atime moved by a read: bookkeeping (durable by the next sync), as size reports.
    pub(super) async fn accessed(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        atime: Timestamp,
        relative: bool,
    ) -> Answer {
        let kind = call.bookkeeping();
        self.txn(call.creds, vec![ino], kind, move |tx, _| {
            attr::accessed(tx, ino, atime, relative)
        })
        .await
        .map(MdsResponse::Attr)
    }

    /// `AccessedMany`: every update in one transaction; an inode gone meanwhile is answered
    /// `None` and does not fail the others.
    pub(super) async fn accessed_many(
        self: &Arc<Self>,
        call: Call,
        updates: Vec<AtimeUpdate>,
    ) -> Answer {
        if updates.len() > ACCESSED_MAX_INODES {
            return Err(Error::Invalid(format!(
                "{} atime updates in one call (at most {ACCESSED_MAX_INODES})",
                updates.len()
            ))
            .into());
        }
        let kind = call.bookkeeping();
        let inos = updates.iter().map(|u| u.ino).collect();
        self.txn(call.creds, inos, kind, move |tx, _| {
            updates
                .iter()
                .map(|u| match attr::accessed(tx, u.ino, u.atime, u.relative) {
                    Ok(a) => Ok(Some(a)),
                    Err(Error::NotFound) => Ok(None),
                    Err(e) => Err(e),
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .await
        .map(MdsResponse::Attrs)
    }

    pub(super) async fn access(self: &Arc<Self>, call: Call, ino: Ino, mask: u32) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
            attr::access(tx, c, ino, mask)
        })
        .await
        .map(|_| MdsResponse::Done)
    }

    pub(super) async fn get_xattr(self: &Arc<Self>, call: Call, ino: Ino, name: String) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
            attr::get_xattr(tx, c, ino, &name)
        })
        .await
        .map(MdsResponse::Xattr)
    }

    pub(super) async fn set_xattr(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        name: String,
        value: Vec<u8>,
        flags: u32,
    ) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![ino], change, move |tx, c| {
            attr::set_xattr(tx, c, ino, &name, &value, flags)
        })
        .await
        .map(|_| MdsResponse::Done)
    }

    pub(super) async fn list_xattr(self: &Arc<Self>, call: Call, ino: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, c| {
            attr::list_xattr(tx, c, ino)
        })
        .await
        .map(MdsResponse::XattrNames)
    }

    pub(super) async fn remove_xattr(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        name: String,
    ) -> Answer {
        let change = call.change();
        self.txn(call.creds, vec![ino], change, move |tx, c| {
            attr::remove_xattr(tx, c, ino, &name)
        })
        .await
        .map(|_| MdsResponse::Done)
    }

    pub(super) async fn set_dir_layout(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        spec: Option<LayoutSpec>,
    ) -> Answer {
        if let Some(s) = &spec {
            // Reject what could never produce a valid layout now, not at create time.
            let map = self.map_for(Some(s)).await;
            layout::choose_at(0, Some(s), None, &map)?;
        }
        let change = call.change();
        self.txn(call.creds, vec![ino], change, move |tx, c| {
            attr::set_dir_layout(tx, c, ino, spec.clone())
        })
        .await
        .map(|_| MdsResponse::Done)
    }

    pub(super) async fn get_dir_layout(self: &Arc<Self>, call: Call, ino: Ino) -> Answer {
        self.txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
            attr::get_dir_layout(tx, ino)
        })
        .await
        .map(MdsResponse::DirLayout)
    }

    pub(super) async fn mark_stale(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    ) -> Answer {
        let change = call.on_disk();
        let attr = self
            .txn(call.creds, vec![ino], change, move |tx, _| {
                replica::mark_stale(tx, ino, &slots, version)
            })
            .await?;
        // Other writers holding the older layout learn of the stale copies at their next
        // write, refused by the live copies (in the background: this writer need not wait).
        if let Some(layout) = attr.layout.clone().filter(|l| l.version > version) {
            let cluster = self.cluster.clone();
            tokio::spawn(async move { versions::announce(&cluster, ino, &layout).await });
        }
        Ok(MdsResponse::Attr(attr))
    }

    pub(super) async fn move_copies(self: &Arc<Self>, call: Call, ino: Ino, ost: u32) -> Answer {
        // Evacuating an OST is an administrator's act.
        call.require_admin("moving copies off an OST (rustre evacuate)")?;
        // Rare and about OSTs coming and going: worth a fresh map.
        let map = self
            .cluster
            .refresh()
            .await
            .unwrap_or_else(|_| self.cluster.map());
        let up = layout::up_osts(&map);
        let (this, change) = (self.clone(), call.on_disk());
        self.txn(call.creds, vec![ino], change, move |tx, _| {
            replica::move_copies(tx, &this.picker, ino, ost, &up)
        })
        .await
        .map(MdsResponse::Attr)
    }

    pub(super) async fn mark_lost(self: &Arc<Self>, call: Call, ino: Ino, ost: u32) -> Answer {
        // Declaring a disk's data gone is an administrator's act.
        call.require_admin("declaring an OST's disk lost (rustre ost replace)")?;
        let change = call.on_disk();
        self.txn(call.creds, vec![ino], change, move |tx, _| {
            replica::mark_lost(tx, ino, ost)
        })
        .await
        .map(MdsResponse::Attr)
    }

    pub(super) async fn sync_meta(self: &Arc<Self>) -> Answer {
        self.kv.durable().await?;
        Ok(MdsResponse::Done)
    }

    pub(super) async fn statfs(self: &Arc<Self>) -> Result<FsStats, MdsError> {
        let map = self.map_for(None).await;
        let mut cap = Capacity::default();
        for o in map.osts.iter().filter(|o| o.state == NodeState::Up) {
            cap.total_bytes += o.capacity.total_bytes;
            cap.free_bytes += o.capacity.free_bytes;
            cap.avail_bytes += o.capacity.avail_bytes;
        }
        let next = self
            .txn(Creds::root(), vec![], Mutation::ReadOnly, |tx, _| {
                store::counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)
            })
            .await?;
        // Inode numbers are handed out in batches, so this counts a few unused ones too.
        let files = next.saturating_sub(1);
        Ok(FsStats {
            capacity: cap,
            files,
            files_free: FILES_MAX.saturating_sub(files),
        })
    }
}

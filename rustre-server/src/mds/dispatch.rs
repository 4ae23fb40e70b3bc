//! The request dispatch: one handler per [`MdsOp`] (in [`super::handlers`]), and the one
//! place an MDS error becomes the wire error the caller gets.

use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse, RETURN_DIR_CAPS_MAX};
use rustre_proto::msg::{Creds, MAX_GROUPS};
use rustre_proto::rpc::server::{Caller, Handler, Reply};
use rustre_proto::Error;

use super::attr::SizeReport;
use super::create::CreateRequest;
use super::error::MdsError;
use super::txn::{Ack, Mutation};
use super::Mds;

/// Who calls, in which session, and under which request id a mutation is recorded.
pub(super) struct Call {
    /// The caller's identity after root squash ([`super::access`]).
    pub creds: Creds,
    pub session: u64,
    /// `(session, seq)` of a numbered mutating call (retries get its recorded result).
    record: Option<(u64, u64)>,
    /// A change of a [`MdsOp::Batch`]: the batch waits for the disk once, after its last
    /// change ([`Mds::batch`]).
    pub batched: bool,
    /// The connection proved the admin secret.
    admin: bool,
    /// This MDS holds an admin secret (so only such connections are administrators').
    admin_configured: bool,
}

impl Call {
    /// The one admin check, for every administrator's operation (`what` names it in the
    /// refusal): a connection that proved the admin secret may; when this MDS holds no
    /// admin secret, root (after root squash) may, as before admin secrets existed.
    /// Refused with EPERM: with a message saying what is missing when this MDS holds an
    /// admin secret, plain `NotPermitted` otherwise (as before).
    pub(super) fn require_admin(&self, what: &str) -> Result<(), MdsError> {
        if self.admin || (!self.admin_configured && self.creds.uid == 0) {
            return Ok(());
        }
        if !self.admin_configured {
            // Root's only, as before admin secrets existed.
            return Err(Error::NotPermitted.into());
        }
        Err(Error::Denied(format!(
            "{what} needs the cluster's admin credential, and this connection did not prove \
             it (run the command with --admin-secret-file, or RUSTRE_ADMIN_SECRET_FILE, naming \
             the admin secret the MDS holds)"
        ))
        .into())
    }

    /// A namespace or attribute change: recorded, and acknowledged once durable on a
    /// `--durable` MDS (by the next sync otherwise).
    pub(super) fn change(&self) -> Mutation {
        Mutation::Write {
            record: self.record,
            ack: match self.batched {
                true => Ack::NextSync,
                false => Ack::Change,
            },
        }
    }

    /// A record others act on once answered (stale marks, copies moved or lost, migration
    /// steps): recorded, and acknowledged once durable on every MDS.
    pub(super) fn on_disk(&self) -> Mutation {
        Mutation::Write {
            record: self.record,
            ack: Ack::OnDisk,
        }
    }

    /// Bookkeeping (opens, closes, size reports): recorded, durable by the next sync.
    pub(super) fn bookkeeping(&self) -> Mutation {
        Mutation::Write {
            record: self.record,
            ack: Ack::NextSync,
        }
    }
}

/// About how many bytes an operation adds to the store, for the operations that add entries
/// or bytes to the namespace, which the MDS refuses once its store's disk is within its
/// reserve ([`crate::space`]); `None` for the others.
fn namespace_growth(op: &MdsOp) -> Option<u64> {
    /// What a new inode and its entry take in the store's journal and tables, about.
    const NEW_ENTRY_BYTES: u64 = 1 << 10;
    match op {
        MdsOp::Create { .. }
        | MdsOp::Mkdir { .. }
        | MdsOp::Mknod { .. }
        | MdsOp::Symlink { .. }
        | MdsOp::Link { .. } => Some(NEW_ENTRY_BYTES),
        MdsOp::SetXattr { name, value, .. } => {
            Some(NEW_ENTRY_BYTES + (name.len() + value.len()) as u64)
        }
        _ => None,
    }
}

impl Mds {
    async fn dispatch(
        self: Arc<Self>,
        req: MdsRequest,
        caller: Caller,
    ) -> Result<MdsResponse, MdsError> {
        match req {
            MdsRequest {
                creds,
                session,
                op: MdsOp::Batch { ops },
                ..
            } => self.batch(creds, session, ops, caller).await,
            req => self.dispatch_one(req, caller, false).await,
        }
    }

    /// Runs one request (`batched`: one change of a [`MdsOp::Batch`]).
    pub(super) async fn dispatch_one(
        self: Arc<Self>,
        req: MdsRequest,
        caller: Caller,
        batched: bool,
    ) -> Result<MdsResponse, MdsError> {
        let MdsRequest {
            creds,
            session,
            seq,
            op,
        } = req;
        if creds.groups.len() > MAX_GROUPS {
            return Err(Error::Invalid("too many groups".into()).into());
        }
        let call = Call {
            creds: self.cfg.access.effective(creds, &caller),
            session,
            record: (session != 0 && seq != 0).then_some((session, seq)),
            batched,
            admin: caller.admin,
            admin_configured: self.cfg.key.has_admin(),
        };
        if let Some(bytes) = namespace_growth(&op) {
            if !self.space.has_room(bytes, || self.kv.capacity()) {
                return Err(Error::NoSpace.into());
            }
        }
        self.recall_dir_caps(session, &op).await;
        let (removed_dir, renamed_into) = match &op {
            MdsOp::Rmdir { .. } => (true, None),
            MdsOp::Rename { new_parent, .. } => (false, Some(*new_parent)),
            _ => (false, None),
        };
        let answer = self.clone().run_op(call, op).await;
        if let Ok(MdsResponse::NamesChanged(n)) = &answer {
            // A directory removed (or replaced by a rename) takes its capability with it.
            if removed_dir {
                self.dir_caps.forget(n.source.ino);
            } else if let Some(new_parent) = renamed_into {
                self.dir_caps.moved(n.source.ino, new_parent);
                if let Some(t) = n.target.as_ref().filter(|t| t.attr.is_none()) {
                    self.dir_caps.forget(t.ino);
                }
            }
        }
        answer
    }

    /// Runs `op` for `call`.
    async fn run_op(self: Arc<Self>, call: Call, op: MdsOp) -> Result<MdsResponse, MdsError> {
        match op {
            MdsOp::OpenSession { client } => self.open_session(call, client).await,
            MdsOp::RenewSession => self.renew_session(call).await,
            MdsOp::CloseSession => self.close_session(call).await,
            MdsOp::Lookup { parent, name } => self.lookup(call, parent, name).await,
            MdsOp::GetAttr { ino } => self.getattr(call, ino).await,
            MdsOp::SetAttr { ino, set } => self.setattr(call, ino, set).await,
            MdsOp::Create {
                parent,
                name,
                perm,
                umask,
                exclusive,
                open_flags,
                layout,
            } => {
                let req = CreateRequest {
                    parent,
                    name,
                    perm,
                    umask,
                    exclusive,
                    open_flags,
                    layout,
                };
                self.create_file(call, req).await
            }
            MdsOp::Mkdir {
                parent,
                name,
                perm,
                umask,
                want_cap,
            } => {
                self.mkdir(call, parent, name, (perm, umask), want_cap)
                    .await
            }
            MdsOp::Mknod {
                parent,
                name,
                kind,
                perm,
                umask,
                rdev,
            } => {
                self.mknod(call, parent, name, kind, (perm, umask), rdev)
                    .await
            }
            MdsOp::Symlink {
                parent,
                name,
                target,
            } => self.symlink(call, parent, name, target).await,
            MdsOp::Readlink { ino } => self.readlink(call, ino).await,
            MdsOp::Link {
                ino,
                new_parent,
                new_name,
            } => self.link(call, ino, new_parent, new_name).await,
            MdsOp::Unlink { parent, name } => self.unlink(call, parent, name).await,
            MdsOp::Rmdir { parent, name } => self.rmdir(call, parent, name).await,
            MdsOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => {
                self.rename(call, (parent, name), (new_parent, new_name), flags)
                    .await
            }
            MdsOp::Readdir {
                ino,
                after,
                limit,
                plus,
            } => self.readdir(call, ino, after, limit, plus).await,
            MdsOp::Open { ino, flags } => self.open(call, ino, flags).await,
            MdsOp::OpenDir { ino, limit } => self.open_dir(call, ino, limit).await,
            MdsOp::Release { inos } => self.release(call, inos).await,
            MdsOp::ReportSize {
                ino,
                size,
                mtime,
                truncate_version,
                written,
                allocated,
            } => {
                let report =
                    SizeReport::new(size, mtime, truncate_version).wrote(written, allocated);
                self.report_size(call, ino, report).await
            }
            MdsOp::ReportAndSetAttr {
                ino,
                size,
                mtime,
                truncate_version,
                written,
                allocated,
                set,
            } => {
                let report =
                    SizeReport::new(size, mtime, truncate_version).wrote(written, allocated);
                self.report_and_setattr(call, ino, report, set).await
            }
            MdsOp::Access { ino, mask } => self.access(call, ino, mask).await,
            MdsOp::StatFs => self.statfs().await.map(MdsResponse::StatFs),
            MdsOp::GetXattr { ino, name } => self.get_xattr(call, ino, name).await,
            MdsOp::SetXattr {
                ino,
                name,
                value,
                flags,
            } => self.set_xattr(call, ino, name, value, flags).await,
            MdsOp::ListXattr { ino } => self.list_xattr(call, ino).await,
            MdsOp::RemoveXattr { ino, name } => self.remove_xattr(call, ino, name).await,
            MdsOp::SetDirLayout { ino, spec } => self.set_dir_layout(call, ino, spec).await,
            MdsOp::GetDirLayout { ino } => self.get_dir_layout(call, ino).await,
            MdsOp::MarkStale {
                ino,
                slots,
                version,
            } => self.mark_stale(call, ino, slots, version).await,
            MdsOp::MoveCopies { ino, ost } => self.move_copies(call, ino, ost).await,
            MdsOp::MarkLost { ino, ost } => self.mark_lost(call, ino, ost).await,
            MdsOp::SyncMeta => self.sync_meta().await,
            MdsOp::Watch { instance, after } => {
                Ok(MdsResponse::Changes(self.feed.watch(instance, after).await))
            }
            MdsOp::Fsck(op) => self.fsck(call, op).await,
            MdsOp::StuckCopies => Ok(MdsResponse::StuckCopies(self.stuck.list())),
            MdsOp::Accessed {
                ino,
                atime,
                relative,
            } => self.accessed(call, ino, atime, relative).await,
            MdsOp::AccessedMany { updates } => self.accessed_many(call, updates).await,
            MdsOp::SetLock { ino, lock, wait } => self.set_lock(call, ino, lock, wait).await,
            MdsOp::GetLock { ino, lock } => self.get_lock(call, ino, lock).await,
            MdsOp::UnlockOwner { ino, owner } => self.unlock_owner(call, ino, owner).await,
            MdsOp::ReserveAppend {
                ino,
                len,
                known_size,
                truncate_version,
                want_lease,
            } => {
                self.reserve_append(call, ino, len, known_size, truncate_version, want_lease)
                    .await
            }
            MdsOp::ReturnAppendLease {
                ino,
                end,
                truncate_version,
            } => {
                self.return_append_lease(call, ino, end, truncate_version)
                    .await
            }
            MdsOp::QuotaSet { ino, limits } => self.quota_set(call, ino, limits).await,
            MdsOp::QuotaGet { ino } => self.quota_get(call, ino).await,
            MdsOp::QuotaList { after } => self.quota_list(call, after).await,
            MdsOp::QuotaReserve { ino, end, want } => {
                self.quota_reserve(call, ino, end, want).await
            }
            MdsOp::CloseInline {
                ino,
                size,
                mtime,
                truncate_version,
                data,
                set,
            } => {
                let report = SizeReport::new(size, mtime, truncate_version);
                self.close_inline(call, ino, report, data, set).await
            }
            MdsOp::ReadInline { ino } => self.read_inline(call, ino).await,
            MdsOp::Spill { ino } => self.spill_op(call, ino).await,
            MdsOp::MigrateBegin { ino, target } => self.migrate_begin(call, ino, target).await,
            MdsOp::ReturnDirCaps { dirs } => {
                if dirs.len() > RETURN_DIR_CAPS_MAX {
                    return Err(Error::Invalid("too many directories".into()).into());
                }
                self.dir_caps.give_back(call.session, &dirs);
                Ok(MdsResponse::Done)
            }
            MdsOp::MigrateStep { ino, token, step } => {
                self.migrate_step(call, ino, token, step).await
            }
            MdsOp::Batch { .. } => Err(Error::Invalid("a batch within a batch".into()).into()),
        }
    }
}

impl Handler for Mds {
    type Request = MdsRequest;
    type Response = MdsResponse;
    const SERVICE: rustre_proto::frame::Service = rustre_proto::frame::Service::Mds;

    async fn handle(
        self: Arc<Self>,
        req: MdsRequest,
        _payload: Bytes,
        caller: Caller,
    ) -> Reply<MdsResponse> {
        let Some(m) = crate::metrics::get() else {
            return Reply::plain(
                self.dispatch(req, caller)
                    .await
                    .map_err(MdsError::into_wire),
            );
        };
        let (start, op) = (std::time::Instant::now(), crate::metrics::op_name(&req.op));
        let result = self
            .dispatch(req, caller)
            .await
            .map_err(MdsError::into_wire);
        m.request(Self::SERVICE, op, start, result.is_ok());
        Reply::plain(result)
    }
}

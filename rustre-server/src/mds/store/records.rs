//! The records of the metadata store: what an inode, a dentry, a session and the workers'
//! records look like on disk, and the get/put helpers over the raw KV. Nothing here knows
//! of quotas: writing an inode with its project's usage moved is
//! [`super::put_inode`]'s job.

use rustre_proto::codec;
use rustre_proto::msg::acl::ExtAcl;
use rustre_proto::msg::{Attr, FileKind, Ino, Layout, LayoutSpec, Timestamp};
use rustre_proto::Error;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::mds::acl::posix::PosixAcl;
use crate::meta::Transaction;
use crate::schema;

/// An inode as stored under `inode/{ino}` (on disk as [`StoredInode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredInode", from = "StoredInode")]
pub struct Inode {
    pub attr: Attr,
    /// Directories: the parent directory (the root is its own parent). Others: 0.
    pub parent: Ino,
    /// Symlinks: the target.
    pub target: Option<String>,
    /// Directories: the default layout new files inherit.
    pub dir_layout: Option<LayoutSpec>,
    /// Directories: the default POSIX ACL new entries inherit ([`super::acl`]).
    pub default_acl: Option<PosixAcl>,
    /// Regular files in a project: the end writers reserved room for (`MdsOp::QuotaReserve`)
    /// beyond the size, counted in the project's bytes; 0 once the last writer closed.
    pub reserved: u64,
}

/// The attributes as an inode record holds them: `Attr` without `inline`, which the record
/// keeps last ([`StoredInode::inline`]), so records from before it end one field earlier
/// and are told apart (`super::compat`).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredAttr {
    pub ino: Ino,
    pub kind: FileKind,
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
    pub layout: Option<Layout>,
    pub truncate_version: u64,
    pub acl: Option<Box<ExtAcl>>,
    pub project: Ino,
}

impl StoredAttr {
    /// The attributes with `inline` added.
    pub(super) fn with_inline(self, inline: bool) -> Attr {
        Attr {
            ino: self.ino,
            kind: self.kind,
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            rdev: self.rdev,
            layout: self.layout,
            truncate_version: self.truncate_version,
            acl: self.acl,
            project: self.project,
            inline,
        }
    }
}

/// An inode record on disk.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredInode {
    pub attr: StoredAttr,
    pub parent: Ino,
    pub target: Option<String>,
    pub dir_layout: Option<LayoutSpec>,
    pub default_acl: Option<PosixAcl>,
    pub reserved: u64,
    /// `Attr::inline`: the file's bytes are under `inline/{ino}` (`crate::mds::inline`).
    pub inline: bool,
}

impl From<Inode> for StoredInode {
    fn from(i: Inode) -> StoredInode {
        let a = i.attr;
        StoredInode {
            attr: StoredAttr {
                ino: a.ino,
                kind: a.kind,
                perm: a.perm,
                nlink: a.nlink,
                uid: a.uid,
                gid: a.gid,
                size: a.size,
                atime: a.atime,
                mtime: a.mtime,
                ctime: a.ctime,
                rdev: a.rdev,
                layout: a.layout,
                truncate_version: a.truncate_version,
                acl: a.acl,
                project: a.project,
            },
            parent: i.parent,
            target: i.target,
            dir_layout: i.dir_layout,
            default_acl: i.default_acl,
            reserved: i.reserved,
            inline: a.inline,
        }
    }
}

impl From<StoredInode> for Inode {
    fn from(s: StoredInode) -> Inode {
        Inode {
            attr: s.attr.with_inline(s.inline),
            parent: s.parent,
            target: s.target,
            dir_layout: s.dir_layout,
            default_acl: s.default_acl,
            reserved: s.reserved,
        }
    }
}

/// A directory entry as stored under `dentry/{parent}/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dentry {
    pub ino: Ino,
    pub kind: FileKind,
}

/// A client session as stored under `session/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub client: String,
    /// Wall-clock milliseconds after which the session is dead unless renewed.
    pub expires_ms: u64,
}

/// Objects waiting to be deleted from the OSTs, under `destroy/{ino}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doomed {
    pub layout: Layout,
}

/// A size change whose objects are not cut yet, under `truncate/{ino}` (written in the
/// transaction that changes the size; removed once every up-to-date copy of every stripe is
/// cut: `crate::mds::truncate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncateIntent {
    /// The file's size after the change: every object gets the length it has at this size.
    pub size: u64,
    /// Every object is first cut to the length it has at this size (`<= size`): the smallest
    /// size of the changes this intent stands for, so an extend that follows a shrink not yet
    /// carried out still leaves zeros, not the old bytes, past the shrink.
    pub cut_to: u64,
    /// The inode's truncate version after the change: tells this intent from a newer one.
    pub truncate_version: u64,
    /// The advertised address of the MDS cutting the objects now; empty while nobody is.
    /// Other MDS sharing the store leave the intent alone until `until_ms`.
    pub owner: String,
    /// Wall-clock milliseconds after which the owner's claim lapses (renewed at every try).
    pub until_ms: u64,
}

impl TruncateIntent {
    /// True when `other` stands for the same size changes (whoever holds either).
    pub fn same_change(&self, other: &TruncateIntent) -> bool {
        (self.size, self.cut_to, self.truncate_version)
            == (other.size, other.cut_to, other.truncate_version)
    }
}

/// Value of a `stale/{ino}` index entry while an MDS's resync worker copies the file: other
/// MDS sharing the store leave the file alone until `until_ms` (the owner renews it as it
/// goes). An empty value means nobody is copying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncClaim {
    /// The advertised address of the MDS copying the file.
    pub owner: String,
    /// Wall-clock milliseconds after which the claim lapses.
    pub until_ms: u64,
}

pub fn get<T: DeserializeOwned>(tx: &mut dyn Transaction, key: &[u8]) -> Result<Option<T>, Error> {
    match tx.get(key)? {
        Some(v) => Ok(Some(codec::decode(&v).map_err(corrupt)?)),
        None => Ok(None),
    }
}

pub fn put<T: Serialize>(tx: &mut dyn Transaction, key: &[u8], value: &T) -> Result<(), Error> {
    tx.set(key, &codec::encode(value)?);
    Ok(())
}

pub(super) fn corrupt(e: Error) -> Error {
    Error::Io(format!("corrupt metadata record: {e}"))
}

pub fn dentry(tx: &mut dyn Transaction, parent: Ino, name: &str) -> Result<Option<Dentry>, Error> {
    get(tx, &schema::dentry(parent, name))
}

pub fn put_dentry(
    tx: &mut dyn Transaction,
    parent: Ino,
    name: &str,
    d: Dentry,
) -> Result<(), Error> {
    put(tx, &schema::dentry(parent, name), &d)
}

/// True when the directory has no entries.
pub fn dir_is_empty(tx: &mut dyn Transaction, ino: Ino) -> Result<bool, Error> {
    let (s, e) = schema::dentry_range(ino);
    Ok(tx.range(&s, &e, 1)?.is_empty())
}

/// Reads a u64 counter (absent = `default`).
pub fn counter(tx: &mut dyn Transaction, name: &[u8], default: u64) -> Result<u64, Error> {
    Ok(get(tx, &schema::counter(name))?.unwrap_or(default))
}

pub fn put_counter(tx: &mut dyn Transaction, name: &[u8], v: u64) -> Result<(), Error> {
    put(tx, &schema::counter(name), &v)
}

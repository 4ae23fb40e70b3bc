//! POSIX ACLs: `system.posix_acl_access` and `system.posix_acl_default` (the ACL and its
//! xattr form are [`posix`]'s), how setting one changes the inode and its mode, and the mode
//! and ACLs a new inode gets from its directory's default ACL (Linux's `posix_acl_create`).
//!
//! Neither ACL is an xattr row. The access ACL lives in the inode's attributes, as what the
//! mode cannot hold ([`ExtAcl`]: its mode's group bits are the mask), so the permission
//! checks, which all go through [`super::perm`] and `msg::may_access`, have it with the
//! inode, and a chmod changes USER_OBJ, MASK (GROUP_OBJ without a mask) and OTHER as Linux's
//! `posix_acl_chmod` does. A directory's default ACL lives in its record
//! ([`super::store::Inode::default_acl`]), whole. Both move with the inode on rename and go
//! with it.

use rustre_proto::msg::acl::ExtAcl;
use rustre_proto::msg::{Creds, FileKind, Timestamp};
use rustre_proto::Error;

use super::perm::{self, S_ISGID};
use super::store::Inode;

pub mod posix;
#[cfg(test)]
mod tests;

pub use posix::PosixAcl;
use posix::RWX_ALL;

pub use rustre_proto::msg::acl::{ACCESS_XATTR, DEFAULT_XATTR};

/// Which of an inode's two ACLs an xattr name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Access,
    Default,
}

impl Which {
    /// The ACL `name` names, if it names one.
    pub fn of(name: &str) -> Option<Which> {
        match name {
            ACCESS_XATTR => Some(Which::Access),
            DEFAULT_XATTR => Some(Which::Default),
            _ => None,
        }
    }
}

/// The permission bits, access ACL and default ACL of a new inode of `kind` asked with
/// `perm` by a process with `umask`, in a directory whose default ACL is `parent_default`:
/// with a default ACL, what it gives ([`PosixAcl::inherit`]), and a new directory inherits
/// it as its own default; without one, `perm` less the umask. Symlinks take neither.
pub fn for_new_inode(
    parent_default: Option<&PosixAcl>,
    kind: FileKind,
    perm: u32,
    umask: u32,
) -> (u32, Option<ExtAcl>, Option<PosixAcl>) {
    match parent_default {
        _ if kind == FileKind::Symlink => (perm, None, None),
        Some(d) => {
            let (perm, ext) = d.inherit(perm);
            (perm, ext, (kind == FileKind::Dir).then(|| d.clone()))
        }
        None => (perm & !(umask & RWX_ALL), None, None),
    }
}

/// getxattr of `which` ACL: Linux's xattr form, ENODATA when the inode has none.
pub fn get(inode: &Inode, which: Which) -> Result<Vec<u8>, Error> {
    let acl = match which {
        Which::Access => inode
            .attr
            .acl
            .as_ref()
            .map(|e| PosixAcl::of_access(inode.attr.perm, e)),
        Which::Default => inode.default_acl.clone(),
    };
    acl.map(|a| a.encode()).ok_or(Error::NoData)
}

/// The ACL xattr names `inode` has, for listxattr.
pub fn names(inode: &Inode) -> Vec<String> {
    let mut out = Vec::new();
    if inode.attr.acl.is_some() {
        out.push(ACCESS_XATTR.to_string());
    }
    if inode.default_acl.is_some() {
        out.push(DEFAULT_XATTR.to_string());
    }
    out
}

/// setxattr of `which` ACL on `inode` (the caller stores it): `value` in Linux's form, no
/// entries (or an empty value) removing it, as removexattr does. Owner or root only; a
/// default ACL only on a directory (EACCES, removing one elsewhere does nothing); none on a
/// symlink. Setting an access ACL sets the mode's permission bits from it, and clears
/// setgid unless the caller is root or in the file's group (Linux's
/// `posix_acl_update_mode`); removing one leaves the mode as it is.
pub fn set(
    creds: &Creds,
    now: Timestamp,
    inode: &mut Inode,
    which: Which,
    value: &[u8],
) -> Result<(), Error> {
    let acl = if value.is_empty() {
        None
    } else {
        PosixAcl::decode(value)?
    };
    let attr = &mut inode.attr;
    if attr.kind == FileKind::Symlink {
        return Err(Error::NotSupported);
    }
    if which == Which::Default && attr.kind != FileKind::Dir {
        return if acl.is_some() {
            Err(Error::Access)
        } else {
            Ok(())
        };
    }
    perm::check_owner(creds, attr)?;
    match (which, acl) {
        (Which::Access, Some(acl)) => {
            let (mut p, ext) = acl.into_access(attr.perm);
            if creds.uid != 0 && !creds.in_group(attr.gid) {
                p &= !S_ISGID;
            }
            attr.perm = p;
            attr.acl = ext.map(Box::new);
        }
        (Which::Access, None) => attr.acl = None,
        (Which::Default, acl) => inode.default_acl = acl,
    }
    inode.attr.ctime = now;
    Ok(())
}

//! POSIX ACLs: `system.posix_acl_access` and `system.posix_acl_default` in Linux's xattr
//! format (checked here), how setting one changes the inode and its mode, and the mode and
//! ACLs a new inode gets from its directory's default ACL (Linux's `posix_acl_create`).
//!
//! Neither ACL is an xattr row. The access ACL lives in the inode's attributes, as what the
//! mode cannot hold ([`ExtAcl`]: its mode's group bits are the mask), so the permission
//! checks, which all go through [`super::perm`] and `msg::may_access`, have it with the
//! inode, and a chmod changes USER_OBJ, MASK (GROUP_OBJ without a mask) and OTHER as Linux's
//! `posix_acl_chmod` does. A directory's default ACL lives in its record
//! ([`super::store::Inode::default_acl`]), whole. Both move with the inode on rename and go
//! with it.

use rustre_proto::msg::acl::{AclEntry, ExtAcl, ACL_MAX_ENTRIES, ACL_PERM_BITS};
use rustre_proto::msg::FileKind;
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use super::namespace::Ctx;
use super::perm::{self, S_ISGID};
use super::store::Inode;

#[cfg(test)]
mod tests;

/// The xattr name of an inode's access ACL.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";
/// The xattr name of a directory's default ACL.
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";

/// Linux's `POSIX_ACL_XATTR_VERSION`, the first 4 bytes (little-endian) of the value.
const XATTR_VERSION: u32 = 2;
const HEADER_BYTES: usize = 4;
/// One entry: tag (u16), perm (u16), id (u32), little-endian.
const ENTRY_BYTES: usize = 8;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;
/// The id Linux writes in the entries that name nobody (`ACL_UNDEFINED_ID`).
const UNDEFINED_ID: u32 = u32::MAX;
/// Permission bits of a mode's three classes.
const RWX_ALL: u32 = 0o777;

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

/// A whole POSIX ACL, its fields in the order Linux keeps its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixAcl {
    pub user_obj: u32,
    /// By increasing uid, each once.
    pub users: Vec<AclEntry>,
    pub group_obj: u32,
    /// By increasing gid, each once.
    pub groups: Vec<AclEntry>,
    /// Present whenever there are named entries.
    pub mask: Option<u32>,
    pub other: u32,
}

/// Where a tag may stand in an ACL (Linux's `posix_acl_valid` order), and whether it may
/// stand there more than once.
fn rank(tag: u16) -> Option<(u8, bool)> {
    Some(match tag {
        TAG_USER_OBJ => (0, false),
        TAG_USER => (1, true),
        TAG_GROUP_OBJ => (2, false),
        TAG_GROUP => (3, true),
        TAG_MASK => (4, false),
        TAG_OTHER => (5, false),
        _ => return None,
    })
}

fn bad(why: &str) -> Error {
    Error::Invalid(format!("bad POSIX ACL: {why}"))
}

/// Sorts named entries by id; EINVAL if one id is named twice.
fn sorted(mut named: Vec<AclEntry>) -> Result<Vec<AclEntry>, Error> {
    named.sort_by_key(|e| e.id);
    if named.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(bad("an id named twice"));
    }
    Ok(named)
}

impl PosixAcl {
    /// Parses Linux's xattr form: a version-2 header, then entries in `posix_acl_valid`'s
    /// order (USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER), each base entry once,
    /// MASK required with named entries, permissions within `rwx`, at most
    /// [`ACL_MAX_ENTRIES`] (more is ENOSPC). Named entries come out sorted by id, an id
    /// named twice is EINVAL. `None`: no entries (Linux's empty ACL, a removal).
    pub fn decode(bytes: &[u8]) -> Result<Option<PosixAcl>, Error> {
        let (header, body) = bytes
            .split_first_chunk::<HEADER_BYTES>()
            .ok_or_else(|| bad("shorter than its header"))?;
        if !body.len().is_multiple_of(ENTRY_BYTES) {
            return Err(bad("not a whole number of entries"));
        }
        if u32::from_le_bytes(*header) != XATTR_VERSION {
            // As Linux answers an ACL of another format version.
            return Err(Error::NotSupported);
        }
        let count = body.len() / ENTRY_BYTES;
        if count == 0 {
            return Ok(None);
        }
        if count > ACL_MAX_ENTRIES {
            return Err(Error::NoSpace);
        }
        let (mut users, mut groups) = (Vec::new(), Vec::new());
        let mut base: [Option<u32>; 6] = [None; 6];
        let mut last: Option<u8> = None;
        for e in body.chunks_exact(ENTRY_BYTES) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u32::from(u16::from_le_bytes([e[2], e[3]]));
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let (r, repeats) = rank(tag).ok_or_else(|| bad("unknown tag"))?;
            if last.is_some_and(|l| r < l || (r == l && !repeats)) {
                return Err(bad("entries out of order or repeated"));
            }
            last = Some(r);
            if perm & !ACL_PERM_BITS != 0 {
                return Err(bad("permission bits beyond rwx"));
            }
            match tag {
                TAG_USER => users.push(AclEntry { id, perm }),
                TAG_GROUP => groups.push(AclEntry { id, perm }),
                _ => base[r as usize] = Some(perm),
            }
        }
        let named = !users.is_empty() || !groups.is_empty();
        let (Some(user_obj), Some(group_obj), Some(other)) = (base[0], base[2], base[5]) else {
            return Err(bad("USER_OBJ, GROUP_OBJ and OTHER are required"));
        };
        if named && base[4].is_none() {
            return Err(bad("named entries need a MASK"));
        }
        Ok(Some(PosixAcl {
            user_obj,
            users: sorted(users)?,
            group_obj,
            groups: sorted(groups)?,
            mask: base[4],
            other,
        }))
    }

    /// Linux's xattr form of this ACL.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + ENTRY_BYTES * (6 + self.users.len()));
        out.extend_from_slice(&XATTR_VERSION.to_le_bytes());
        let mut put = |tag: u16, perm: u32, id: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&(perm as u16).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        };
        put(TAG_USER_OBJ, self.user_obj, UNDEFINED_ID);
        for e in &self.users {
            put(TAG_USER, e.perm, e.id);
        }
        put(TAG_GROUP_OBJ, self.group_obj, UNDEFINED_ID);
        for e in &self.groups {
            put(TAG_GROUP, e.perm, e.id);
        }
        if let Some(m) = self.mask {
            put(TAG_MASK, m, UNDEFINED_ID);
        }
        put(TAG_OTHER, self.other, UNDEFINED_ID);
        out
    }

    /// The access ACL of an inode with permission bits `perm` and extended part `ext`.
    pub fn of_access(perm: u32, ext: &ExtAcl) -> PosixAcl {
        PosixAcl {
            user_obj: (perm >> 6) & ACL_PERM_BITS,
            users: ext.users.clone(),
            group_obj: ext.group_obj,
            groups: ext.groups.clone(),
            mask: Some((perm >> 3) & ACL_PERM_BITS),
            other: perm & ACL_PERM_BITS,
        }
    }

    /// This ACL as an inode's access ACL: the permission bits it gives `perm` (owner from
    /// USER_OBJ, group from MASK, or GROUP_OBJ without one, other from OTHER; setuid,
    /// setgid and sticky kept) and the extended part to keep, `None` when the mode says it
    /// all (no MASK: Linux's `posix_acl_equiv_mode`).
    pub fn into_access(self, perm: u32) -> (u32, Option<ExtAcl>) {
        let group = self.mask.unwrap_or(self.group_obj);
        let perm = (perm & !RWX_ALL) | (self.user_obj << 6) | (group << 3) | self.other;
        let ext = self.mask.map(|_| ExtAcl {
            group_obj: self.group_obj,
            users: self.users,
            groups: self.groups,
        });
        (perm, ext)
    }

    /// The permission bits and access ACL of a new inode asked with `perm` in a directory
    /// with this default ACL (Linux's `posix_acl_create_masq`): USER_OBJ, OTHER and MASK
    /// (GROUP_OBJ without one) keep only what `perm`'s classes allow, and give the mode its
    /// bits; the umask plays no part.
    pub fn inherit(&self, perm: u32) -> (u32, Option<ExtAcl>) {
        let mut acl = self.clone();
        acl.user_obj &= (perm >> 6) & ACL_PERM_BITS;
        acl.other &= perm & ACL_PERM_BITS;
        match acl.mask.as_mut() {
            Some(m) => *m &= (perm >> 3) & ACL_PERM_BITS,
            None => acl.group_obj &= (perm >> 3) & ACL_PERM_BITS,
        }
        acl.into_access(perm)
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
pub fn set(ctx: &Ctx, inode: &mut Inode, which: Which, value: &[u8]) -> Result<(), Error> {
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
    perm::check_owner(ctx.creds, attr)?;
    match (which, acl) {
        (Which::Access, Some(acl)) => {
            let (mut p, ext) = acl.into_access(attr.perm);
            if ctx.creds.uid != 0 && !ctx.creds.in_group(attr.gid) {
                p &= !S_ISGID;
            }
            attr.perm = p;
            attr.acl = ext.map(Box::new);
        }
        (Which::Access, None) => attr.acl = None,
        (Which::Default, acl) => inode.default_acl = acl,
    }
    inode.attr.ctime = ctx.now;
    Ok(())
}

//! The POSIX ACL itself ([`PosixAcl`]): Linux's xattr form (parsed and checked here, and
//! written back), and how it maps onto a mode and the attributes' [`ExtAcl`] (what the
//! mode cannot hold). Plain data and rules: nothing here knows the inode store.

use rustre_proto::msg::acl::{AclEntry, ExtAcl, ACL_MAX_ENTRIES, ACL_PERM_BITS};
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

/// Linux's `POSIX_ACL_XATTR_VERSION`, the first 4 bytes (little-endian) of the value.
pub(super) const XATTR_VERSION: u32 = 2;
pub(super) const HEADER_BYTES: usize = 4;
/// One entry: tag (u16), perm (u16), id (u32), little-endian.
pub(super) const ENTRY_BYTES: usize = 8;
pub(super) const TAG_USER_OBJ: u16 = 0x01;
pub(super) const TAG_USER: u16 = 0x02;
pub(super) const TAG_GROUP_OBJ: u16 = 0x04;
pub(super) const TAG_GROUP: u16 = 0x08;
pub(super) const TAG_MASK: u16 = 0x10;
pub(super) const TAG_OTHER: u16 = 0x20;
/// The id Linux writes in the entries that name nobody (`ACL_UNDEFINED_ID`).
pub(super) const UNDEFINED_ID: u32 = u32::MAX;
/// Permission bits of a mode's three classes.
pub(super) const RWX_ALL: u32 = 0o777;

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

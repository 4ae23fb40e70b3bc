//! Inode records of earlier formats, read as today's [`Inode`]. Records are postcard, which
//! has no optional trailing fields: a record written before project quotas (version 1: no
//! `Attr::project`, no `Inode::reserved`) fails to decode as today's, and decodes as
//! [`InodeV1`] instead; one written before data on the MDS (version 2: no trailing
//! `inline`) decodes as [`InodeV2`]. The formats cannot be mistaken for each other: an
//! older record is too short to be a newer one (each version only adds fields at the
//! end), and a newer record leaves trailing bytes as an older one (which the codec
//! refuses). Records are rewritten in today's format whenever an operation writes them.

use rustre_proto::codec;
use rustre_proto::msg::acl::ExtAcl;
use rustre_proto::msg::quota::NO_PROJECT;
use rustre_proto::msg::{Attr, FileKind, Ino, Layout, LayoutSpec, Timestamp};
use rustre_proto::Error;
use serde::Deserialize;

use super::records::{Inode, StoredAttr};
use crate::mds::acl::posix::PosixAcl;

/// `Attr` before project quotas.
#[derive(Deserialize)]
struct AttrV1 {
    ino: Ino,
    kind: FileKind,
    perm: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    size: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    rdev: u64,
    layout: Option<Layout>,
    truncate_version: u64,
    acl: Option<Box<ExtAcl>>,
}

/// `Inode` before project quotas.
#[derive(Deserialize)]
struct InodeV1 {
    attr: AttrV1,
    parent: Ino,
    target: Option<String>,
    dir_layout: Option<LayoutSpec>,
    default_acl: Option<PosixAcl>,
}

impl From<InodeV1> for Inode {
    fn from(v: InodeV1) -> Inode {
        let a = v.attr;
        Inode {
            attr: Attr {
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
                project: NO_PROJECT,
                inline: false,
            },
            parent: v.parent,
            target: v.target,
            dir_layout: v.dir_layout,
            default_acl: v.default_acl,
            reserved: 0,
        }
    }
}

/// `Inode` before data on the MDS: today's record without the trailing `inline`.
#[derive(Deserialize)]
struct InodeV2 {
    attr: StoredAttr,
    parent: Ino,
    target: Option<String>,
    dir_layout: Option<LayoutSpec>,
    default_acl: Option<PosixAcl>,
    reserved: u64,
}

impl From<InodeV2> for Inode {
    fn from(v: InodeV2) -> Inode {
        Inode {
            attr: v.attr.with_inline(false),
            parent: v.parent,
            target: v.target,
            dir_layout: v.dir_layout,
            default_acl: v.default_acl,
            reserved: v.reserved,
        }
    }
}

/// Decodes an inode record of any format.
pub(super) fn decode_inode(bytes: &[u8]) -> Result<Inode, Error> {
    let today = match codec::decode::<Inode>(bytes) {
        Ok(i) => return Ok(i),
        Err(e) => e,
    };
    if let Ok(v2) = codec::decode::<InodeV2>(bytes) {
        return Ok(v2.into());
    }
    codec::decode::<InodeV1>(bytes)
        .map(Inode::from)
        .map_err(|_| today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    /// What a version-1 record looked like on disk (the same fields, in order).
    #[derive(Serialize)]
    struct AttrV1Out {
        ino: Ino,
        kind: FileKind,
        perm: u32,
        nlink: u32,
        uid: u32,
        gid: u32,
        size: u64,
        atime: Timestamp,
        mtime: Timestamp,
        ctime: Timestamp,
        rdev: u64,
        layout: Option<Layout>,
        truncate_version: u64,
        acl: Option<Box<ExtAcl>>,
    }

    #[derive(Serialize)]
    struct InodeV1Out {
        attr: AttrV1Out,
        parent: Ino,
        target: Option<String>,
        dir_layout: Option<LayoutSpec>,
        default_acl: Option<PosixAcl>,
    }

    #[test]
    fn a_record_from_before_quotas_reads_with_no_project_and_todays_round_trips() {
        let t = Timestamp { sec: 5, nsec: 6 };
        let old = InodeV1Out {
            attr: AttrV1Out {
                ino: 42,
                kind: FileKind::Symlink,
                perm: 0o777,
                nlink: 1,
                uid: 7,
                gid: 8,
                size: 3,
                atime: t,
                mtime: t,
                ctime: t,
                rdev: 0,
                layout: None,
                truncate_version: 2,
                acl: None,
            },
            parent: 0,
            target: Some("abc".into()),
            dir_layout: None,
            default_acl: None,
        };
        let bytes = codec::encode(&old).unwrap();
        let read = decode_inode(&bytes).unwrap();
        assert_eq!(read.attr.ino, 42);
        assert_eq!(read.attr.size, 3);
        assert_eq!(read.attr.truncate_version, 2);
        assert_eq!(read.target.as_deref(), Some("abc"));
        assert_eq!(read.attr.project, NO_PROJECT);
        assert_eq!(read.reserved, 0);

        let mut today = read.clone();
        today.attr.project = 9;
        today.reserved = 11;
        let today_bytes = codec::encode(&today).unwrap();
        assert_eq!(decode_inode(&today_bytes).unwrap(), today);
        // A record cut short is no record of any version.
        assert!(decode_inode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_record_from_before_data_on_the_mds_reads_as_not_inline() {
        let t = Timestamp { sec: 5, nsec: 6 };
        let mut today = Inode {
            attr: Attr {
                ino: 77,
                kind: FileKind::File,
                perm: 0o644,
                nlink: 1,
                uid: 1,
                gid: 2,
                size: 10,
                atime: t,
                mtime: t,
                ctime: t,
                rdev: 0,
                layout: Some(Layout::striped(1 << 20, vec![0])),
                truncate_version: 3,
                acl: None,
                project: 5,
                inline: true,
            },
            parent: 0,
            target: None,
            dir_layout: None,
            default_acl: None,
            reserved: 4,
        };
        let bytes = codec::encode(&today).unwrap();
        assert_eq!(decode_inode(&bytes).unwrap(), today);
        // A version-2 record is today's without its last byte (the flag).
        let old = decode_inode(&bytes[..bytes.len() - 1]).unwrap();
        today.attr.inline = false;
        assert_eq!(old, today);
    }
}

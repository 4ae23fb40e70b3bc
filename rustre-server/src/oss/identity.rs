//! The identity of an OST directory (`DIR/ost.identity`): the cluster and OST index it
//! belongs to, the UUID of its disk, and whether the MGS has ever accepted that disk.
//!
//! - The first use of a directory (formatting it) writes the file: cluster, index, a new
//!   random [`OstUuid`], not accepted yet. A directory whose file names another cluster or
//!   index is refused, so it is never served as another OST.
//! - The MGS binds each OST index to the disk that first registers it and refuses any other
//!   (docs/replication.md, "Disk identity"): a wiped or replaced directory comes back with a
//!   new UUID and is refused until an administrator runs `rustre ost replace INDEX`.
//! - `accepted` turns true, durably and once, when the MGS first accepts a registration of
//!   the disk. Until then the OST serves nothing at all (not even reads, which an OST the
//!   MGS accepted before serves while the MGS is away): an empty disk answering reads would
//!   hand out holes where the lost disk held data.
//! - A file of format 1 (cluster and index only, written by earlier versions) gets a UUID,
//!   once, durably (temp file, fsync, rename, fsync of the directory), and counts as
//!   accepted: its disk was in service already.
//! - Format 3 holds what format 2 holds; it says that objects in the directory may keep
//!   their CRCs in an extended attribute (`file_store/crcs.rs`), which versions that write
//!   format 2 do not know: they would take such objects for objects without checksums. A
//!   format-2 file is rewritten as format 3 when this version first claims the directory,
//!   so an older OSS refuses the directory (an unknown magic) instead of serving it.
//!
//! The file is a record of `crate::records` (magic, checksum, length, postcard body).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustre_proto::msg::mgs::OstUuid;
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use crate::records::{self, RecordError};

/// Name of the identity file in an OST directory.
pub const IDENTITY_FILE: &str = "ost.identity";
/// Magic of the identity file, format 3 (format 2's fields; objects may keep their CRCs
/// in an attribute).
const IDENTITY_MAGIC: [u8; 8] = *b"RSTROST\x03";
/// Magic of format 2 (with the disk's UUID); read and upgraded.
const IDENTITY_MAGIC_V2: [u8; 8] = *b"RSTROST\x02";
/// Magic of the identity file of earlier versions, format 1 (no UUID); read and upgraded.
const IDENTITY_MAGIC_V1: [u8; 8] = *b"RSTROST\x01";

/// What an OST directory says it is (formats 2 and 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OstIdentity {
    cluster: String,
    index: u32,
    disk: OstUuid,
    /// The MGS accepted a registration of this disk at least once.
    accepted: bool,
}

/// What an OST directory said it was in format 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OstIdentityV1 {
    cluster: String,
    index: u32,
}

/// The disk of one served OST: its UUID, and whether the MGS ever accepted it.
#[derive(Debug)]
pub(crate) struct OstDisk {
    /// Where the identity file is; `None` for a disk given by the caller ([`OstDisk::given`]).
    dir: Option<PathBuf>,
    cluster: String,
    index: u32,
    uuid: OstUuid,
    accepted: AtomicBool,
}

impl OstDisk {
    /// The disk of a store the caller made and keeps (`oss::run_on_stores`, the
    /// simulation's in-memory OSTs): a UUID fixed by the index, so the same store keeps
    /// its identity across restarts of its OSS, accepted from the start, nothing on disk.
    pub(crate) fn given(cluster: &str, index: u32) -> OstDisk {
        let mut uuid = [0u8; 16];
        uuid[..4].copy_from_slice(&index.to_be_bytes());
        uuid[4..8].copy_from_slice(b"GIVN");
        OstDisk {
            dir: None,
            cluster: cluster.to_string(),
            index,
            uuid: OstUuid(uuid),
            accepted: AtomicBool::new(true),
        }
    }

    /// The disk's UUID.
    pub(crate) fn uuid(&self) -> OstUuid {
        self.uuid
    }

    /// True once the MGS has accepted a registration of this disk (now or in an earlier run).
    pub(crate) fn accepted(&self) -> bool {
        self.accepted.load(Ordering::Acquire)
    }

    /// Records, durably, that the MGS accepted this disk; does nothing when that is on
    /// record already. Blocking (a file write and fsyncs).
    pub(crate) fn set_accepted(&self) -> Result<(), Error> {
        if self.accepted() {
            return Ok(());
        }
        let id = OstIdentity {
            cluster: self.cluster.clone(),
            index: self.index,
            disk: self.uuid,
            accepted: true,
        };
        if let Some(dir) = &self.dir {
            records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC, &id)?;
        }
        self.accepted.store(true, Ordering::Release);
        Ok(())
    }
}

fn new_identity(cluster: &str, index: u32, accepted: bool) -> Result<OstIdentity, Error> {
    Ok(OstIdentity {
        cluster: cluster.to_string(),
        index,
        disk: OstUuid::random()?,
        accepted,
    })
}

/// An identity file as found.
enum Found {
    Current(OstIdentity),
    Format2(OstIdentity),
    Format1(OstIdentityV1),
}

/// Reads the identity file at `path` in either format; `None` when there is none.
fn read_identity(path: &Path) -> Result<Option<Found>, Error> {
    let Some(bytes) = records::read_record_bytes(path)? else {
        return Ok(None);
    };
    let name = path.display().to_string();
    let found = if bytes.starts_with(&IDENTITY_MAGIC_V1) {
        Found::Format1(records::decode_record(&name, &bytes, IDENTITY_MAGIC_V1)?)
    } else if bytes.starts_with(&IDENTITY_MAGIC_V2) {
        Found::Format2(records::decode_record(&name, &bytes, IDENTITY_MAGIC_V2)?)
    } else {
        Found::Current(records::decode_record(&name, &bytes, IDENTITY_MAGIC)?)
    };
    Ok(Some(found))
}

/// Creates `dir` if needed, locks it, and checks (or, the first time, writes) its identity;
/// a format-1 identity gets its UUID here. The returned file holds the lock.
pub(crate) fn claim_ost_dir(
    dir: &Path,
    cluster: &str,
    index: u32,
) -> Result<(File, OstDisk), Error> {
    std::fs::create_dir_all(dir).map_err(|e| RecordError::io(dir, e))?;
    let lock = records::lock_dir(dir)?;
    let path = dir.join(IDENTITY_FILE);
    let found = read_identity(&path)?;
    let (found_cluster, found_index) = match &found {
        Some(Found::Current(id) | Found::Format2(id)) => (id.cluster.as_str(), id.index),
        Some(Found::Format1(old)) => (old.cluster.as_str(), old.index),
        None => (cluster, index),
    };
    if found_cluster != cluster || found_index != index {
        return Err(Error::Invalid(format!(
            "{} holds OST {found_index} of cluster {found_cluster:?}; refusing to serve it as \
             OST {index} of {cluster:?}",
            dir.display(),
        )));
    }
    let id = match found {
        Some(Found::Current(id)) => id,
        Some(Found::Format2(id)) => {
            records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC, &id)?;
            tracing::info!(
                index,
                dir = %dir.display(),
                "OST directory marked format 3: small objects keep their CRCs in an \
                 attribute from now on, which older versions do not read"
            );
            id
        }
        // Format 1: a disk in service before this version; it gets its UUID now.
        Some(Found::Format1(_)) => {
            let id = new_identity(cluster, index, true)?;
            records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC, &id)?;
            tracing::info!(
                index,
                disk = %id.disk,
                dir = %dir.display(),
                "OST directory given a disk UUID"
            );
            id
        }
        None => {
            let id = new_identity(cluster, index, false)?;
            records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC, &id)?;
            tracing::info!(
                index,
                disk = %id.disk,
                dir = %dir.display(),
                "new OST directory; it serves nothing until the MGS accepts its disk"
            );
            id
        }
    };
    let disk = OstDisk {
        dir: Some(dir.to_path_buf()),
        cluster: id.cluster,
        index: id.index,
        uuid: id.disk,
        accepted: AtomicBool::new(id.accepted),
    };
    Ok((lock, disk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_gets_a_uuid_once_and_is_not_accepted_until_told() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ost");
        let (lock, disk) = claim_ost_dir(&dir, "c", 3).unwrap();
        assert!(!disk.accepted());
        let uuid = disk.uuid();
        drop(lock);
        let (lock, again) = claim_ost_dir(&dir, "c", 3).unwrap();
        assert_eq!(again.uuid(), uuid, "the UUID is given once");
        assert!(!again.accepted());
        again.set_accepted().unwrap();
        assert!(again.accepted());
        drop(lock);
        let (lock, accepted) = claim_ost_dir(&dir, "c", 3).unwrap();
        assert_eq!((accepted.uuid(), accepted.accepted()), (uuid, true));
        drop(lock);
        // Wiped: a new disk.
        std::fs::remove_dir_all(&dir).unwrap();
        let (_lock, wiped) = claim_ost_dir(&dir, "c", 3).unwrap();
        assert_ne!(wiped.uuid(), uuid);
        assert!(!wiped.accepted());
    }

    #[test]
    fn a_format_1_identity_gets_a_uuid_once_and_counts_as_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let old = OstIdentityV1 {
            cluster: "c".into(),
            index: 1,
        };
        records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC_V1, &old).unwrap();
        let (lock, disk) = claim_ost_dir(dir, "c", 1).unwrap();
        assert!(disk.accepted(), "a disk in service before the upgrade");
        let bytes = std::fs::read(dir.join(IDENTITY_FILE)).unwrap();
        assert_eq!(
            &bytes[..8],
            &IDENTITY_MAGIC,
            "upgraded to the current format"
        );
        assert!(!dir.join(format!(".{IDENTITY_FILE}.tmp")).exists());
        drop(lock);
        let (_lock, again) = claim_ost_dir(dir, "c", 1).unwrap();
        assert_eq!(again.uuid(), disk.uuid(), "upgraded once");
        // Format 1 of another OST is refused like format 2.
        drop(_lock);
        let err = claim_ost_dir(dir, "c", 2).unwrap_err();
        assert!(err.to_string().contains("holds OST 1"), "{err}");
    }

    /// A format-2 file keeps its disk and acceptance and turns format 3, which a version
    /// reading format 2 would refuse (an unknown magic) rather than serve objects whose
    /// CRCs it cannot find.
    #[test]
    fn a_format_2_identity_turns_format_3_keeping_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (lock, disk) = claim_ost_dir(dir, "c", 4).unwrap();
        disk.set_accepted().unwrap();
        drop(lock);
        let id = OstIdentity {
            cluster: "c".into(),
            index: 4,
            disk: disk.uuid(),
            accepted: true,
        };
        records::write_record(dir, IDENTITY_FILE, IDENTITY_MAGIC_V2, &id).unwrap();
        let (_lock, again) = claim_ost_dir(dir, "c", 4).unwrap();
        assert_eq!(again.uuid(), disk.uuid());
        assert!(again.accepted());
        let bytes = std::fs::read(dir.join(IDENTITY_FILE)).unwrap();
        assert_eq!(&bytes[..8], b"RSTROST\x03");
        let name = dir.join(IDENTITY_FILE).display().to_string();
        let as_format_2 = records::decode_record::<OstIdentity>(&name, &bytes, IDENTITY_MAGIC_V2);
        assert!(as_format_2.is_err(), "a format-2 reader refuses it");
    }

    #[test]
    fn another_cluster_or_index_is_refused_and_a_damaged_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        drop(claim_ost_dir(dir, "c", 1).unwrap());
        let err = claim_ost_dir(dir, "other", 1).unwrap_err();
        assert!(err.to_string().contains("of cluster \"c\""), "{err}");
        let err = claim_ost_dir(dir, "c", 2).unwrap_err();
        assert!(err.to_string().contains("holds OST 1"), "{err}");
        std::fs::write(dir.join(IDENTITY_FILE), b"garbage").unwrap();
        let err = claim_ost_dir(dir, "c", 1).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
    }
}

//! Small durable records: the MGS registry file, and the helpers the OSS shares for its OST
//! identity file and directory locks.
//!
//! A record is written whole or not at all (write a temp file, fsync it, rename it over the
//! old one, fsync the directory) and carries a magic and a checksum, so a record that was
//! damaged on disk is refused with a clear error instead of being read as something else.
//!
//! ```text
//! offset size field
//!      0    8 magic        one per record kind, its last byte is the format version
//!      8    8 checksum     FNV-1a 64 of the body (big-endian)
//!     16    4 body length  (big-endian), at most MAX_RECORD_BYTES
//!     20    n body         postcard, through rustre_proto::codec
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use rustre_proto::msg::Capacity;
use rustre_proto::{codec, Error};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Largest record read back (a full registry of MAX_OSTS is about 1.5 MB).
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Name of the registry file in the MGS data directory.
pub const REGISTRY_FILE: &str = "mgs.registry";
/// Magic of the registry file, format 1.
pub const REGISTRY_MAGIC: [u8; 8] = *b"RSTRMGS\x01";
/// Name of the lock file that keeps two processes off one data directory.
pub const LOCK_FILE: &str = "LOCK";

const RECORD_HEADER_BYTES: usize = 20;

/// The MGS registry as saved on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RegistryFile {
    /// The cluster this directory belongs to; another cluster's MGS refuses to start on it.
    pub cluster: String,
    /// The epoch of the newest map anyone may have seen.
    pub epoch: u64,
    pub osts: Vec<SavedOst>,
    /// MDS addresses.
    pub mds: Vec<String>,
}

/// One OST as saved: its identity and its last known capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedOst {
    pub index: u32,
    pub addr: String,
    pub capacity: Capacity,
}

/// Loads the registry of `dir`, `None` when there is none yet (a new cluster).
pub(crate) fn load_registry(dir: &Path) -> Result<Option<RegistryFile>, Error> {
    read_record(&dir.join(REGISTRY_FILE), REGISTRY_MAGIC)
}

/// Saves the registry of `dir` durably.
pub(crate) fn save_registry(dir: &Path, reg: &RegistryFile) -> Result<(), Error> {
    write_record(dir, REGISTRY_FILE, REGISTRY_MAGIC, reg)
}

/// FNV-1a, 64 bits: enough to catch a damaged record; not a defence against an attacker.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encodes `value` as a record and writes it atomically to `dir/name`.
pub(crate) fn write_record<T: Serialize>(
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    value: &T,
) -> Result<(), Error> {
    let body = codec::encode(value)?;
    if body.len() > MAX_RECORD_BYTES {
        return Err(Error::Invalid(format!(
            "{name}: record of {} bytes exceeds {MAX_RECORD_BYTES}",
            body.len()
        )));
    }
    let mut bytes = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&fnv1a64(&body).to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    write_atomic(dir, name, &bytes).map_err(|e| io_error(&dir.join(name), e))
}

/// Reads the record at `path`; `None` when the file does not exist.
pub(crate) fn read_record<T: DeserializeOwned>(
    path: &Path,
    magic: [u8; 8],
) -> Result<Option<T>, Error> {
    let bad = |what: &str| Error::Io(format!("{}: {what}", path.display()));
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    // Bound the read before allocating: the file may be anything.
    let limit = (RECORD_HEADER_BYTES + MAX_RECORD_BYTES) as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(bad("larger than any rustre record"));
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(bad("too short to be a rustre record"));
    }
    if bytes[0..8] != magic {
        return Err(bad("not a rustre record of this kind or format"));
    }
    let sum = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
    let body = &bytes[RECORD_HEADER_BYTES..];
    if len > MAX_RECORD_BYTES || body.len() != len {
        return Err(bad("length does not match the file"));
    }
    if fnv1a64(body) != sum {
        return Err(bad("checksum mismatch, the record is damaged"));
    }
    codec::decode(body)
        .map(Some)
        .map_err(|e| bad(&format!("undecodable record: {e}")))
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file:
/// write a temp file, fsync it, rename it over `name`, fsync the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// fsyncs a directory, making the creations, renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Takes an exclusive `flock` on `dir/LOCK` so a second process (or a second role in this
/// one) cannot serve the same directory; the lock lasts as long as the returned file.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::Io(format!(
                "{} is in use by another rustre server (locked)",
                dir.display()
            )));
        }
        return Err(io_error(&path, e));
    }
    Ok(f)
}

/// An I/O error with the path it happened on, as the operator needs it.
pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => Error::NoSpace,
        _ => Error::Io(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RegistryFile {
        RegistryFile {
            cluster: "c".into(),
            epoch: 42,
            osts: vec![SavedOst {
                index: 3,
                addr: "h:1".into(),
                capacity: Capacity::default(),
            }],
            mds: vec!["m:2".into()],
        }
    }

    #[test]
    fn registry_round_trip_and_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), None);
        save_registry(dir.path(), &sample()).unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), Some(sample()));
        let mut next = sample();
        next.epoch = 43;
        save_registry(dir.path(), &next).unwrap();
        assert_eq!(load_registry(dir.path()).unwrap(), Some(next));
        assert!(!dir.path().join(format!(".{REGISTRY_FILE}.tmp")).exists());
    }

    #[test]
    fn damaged_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        save_registry(dir.path(), &sample()).unwrap();
        let path = dir.path().join(REGISTRY_FILE);
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let mut wrong_magic = good.clone();
        wrong_magic[7] = 9;
        for bad in [
            flipped,
            wrong_magic,
            good[..good.len() - 1].to_vec(),
            vec![1, 2, 3],
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(load_registry(dir.path()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_is_exclusive_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        let err = lock_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(held);
        lock_dir(dir.path()).unwrap();
    }
}

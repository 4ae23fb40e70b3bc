//! Small durable records on local disk, shared by every role: record files written whole or
//! not at all, the lock that keeps two processes off one data directory, and `sync_dir`.
//!
//! A record carries a magic and a checksum, so a record that was damaged is refused with a
//! clear error instead of being read as something else:
//!
//! ```text
//! offset size field
//!      0    8 magic        one per record kind, its last byte is the format version
//!      8    8 checksum     FNV-1a 64 of the body (big-endian)
//!     16    4 body length  (big-endian), at most MAX_RECORD_BYTES
//!     20    n body         postcard, through rustre_proto::codec
//! ```
//!
//! A record file is written whole or not at all (write a temp file, fsync it, rename it over
//! the old one, fsync the directory). The same encoding serves records kept in the metadata
//! store (the MGS registry, `mgs::persist`).
//!
//! Errors are [`RecordError`]s, converted to the wire error once, where a role reports them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustre_proto::codec;
use serde::{de::DeserializeOwned, Serialize};

/// Largest record body read back (a full MGS registry is about 1.5 MB).
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Bytes of a record's header (magic, checksum, body length).
pub const RECORD_HEADER_BYTES: usize = 20;
/// Name of the lock file that keeps two processes off one data directory.
pub const LOCK_FILE: &str = "LOCK";

/// What can go wrong with a record or a data directory.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The disk is full.
    #[error("{}: no space left on device", path.display())]
    NoSpace { path: PathBuf },
    /// Any other failure of the file system at `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A record that is not what it should be (damaged, of another kind, truncated).
    #[error("{what}: {why}")]
    Damaged { what: String, why: String },
    /// A value too large (or unencodable) to be a record.
    #[error("{what}: {why}")]
    Unencodable { what: String, why: String },
    /// Another process holds the directory's lock.
    #[error("{} is in use by another rustre server (locked)", dir.display())]
    Locked { dir: PathBuf },
}

impl RecordError {
    /// The error of an I/O failure at `path`.
    pub fn io(path: &Path, e: std::io::Error) -> RecordError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => RecordError::NoSpace {
                path: path.to_path_buf(),
            },
            _ => RecordError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        }
    }
}

impl From<RecordError> for rustre_proto::Error {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::NoSpace { .. } => rustre_proto::Error::NoSpace,
            RecordError::Unencodable { .. } => rustre_proto::Error::Invalid(e.to_string()),
            RecordError::Io { .. } | RecordError::Damaged { .. } | RecordError::Locked { .. } => {
                rustre_proto::Error::Io(e.to_string())
            }
        }
    }
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

/// Encodes `value` as a record (header and body); `name` names it in errors.
pub fn encode_record<T: Serialize>(
    name: &str,
    magic: [u8; 8],
    value: &T,
) -> Result<Vec<u8>, RecordError> {
    let unencodable = |why: String| RecordError::Unencodable {
        what: name.to_string(),
        why,
    };
    let body = codec::encode(value).map_err(|e| unencodable(e.to_string()))?;
    if body.len() > MAX_RECORD_BYTES {
        return Err(unencodable(format!(
            "record of {} bytes exceeds {MAX_RECORD_BYTES}",
            body.len()
        )));
    }
    let mut bytes = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&fnv1a64(&body).to_be_bytes());
    // At most MAX_RECORD_BYTES, below u32::MAX.
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a whole record; `name` names it in errors, which say what is wrong with it.
pub fn decode_record<T: DeserializeOwned>(
    name: &str,
    bytes: &[u8],
    magic: [u8; 8],
) -> Result<T, RecordError> {
    let damaged = |why: &str| RecordError::Damaged {
        what: name.to_string(),
        why: why.to_string(),
    };
    if bytes.len() > RECORD_HEADER_BYTES + MAX_RECORD_BYTES {
        return Err(damaged("larger than any rustre record"));
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(damaged("too short to be a rustre record"));
    }
    if bytes[0..8] != magic {
        return Err(damaged("not a rustre record of this kind or format"));
    }
    let sum = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
    let body = &bytes[RECORD_HEADER_BYTES..];
    if len > MAX_RECORD_BYTES || body.len() != len {
        return Err(damaged("length does not match the record"));
    }
    if fnv1a64(body) != sum {
        return Err(damaged("checksum mismatch, the record is damaged"));
    }
    codec::decode(body).map_err(|e| damaged(&format!("undecodable record: {e}")))
}

/// Encodes `value` as a record and writes it atomically to `dir/name`.
pub fn write_record<T: Serialize>(
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    value: &T,
) -> Result<(), RecordError> {
    let bytes = encode_record(name, magic, value)?;
    write_atomic(dir, name, &bytes).map_err(|e| RecordError::io(&dir.join(name), e))
}

/// Reads the record at `path`; `None` when the file does not exist.
pub fn read_record<T: DeserializeOwned>(
    path: &Path,
    magic: [u8; 8],
) -> Result<Option<T>, RecordError> {
    match read_record_bytes(path)? {
        Some(bytes) => decode_record(&path.display().to_string(), &bytes, magic).map(Some),
        None => Ok(None),
    }
}

/// The bytes of the record file at `path`, undecoded (for a reader that accepts several
/// formats and picks one by the magic); `None` when the file does not exist. At most one
/// byte more than any record is read, so an oversized file is refused by the decoding.
pub fn read_record_bytes(path: &Path) -> Result<Option<Vec<u8>>, RecordError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::io(path, e)),
    };
    // Bound the read before allocating: the file may be anything.
    let limit = (RECORD_HEADER_BYTES + MAX_RECORD_BYTES) as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RecordError::io(path, e))?;
    Ok(Some(bytes))
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file:
/// write a temp file, fsync it, rename it over `name`, fsync the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// fsyncs a directory, making the creations, renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Takes an exclusive `flock` on `dir/LOCK` so a second process (or a second role in this
/// one) cannot serve the same directory; the lock lasts as long as the returned file.
pub fn lock_dir(dir: &Path) -> Result<File, RecordError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| RecordError::io(&path, e))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(RecordError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        return Err(RecordError::io(&path, e));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"RSTRTST\x01";
    const NAME: &str = "test.record";

    fn sample() -> (String, Vec<u32>) {
        ("record".into(), vec![1, 2, 3, u32::MAX])
    }

    #[test]
    fn a_record_file_round_trips_and_an_absent_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        assert_eq!(
            read_record::<(String, Vec<u32>)>(&path, MAGIC).unwrap(),
            None
        );
        write_record(dir.path(), NAME, MAGIC, &sample()).unwrap();
        assert_eq!(read_record(&path, MAGIC).unwrap(), Some(sample()));
        assert!(!dir.path().join(format!(".{NAME}.tmp")).exists());
    }

    #[test]
    fn damaged_record_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_record(dir.path(), NAME, MAGIC, &sample()).unwrap();
        let path = dir.path().join(NAME);
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
            let err = read_record::<(String, Vec<u32>)>(&path, MAGIC).unwrap_err();
            assert!(matches!(err, RecordError::Damaged { .. }), "{err:?}");
            // Damage reaches a client as EIO, never as "no such file".
            assert!(matches!(
                rustre_proto::Error::from(err),
                rustre_proto::Error::Io(_)
            ));
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

    #[test]
    fn an_unreadable_path_is_an_io_error_not_not_found() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where a record file should be: the read fails with EISDIR.
        std::fs::create_dir(dir.path().join(NAME)).unwrap();
        let err = read_record::<(String, Vec<u32>)>(&dir.path().join(NAME), MAGIC).unwrap_err();
        assert!(matches!(err, RecordError::Io { .. }), "{err:?}");
        assert!(matches!(
            rustre_proto::Error::from(err),
            rustre_proto::Error::Io(_)
        ));
    }
}

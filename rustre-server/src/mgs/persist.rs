//! Small durable records: the MGS registry (kept in the metadata KV), and the record files
//! the OSS keeps for its OST identity, with the directory locks it shares.
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
//! the old one, fsync the directory).
//!
//! # The MGS registry in the KV
//!
//! The registry record lives in the metadata store under the MGS's own key prefix
//! ([`keys::MGS`], listed in `mds/keys.rs`, which no MDS key uses), split into chunks of
//! [`REGISTRY_CHUNK_BYTES`] because FoundationDB refuses values over 100,000 bytes (a full
//! registry of [`super::MAX_OSTS`] is about 1.5 MB):
//!
//! ```text
//! {MGS}registry/{chunk: u32 big-endian}  ->  bytes [chunk * REGISTRY_CHUNK_BYTES, ...) of the record
//! ```
//!
//! [`save_registry`] is one read-modify-write transaction: it reads the stored record, refuses
//! a record of another cluster, moves the epoch past the stored one if another MGS saved a
//! later epoch meanwhile, and replaces every chunk. Two MGS saving at once over FoundationDB
//! therefore conflict, one re-runs, and they never store (or hand out) the same epoch.
//!
//! Before the registry moved into the KV it was the file `mgs.registry` in the MGS data
//! directory; [`load_registry_file`] reads such a file so the MGS can import it once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use rustre_proto::msg::Capacity;
use rustre_proto::{codec, Error};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::mds::keys;
use crate::meta::{Kv, Transaction};

/// Largest record read back (a full registry of MAX_OSTS is about 1.5 MB).
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Name of the registry file of earlier versions in the MGS data directory (imported once).
pub const REGISTRY_FILE: &str = "mgs.registry";
/// What an imported [`REGISTRY_FILE`] is renamed to, so it is not mistaken for live state.
pub const IMPORTED_REGISTRY_FILE: &str = "mgs.registry.imported";
/// Magic of the registry record, format 1 (the same in the KV and in the old file).
pub const REGISTRY_MAGIC: [u8; 8] = *b"RSTRMGS\x01";
/// Name of the lock file that keeps two processes off one data directory.
pub const LOCK_FILE: &str = "LOCK";
/// Bytes of the registry record per KV value, under FoundationDB's 100,000-byte value limit.
pub const REGISTRY_CHUNK_BYTES: usize = 64 << 10;
/// Most chunks a registry record may span (a record of [`MAX_RECORD_BYTES`] and its header).
const MAX_REGISTRY_CHUNKS: usize =
    (RECORD_HEADER_BYTES + MAX_RECORD_BYTES).div_ceil(REGISTRY_CHUNK_BYTES);
/// The registry's keys after the [`keys::MGS`] byte: `registry/{chunk}`.
const REGISTRY_KEY_NAME: &[u8] = b"registry/";

const RECORD_HEADER_BYTES: usize = 20;

/// The MGS registry as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RegistryFile {
    /// The cluster this registry belongs to; another cluster's MGS refuses to start on it.
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

/// The key of chunk `n` of the registry record.
pub(crate) fn registry_chunk_key(n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + REGISTRY_KEY_NAME.len() + 4);
    k.push(keys::MGS);
    k.extend_from_slice(REGISTRY_KEY_NAME);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The half-open key range holding every chunk of the registry record.
fn registry_range() -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![keys::MGS];
    start.extend_from_slice(REGISTRY_KEY_NAME);
    let mut end = start.clone();
    // "registry/" -> "registry0": '/' + 1 == '0'.
    *end.last_mut().expect("not empty") += 1;
    (start, end)
}

/// Reads the registry record in `tx`; `None` when there is none yet (a new cluster).
pub(crate) fn load_registry(tx: &mut dyn Transaction) -> Result<Option<RegistryFile>, Error> {
    let bad = |what: &str| Error::Io(format!("the MGS registry in the metadata store: {what}"));
    let (start, end) = registry_range();
    let rows = tx.range(&start, &end, MAX_REGISTRY_CHUNKS + 1)?;
    if rows.is_empty() {
        return Ok(None);
    }
    if rows.len() > MAX_REGISTRY_CHUNKS {
        return Err(bad("larger than any rustre record"));
    }
    let mut bytes = Vec::with_capacity(rows.len() * REGISTRY_CHUNK_BYTES);
    for (n, (key, value)) in rows.iter().enumerate() {
        // At most MAX_REGISTRY_CHUNKS rows, far below u32::MAX.
        if *key != registry_chunk_key(n as u32) {
            return Err(bad("a chunk is missing or misnamed"));
        }
        bytes.extend_from_slice(value);
    }
    decode_record(&bytes, REGISTRY_MAGIC)
        .map(Some)
        .map_err(|what| bad(&what))
}

/// Replaces the registry record in `tx` with `reg`.
pub(crate) fn store_registry(tx: &mut dyn Transaction, reg: &RegistryFile) -> Result<(), Error> {
    let bytes = encode_record(REGISTRY_FILE, REGISTRY_MAGIC, reg)?;
    let (start, end) = registry_range();
    tx.clear_range(&start, &end)?;
    for (n, chunk) in bytes.chunks(REGISTRY_CHUNK_BYTES).enumerate() {
        // Bounded by MAX_RECORD_BYTES / REGISTRY_CHUNK_BYTES, far below u32::MAX.
        tx.set(&registry_chunk_key(n as u32), chunk);
    }
    Ok(())
}

/// Saves `reg` in one read-modify-write transaction and returns the epoch it was saved with:
/// `reg.epoch`, or one past the stored epoch if that is not below it (another MGS over the
/// same store saved a later epoch in the meantime). Refuses a store holding another
/// cluster's registry. Blocking; the commit is not yet durable on the embedded store (call
/// [`Kv::durable`] after).
pub(crate) fn save_registry(kv: &Kv, reg: &RegistryFile) -> Result<u64, Error> {
    kv.transact(|tx| {
        let mut rec = reg.clone();
        if let Some(stored) = load_registry(tx)? {
            if stored.cluster != rec.cluster {
                return Err(Error::Invalid(format!(
                    "the metadata store holds the registry of cluster {:?}, not {:?}",
                    stored.cluster, rec.cluster
                )));
            }
            rec.epoch = rec.epoch.max(stored.epoch.saturating_add(1));
        }
        store_registry(tx, &rec)?;
        Ok(rec.epoch)
    })
}

/// Loads the registry file an earlier version kept in `dir`; `None` when there is none.
pub(crate) fn load_registry_file(dir: &Path) -> Result<Option<RegistryFile>, Error> {
    read_record(&dir.join(REGISTRY_FILE), REGISTRY_MAGIC)
}

/// Renames the registry file of `dir` once its content is in the KV, durably.
pub(crate) fn retire_registry_file(dir: &Path) -> Result<(), Error> {
    let from = dir.join(REGISTRY_FILE);
    std::fs::rename(&from, dir.join(IMPORTED_REGISTRY_FILE)).map_err(|e| io_error(&from, e))?;
    sync_dir(dir).map_err(|e| io_error(dir, e))
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

/// Encodes `value` as a record (header and body) named `name` in errors.
fn encode_record<T: Serialize>(name: &str, magic: [u8; 8], value: &T) -> Result<Vec<u8>, Error> {
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
    Ok(bytes)
}

/// Decodes a whole record; the error says what is wrong with it.
fn decode_record<T: DeserializeOwned>(bytes: &[u8], magic: [u8; 8]) -> Result<T, String> {
    if bytes.len() > RECORD_HEADER_BYTES + MAX_RECORD_BYTES {
        return Err("larger than any rustre record".into());
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err("too short to be a rustre record".into());
    }
    if bytes[0..8] != magic {
        return Err("not a rustre record of this kind or format".into());
    }
    let sum = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let len = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
    let body = &bytes[RECORD_HEADER_BYTES..];
    if len > MAX_RECORD_BYTES || body.len() != len {
        return Err("length does not match the record".into());
    }
    if fnv1a64(body) != sum {
        return Err("checksum mismatch, the record is damaged".into());
    }
    codec::decode(body).map_err(|e| format!("undecodable record: {e}"))
}

/// Encodes `value` as a record and writes it atomically to `dir/name`.
pub(crate) fn write_record<T: Serialize>(
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    value: &T,
) -> Result<(), Error> {
    let bytes = encode_record(name, magic, value)?;
    write_atomic(dir, name, &bytes).map_err(|e| io_error(&dir.join(name), e))
}

/// Reads the record at `path`; `None` when the file does not exist.
pub(crate) fn read_record<T: DeserializeOwned>(
    path: &Path,
    magic: [u8; 8],
) -> Result<Option<T>, Error> {
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
    decode_record(&bytes, magic)
        .map(Some)
        .map_err(|what| Error::Io(format!("{}: {what}", path.display())))
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
    use crate::mgs::{MAX_ADDR_BYTES, MAX_OSTS};

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

    /// A registry spanning several chunks: `osts` OSTs with long addresses.
    fn large(osts: u32) -> RegistryFile {
        let mut reg = sample();
        reg.osts = (0..osts)
            .map(|index| SavedOst {
                index,
                addr: format!("{index}:{}", "h".repeat(MAX_ADDR_BYTES - 16)),
                capacity: Capacity {
                    total_bytes: u64::MAX,
                    free_bytes: u64::MAX - u64::from(index),
                    avail_bytes: 1,
                },
            })
            .collect();
        reg
    }

    fn kv() -> (tempfile::TempDir, Kv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open_embedded(dir.path()).unwrap();
        (dir, kv)
    }

    fn load(kv: &Kv) -> Result<Option<RegistryFile>, Error> {
        kv.transact(load_registry)
    }

    /// Every stored chunk of the registry, in key order.
    fn chunks(kv: &Kv) -> Vec<(Vec<u8>, Vec<u8>)> {
        let (start, end) = registry_range();
        kv.transact(|tx| tx.range(&start, &end, usize::MAX))
            .unwrap()
    }

    #[test]
    fn registry_keys_stay_under_the_mgs_prefix() {
        let (start, end) = registry_range();
        assert_eq!(start[0], keys::MGS);
        assert_eq!(end[0], keys::MGS);
        for n in [0, 1, u32::MAX] {
            let k = registry_chunk_key(n);
            assert!(k >= start && k < end, "{k:?}");
        }
        assert!(registry_chunk_key(1) < registry_chunk_key(2));
        assert!(registry_chunk_key(255) < registry_chunk_key(256));
    }

    #[test]
    fn registry_round_trip_and_absent() {
        let (_dir, kv) = kv();
        assert_eq!(load(&kv).unwrap(), None);
        assert_eq!(save_registry(&kv, &sample()).unwrap(), 42);
        assert_eq!(load(&kv).unwrap(), Some(sample()));
        let mut next = sample();
        next.epoch = 43;
        assert_eq!(save_registry(&kv, &next).unwrap(), 43);
        assert_eq!(load(&kv).unwrap(), Some(next));
        assert_eq!(chunks(&kv).len(), 1);
    }

    #[test]
    fn large_registry_spans_chunks_and_shrinks_cleanly() {
        let (_dir, kv) = kv();
        let big = large(MAX_OSTS as u32);
        assert_eq!(save_registry(&kv, &big).unwrap(), big.epoch);
        let stored = chunks(&kv);
        assert!(stored.len() > 8, "{} chunks", stored.len());
        assert!(stored.iter().all(|(_, v)| v.len() <= REGISTRY_CHUNK_BYTES));
        assert_eq!(load(&kv).unwrap(), Some(big.clone()));
        // A smaller registry leaves no stale chunk behind.
        let mut small = sample();
        small.epoch = big.epoch + 1;
        save_registry(&kv, &small).unwrap();
        assert_eq!(chunks(&kv).len(), 1);
        assert_eq!(load(&kv).unwrap(), Some(small));
    }

    #[test]
    fn save_never_moves_the_stored_epoch_back_nor_reuses_it() {
        let (_dir, kv) = kv();
        save_registry(&kv, &sample()).unwrap();
        // Another MGS saved epoch 42 already: a save proposing 42 (or less) gets 43, 44.
        let mut stale = sample();
        stale.mds.push("other:1".into());
        assert_eq!(save_registry(&kv, &stale).unwrap(), 43);
        stale.epoch = 7;
        assert_eq!(save_registry(&kv, &stale).unwrap(), 44);
        let back = load(&kv).unwrap().unwrap();
        assert_eq!((back.epoch, back.mds.len()), (44, 2));
        // A registry of another cluster is refused and the stored one kept.
        let mut foreign = sample();
        foreign.cluster = "other".into();
        foreign.epoch = 100;
        let err = save_registry(&kv, &foreign).unwrap_err();
        assert!(err.to_string().contains("\"c\""), "{err}");
        assert_eq!(load(&kv).unwrap().unwrap().epoch, 44);
    }

    /// Threads saving at once, all proposing the same epochs (as MGS that loaded the same
    /// registry would), get distinct epochs, and the store ends at the newest.
    fn check_concurrent_saves(kv: &Kv) {
        const THREADS: usize = 4;
        const SAVES: usize = 50;
        let epochs: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(move || {
                        (0..SAVES)
                            .map(|i| {
                                let mut reg = sample();
                                reg.epoch = 43 + i as u64;
                                save_registry(kv, &reg).unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let mut sorted = epochs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            THREADS * SAVES,
            "an epoch was handed out twice"
        );
        assert_eq!(
            load(kv).unwrap().unwrap().epoch,
            *sorted.last().unwrap(),
            "the stored epoch is the newest one handed out"
        );
    }

    #[test]
    fn concurrent_saves_get_distinct_epochs() {
        let (_dir, kv) = kv();
        check_concurrent_saves(&kv);
    }

    /// The same over FoundationDB when `RUSTRE_FDB_CLUSTER_FILE` names a cluster file, under
    /// a prefix of its own that is cleared before and after.
    #[cfg(feature = "fdb")]
    #[test]
    fn fdb_concurrent_saves_get_distinct_epochs() {
        const FDB_TEST_PREFIX: &[u8] = b"rustre-test/mgs-registry/";
        let Some(cluster_file) = std::env::var_os("RUSTRE_FDB_CLUSTER_FILE") else {
            eprintln!("skipped: RUSTRE_FDB_CLUSTER_FILE is not set");
            return;
        };
        let kv = Kv::open_fdb(Path::new(&cluster_file), FDB_TEST_PREFIX).expect("open fdb");
        let clear = || {
            let (start, end) = registry_range();
            kv.transact(|tx| tx.clear_range(&start, &end)).unwrap();
        };
        clear();
        check_concurrent_saves(&kv);
        clear();
    }

    #[test]
    fn damaged_records_are_refused() {
        let (_dir, kv) = kv();
        save_registry(&kv, &large(600)).unwrap();
        let good = chunks(&kv);
        assert!(good.len() >= 2, "the test needs several chunks");
        let set = |rows: &[(Vec<u8>, Vec<u8>)]| {
            kv.transact(|tx| {
                let (start, end) = registry_range();
                tx.clear_range(&start, &end)?;
                for (k, v) in rows {
                    tx.set(k, v);
                }
                Ok::<_, Error>(())
            })
            .unwrap()
        };
        let mut flipped = good.clone();
        let last = flipped.last_mut().unwrap();
        let end = last.1.len() - 1;
        last.1[end] ^= 0x40;
        let mut wrong_magic = good.clone();
        wrong_magic[0].1[7] = 9;
        let mut missing_chunk = good.clone();
        missing_chunk.remove(1);
        let mut truncated = good.clone();
        truncated.pop();
        let garbage = vec![(registry_chunk_key(0), vec![1, 2, 3])];
        for bad in [flipped, wrong_magic, missing_chunk, truncated, garbage] {
            set(&bad);
            let err = load(&kv).unwrap_err();
            assert!(matches!(err, Error::Io(_)), "{err:?}");
            // A save never replaces a damaged registry either.
            assert!(save_registry(&kv, &sample()).is_err());
            assert_eq!(chunks(&kv), bad);
        }
    }

    #[test]
    fn registry_file_of_earlier_versions_is_read_and_retired() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_registry_file(dir.path()).unwrap(), None);
        write_record(dir.path(), REGISTRY_FILE, REGISTRY_MAGIC, &sample()).unwrap();
        assert_eq!(load_registry_file(dir.path()).unwrap(), Some(sample()));
        assert!(!dir.path().join(format!(".{REGISTRY_FILE}.tmp")).exists());
        retire_registry_file(dir.path()).unwrap();
        assert_eq!(load_registry_file(dir.path()).unwrap(), None);
        assert!(dir.path().join(IMPORTED_REGISTRY_FILE).exists());
    }

    #[test]
    fn damaged_record_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_record(dir.path(), REGISTRY_FILE, REGISTRY_MAGIC, &sample()).unwrap();
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
            assert!(load_registry_file(dir.path()).is_err(), "{bad:?}");
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

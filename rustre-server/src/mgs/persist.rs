//! The MGS registry, kept in the metadata KV as a record (`crate::records`: magic, checksum,
//! length, postcard body), and the registry file of earlier versions, imported once.
//!
//! # The MGS registry in the KV
//!
//! The registry record lives in the metadata store under the MGS's own key prefix
//! ([`schema::MGS`], listed in `crate::schema`, which no MDS key uses), split into chunks of
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
//!
//! Formats (the magic's last byte): 2 saves each OST's disk binding ([`SavedOst::disk`]);
//! 1, written by earlier versions, had none. A record of format 1 is read as format 2 with
//! every OST unbound (each binds the disk of its next registration), and saved as format 2.

use std::path::Path;

use rustre_proto::msg::mgs::OstUuid;
use rustre_proto::msg::Capacity;
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use crate::meta::{Kv, Transaction};
use crate::records::{self, RecordError, MAX_RECORD_BYTES, RECORD_HEADER_BYTES};
use crate::schema;

/// Name of the registry file of earlier versions in the MGS data directory (imported once).
pub(crate) const REGISTRY_FILE: &str = "mgs.registry";
/// What an imported [`REGISTRY_FILE`] is renamed to, so it is not mistaken for live state.
pub(crate) const IMPORTED_REGISTRY_FILE: &str = "mgs.registry.imported";
/// Magic of the registry record, format 2 (the same in the KV and in the old file).
pub(crate) const REGISTRY_MAGIC: [u8; 8] = *b"RSTRMGS\x02";
/// Magic of the registry record of earlier versions, format 1 (no disk bindings); read only.
pub(crate) const REGISTRY_MAGIC_V1: [u8; 8] = *b"RSTRMGS\x01";
/// Bytes of the registry record per KV value, under FoundationDB's 100,000-byte value limit.
pub(crate) const REGISTRY_CHUNK_BYTES: usize = 64 << 10;
/// Most chunks a registry record may span (a record of [`MAX_RECORD_BYTES`] and its header).
const MAX_REGISTRY_CHUNKS: usize =
    (RECORD_HEADER_BYTES + MAX_RECORD_BYTES).div_ceil(REGISTRY_CHUNK_BYTES);

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

/// One OST as saved: its identity, its last known capacity and the disk bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedOst {
    pub index: u32,
    pub addr: String,
    pub capacity: Capacity,
    /// The disk bound to the index; `None` when none is (saved by an earlier version, or
    /// dropped by `rustre ost replace`).
    pub disk: Option<OstUuid>,
}

/// The registry record of format 1, as earlier versions wrote it.
mod v1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(super) struct RegistryFile {
        pub cluster: String,
        pub epoch: u64,
        pub osts: Vec<SavedOst>,
        pub mds: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(super) struct SavedOst {
        pub index: u32,
        pub addr: String,
        pub capacity: Capacity,
    }

    impl From<RegistryFile> for super::RegistryFile {
        fn from(f: RegistryFile) -> Self {
            super::RegistryFile {
                cluster: f.cluster,
                epoch: f.epoch,
                osts: f
                    .osts
                    .into_iter()
                    .map(|o| super::SavedOst {
                        index: o.index,
                        addr: o.addr,
                        capacity: o.capacity,
                        disk: None,
                    })
                    .collect(),
                mds: f.mds,
            }
        }
    }
}

/// Decodes a registry record of either format; `name` names it in errors.
fn decode_registry(name: &str, bytes: &[u8]) -> Result<RegistryFile, RecordError> {
    if bytes.starts_with(&REGISTRY_MAGIC_V1) {
        return records::decode_record::<v1::RegistryFile>(name, bytes, REGISTRY_MAGIC_V1)
            .map(RegistryFile::from);
    }
    records::decode_record(name, bytes, REGISTRY_MAGIC)
}

/// Reads the registry record in `tx`; `None` when there is none yet (a new cluster).
pub(crate) fn load_registry(tx: &mut dyn Transaction) -> Result<Option<RegistryFile>, Error> {
    let bad = |what: &str| Error::Io(format!("the MGS registry in the metadata store: {what}"));
    let (start, end) = schema::mgs_registry_range();
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
        if *key != schema::mgs_registry_chunk(n as u32) {
            return Err(bad("a chunk is missing or misnamed"));
        }
        bytes.extend_from_slice(value);
    }
    decode_registry(REGISTRY_FILE, &bytes)
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}

/// Replaces the registry record in `tx` with `reg`.
pub(crate) fn store_registry(tx: &mut dyn Transaction, reg: &RegistryFile) -> Result<(), Error> {
    let bytes = records::encode_record(REGISTRY_FILE, REGISTRY_MAGIC, reg)?;
    let (start, end) = schema::mgs_registry_range();
    tx.clear_range(&start, &end)?;
    for (n, chunk) in bytes.chunks(REGISTRY_CHUNK_BYTES).enumerate() {
        // Bounded by MAX_RECORD_BYTES / REGISTRY_CHUNK_BYTES, far below u32::MAX.
        tx.set(&schema::mgs_registry_chunk(n as u32), chunk);
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
pub(crate) fn load_registry_file(dir: &Path) -> Result<Option<RegistryFile>, RecordError> {
    let path = dir.join(REGISTRY_FILE);
    match records::read_record_bytes(&path)? {
        None => Ok(None),
        Some(bytes) => decode_registry(&path.display().to_string(), &bytes).map(Some),
    }
}

/// Renames the registry file of `dir` once its content is in the KV, durably.
pub(crate) fn retire_registry_file(dir: &Path) -> Result<(), RecordError> {
    let from = dir.join(REGISTRY_FILE);
    std::fs::rename(&from, dir.join(IMPORTED_REGISTRY_FILE))
        .map_err(|e| RecordError::io(&from, e))?;
    records::sync_dir(dir).map_err(|e| RecordError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{MAX_ADDR_BYTES, MAX_OSTS};
    use crate::records::write_record;

    fn sample() -> RegistryFile {
        RegistryFile {
            cluster: "c".into(),
            epoch: 42,
            osts: vec![SavedOst {
                index: 3,
                addr: "h:1".into(),
                capacity: Capacity::default(),
                disk: Some(OstUuid::from_u128(0x5eed)),
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
                disk: Some(OstUuid::from_u128(u128::MAX - u128::from(index))),
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
        let (start, end) = schema::mgs_registry_range();
        kv.transact(|tx| tx.range(&start, &end, usize::MAX))
            .unwrap()
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
            let (start, end) = schema::mgs_registry_range();
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
                let (start, end) = schema::mgs_registry_range();
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
        let garbage = vec![(schema::mgs_registry_chunk(0), vec![1, 2, 3])];
        for bad in [flipped, wrong_magic, missing_chunk, truncated, garbage] {
            set(&bad);
            let err = load(&kv).unwrap_err();
            assert!(matches!(err, Error::Io(_)), "{err:?}");
            // A save never replaces a damaged registry either.
            assert!(save_registry(&kv, &sample()).is_err());
            assert_eq!(chunks(&kv), bad);
        }
    }

    /// [`sample`] as an MGS of an earlier version saved it (format 1, no disk bindings).
    fn sample_v1() -> Vec<u8> {
        let s = sample();
        let old = v1::RegistryFile {
            cluster: s.cluster,
            epoch: s.epoch,
            osts: s
                .osts
                .into_iter()
                .map(|o| v1::SavedOst {
                    index: o.index,
                    addr: o.addr,
                    capacity: o.capacity,
                })
                .collect(),
            mds: s.mds,
        };
        records::encode_record(REGISTRY_FILE, REGISTRY_MAGIC_V1, &old).unwrap()
    }

    /// `sample()` with every OST unbound: what a format-1 record reads as.
    fn sample_unbound() -> RegistryFile {
        let mut s = sample();
        for o in &mut s.osts {
            o.disk = None;
        }
        s
    }

    #[test]
    fn a_format_1_registry_reads_with_every_ost_unbound_and_saves_as_format_2() {
        let (_dir, kv) = kv();
        let bytes = sample_v1();
        kv.transact(|tx| {
            tx.set(&schema::mgs_registry_chunk(0), &bytes);
            Ok::<_, Error>(())
        })
        .unwrap();
        assert_eq!(load(&kv).unwrap(), Some(sample_unbound()));
        let mut next = sample();
        next.epoch = 43;
        assert_eq!(save_registry(&kv, &next).unwrap(), 43);
        assert_eq!(&chunks(&kv)[0].1[..8], &REGISTRY_MAGIC);
        assert_eq!(load(&kv).unwrap(), Some(next));
        // The registry file of earlier versions is format 1 too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REGISTRY_FILE), sample_v1()).unwrap();
        assert_eq!(
            load_registry_file(dir.path()).unwrap(),
            Some(sample_unbound())
        );
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
}

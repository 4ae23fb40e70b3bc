//! Which metadata store a server role uses: the embedded store in a directory, or
//! FoundationDB (cargo feature `fdb`) under a key prefix.
//!
//! Every role that keeps metadata (the MGS's registry, the MDS's namespace) is configured with
//! a [`StoreConfig`] and opens it with [`StoreConfig::open`]. The embedded store belongs to one
//! process at a time (fjall locks its directory); FoundationDB is shared, so any number of
//! MGS and MDS processes may open the same cluster file and prefix. MGS and MDS keys never
//! collide (see `mds/keys.rs`), so one prefix serves a whole rustre cluster.
//!
//! A build without the `fdb` feature still has [`StoreConfig::fdb`]; it returns an error that
//! says how to build with FoundationDB, so the command line can give a clear message.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Kv, KvError};

/// The start of every default FoundationDB key prefix: `rustre/<cluster name>/`.
pub const DEFAULT_FDB_PREFIX_ROOT: &str = "rustre/";

/// The key prefix a cluster uses in FoundationDB unless told otherwise:
/// `rustre/<cluster name>/`.
pub fn default_fdb_prefix(cluster: &str) -> Vec<u8> {
    format!("{DEFAULT_FDB_PREFIX_ROOT}{cluster}/").into_bytes()
}

/// Where a role keeps its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded on-disk store in this directory (created if absent). One process at a
    /// time: a second one is refused while the first has it open.
    Embedded(PathBuf),
    /// FoundationDB, reached through `cluster_file`, with every key stored under `prefix`.
    #[cfg(feature = "fdb")]
    Fdb {
        /// The FDB cluster file (e.g. `/etc/foundationdb/fdb.cluster`).
        cluster_file: PathBuf,
        /// Prepended to every key, so several clusters (or test runs) share one database.
        prefix: Vec<u8>,
    },
}

impl StoreConfig {
    /// FoundationDB through `cluster_file`, keys under `prefix`. In a build without the `fdb`
    /// feature this is an error saying so.
    pub fn fdb(cluster_file: &Path, prefix: &[u8]) -> Result<StoreConfig, KvError> {
        #[cfg(feature = "fdb")]
        {
            Ok(StoreConfig::Fdb {
                cluster_file: cluster_file.to_path_buf(),
                prefix: prefix.to_vec(),
            })
        }
        #[cfg(not(feature = "fdb"))]
        {
            let _ = prefix;
            Err(KvError::Storage(format!(
                "cannot use the FoundationDB cluster file {}: this rustre was built without \
                 FoundationDB support (build it with `cargo build --release --features fdb`)",
                cluster_file.display()
            )))
        }
    }

    /// True when several processes may open this store at once (FoundationDB).
    pub fn is_shared(&self) -> bool {
        match self {
            StoreConfig::Embedded(_) => false,
            #[cfg(feature = "fdb")]
            StoreConfig::Fdb { .. } => true,
        }
    }

    /// Opens the store. Blocking (opening the embedded store replays its journal; the first
    /// FoundationDB open starts the client network thread): call it from a blocking thread
    /// or before the runtime is busy.
    pub fn open(&self) -> Result<Kv, KvError> {
        match self {
            StoreConfig::Embedded(dir) => Kv::open_embedded(dir),
            #[cfg(feature = "fdb")]
            StoreConfig::Fdb {
                cluster_file,
                prefix,
            } => Kv::open_fdb(cluster_file, prefix),
        }
    }
}

impl fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Embedded(dir) => write!(f, "the embedded store in {}", dir.display()),
            #[cfg(feature = "fdb")]
            StoreConfig::Fdb {
                cluster_file,
                prefix,
            } => write!(
                f,
                "FoundationDB ({}) under the prefix {:?}",
                cluster_file.display(),
                String::from_utf8_lossy(prefix)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_names_the_cluster() {
        assert_eq!(default_fdb_prefix("testfs"), b"rustre/testfs/".to_vec());
    }

    #[test]
    fn embedded_opens_and_describes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreConfig::Embedded(dir.path().join("meta"));
        assert!(!store.is_shared());
        assert!(store.to_string().contains("embedded"), "{store}");
        let kv = store.open().unwrap();
        kv.transact(|tx| {
            tx.set(b"k", b"v");
            Ok::<_, KvError>(())
        })
        .unwrap();
        // The embedded store belongs to one opener at a time.
        let err = store.open().err().expect("second open refused");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(kv);
        let kv = store.open().unwrap();
        let v = kv.transact(|tx| tx.get(b"k")).unwrap();
        assert_eq!(v, Some(b"v".to_vec()));
    }

    #[cfg(not(feature = "fdb"))]
    #[test]
    fn fdb_without_the_feature_says_how_to_get_it() {
        let err = StoreConfig::fdb(Path::new("/etc/foundationdb/fdb.cluster"), b"p/").unwrap_err();
        assert!(err.to_string().contains("--features fdb"), "{err}");
    }

    #[cfg(feature = "fdb")]
    #[test]
    fn fdb_config_is_shared() {
        let store = StoreConfig::fdb(Path::new("/etc/foundationdb/fdb.cluster"), b"p/").unwrap();
        assert!(store.is_shared());
        assert!(store.to_string().contains("\"p/\""), "{store}");
    }
}

//! Authenticated peers: the cluster secret, and the challenge-response that proves knowledge
//! of it at the start of every connection.
//!
//! Every node and client of a cluster holds the same secret, in a file only its owner may
//! read ([`DEFAULT_SECRET_FILE`] unless told otherwise). No connection carries a request until
//! both ends proved they hold it, without sending it:
//!
//! ```text
//! client -> server  Hello      { cluster, client name, client_nonce }
//! server -> client  HelloReply Ok { server_nonce,
//!                               HMAC-SHA256(secret, "rustre-server" || cluster || client_nonce || server_nonce) }
//! client -> server  Auth       { HMAC-SHA256(secret, "rustre-client" || cluster || server_nonce || client_nonce) }
//! ```
//!
//! Nonces are 32 random bytes from the OS, fresh for every connection. The server proves
//! itself first, so a client never sends a request (or its own proof) to a server that does not
//! hold the secret; the server reads no request frame before the client's proof checked out.
//! The two proofs differ in their label and nonce order, so one side's proof can never be
//! replayed as the other's. Proofs are compared in constant time.
//!
//! This authenticates the *start* of a connection; frames are neither encrypted nor signed
//! afterwards. Run the cluster on a network you trust (or under IPsec/WireGuard) when someone
//! could inject into its TCP streams.
//!
//! The secret file holds at least [`MIN_SECRET_BYTES`] bytes (surrounding whitespace ignored);
//! [`ClusterKey::create`] writes [`GENERATED_SECRET_BYTES`] random bytes as hex, with mode 0600.
//! A file that group or others may access is refused, as ssh refuses such private keys.
//!
//! The admin secret (`--admin-secret-file`, same file format) is a second secret that only
//! administrators' machines and the MDS hold. A client holding it adds to its `Auth` frame
//! `HMAC-SHA256(admin secret, "rustre-admin" || cluster || server_nonce || client_nonce)`;
//! a server holding it marks that connection as the administrator's
//! ([`crate::rpc::server::Caller::admin`]). docs/operations.md, "Root squash and the admin
//! credential", says what it does and does not protect.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::Error;

/// Where the cluster secret lives unless `--secret-file`, `RUSTRE_SECRET_FILE` or the mount
/// option `secret_file=` say otherwise.
pub const DEFAULT_SECRET_FILE: &str = "/etc/rustre/cluster.secret";
/// The environment variable naming the secret file.
pub const SECRET_FILE_ENV: &str = "RUSTRE_SECRET_FILE";
/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest secret file accepted (a secret is short; anything bigger is the wrong file).
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;
/// Random bytes in a generated secret (written as twice as many hex digits).
pub const GENERATED_SECRET_BYTES: usize = 32;
/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes of a handshake proof (an HMAC-SHA256).
pub const PROOF_BYTES: usize = 32;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_BYTES];
/// A handshake proof.
pub type Proof = [u8; PROOF_BYTES];

type HmacSha256 = Hmac<Sha256>;

/// Which end of a connection a proof comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The accepting end (MGS, MDS, OSS).
    Server,
    /// The connecting end (clients, and servers calling other servers).
    Client,
}

/// The cluster secret, and possibly the admin secret beside it ([`ClusterKey::with_admin`]).
/// Cheap to clone; never printed (`Debug` shows no byte of either).
#[derive(Clone)]
pub struct ClusterKey {
    secret: Arc<[u8]>,
    /// The admin secret: a client proves it on connect to act as the administrator; a
    /// server holding it checks such proofs ([`ClusterKey::verify_admin`]).
    admin: Option<Arc<[u8]>>,
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// A secret file that cannot be used: which file, and what is wrong with it (never its
/// content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster secret {}: {problem}", path.display())]
pub struct SecretFileError {
    pub path: PathBuf,
    pub problem: String,
    /// The file does not exist (so it may be created).
    pub missing: bool,
}

impl SecretFileError {
    fn new(path: &Path, problem: String) -> Self {
        SecretFileError {
            path: path.to_path_buf(),
            problem,
            missing: false,
        }
    }
}

/// The secret file to use: the one given, else `RUSTRE_SECRET_FILE`, else
/// [`DEFAULT_SECRET_FILE`].
pub fn secret_file_or_default(given: Option<&Path>) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(SECRET_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => PathBuf::from(DEFAULT_SECRET_FILE),
        },
    }
}

/// A fresh random nonce.
pub fn nonce() -> Result<Nonce, Error> {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::fill(&mut n).map_err(|e| Error::Io(format!("random source: {e}")))?;
    Ok(n)
}

impl ClusterKey {
    /// A key from the secret's bytes (at least [`MIN_SECRET_BYTES`]).
    pub fn from_secret(secret: &[u8]) -> Result<ClusterKey, Error> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::Invalid(format!(
                "a cluster secret needs at least {MIN_SECRET_BYTES} bytes, not {}",
                secret.len()
            )));
        }
        Ok(ClusterKey {
            secret: secret.into(),
            admin: None,
        })
    }

    /// A new random key (as [`ClusterKey::create`] writes, but only in memory).
    pub fn generate() -> Result<ClusterKey, Error> {
        let mut raw = [0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut raw).map_err(|e| Error::Io(format!("random source: {e}")))?;
        ClusterKey::from_secret(hex(&raw).as_bytes())
    }

    /// Reads the secret from `path`. Refused: a missing, unreadable, empty or oversized file,
    /// one that is not a regular file, a secret shorter than [`MIN_SECRET_BYTES`], and a file
    /// that group or others may access (mode bits 0077).
    pub fn load(path: &Path) -> Result<ClusterKey, SecretFileError> {
        use std::io::Read;
        let fail = |problem: String| SecretFileError::new(path, problem);
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretFileError {
                    missing: true,
                    ..fail(format!(
                        "no such file; every node and client of a cluster needs a copy of its \
                         secret (create one with `rustre gen-secret {}`, copy it with mode \
                         0600, or name another with --secret-file)",
                        path.display()
                    ))
                });
            }
            Err(e) => return Err(fail(format!("cannot open: {e}"))),
        };
        // The checks look at the file that was opened, not at whatever the path names now.
        let meta = file.metadata().map_err(|e| fail(format!("stat: {e}")))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "mode {mode:04o} lets group or others access the secret; run `chmod 600 {}`",
                path.display()
            )));
        }
        if meta.len() > MAX_SECRET_FILE_BYTES {
            return Err(fail(format!(
                "{} bytes is too large for a secret file (at most {MAX_SECRET_FILE_BYTES})",
                meta.len()
            )));
        }
        let mut content = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_end(&mut content)
            .map_err(|e| fail(format!("read: {e}")))?;
        let secret = content.trim_ascii();
        if secret.is_empty() {
            return Err(fail(format!(
                "empty; write a secret into it (`rustre gen-secret {}` makes one)",
                path.display()
            )));
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(fail(format!(
                "holds {} bytes of secret, at least {MIN_SECRET_BYTES} are needed \
                 (`rustre gen-secret` writes {} hex digits)",
                secret.len(),
                2 * GENERATED_SECRET_BYTES
            )));
        }
        Ok(ClusterKey {
            secret: secret.into(),
            admin: None,
        })
    }

    /// Creates `path` holding a new random secret (mode 0600, fsynced, as is its directory,
    /// which is created if missing). Refuses to replace an existing file. The file appears
    /// whole or not at all: it is written under a temporary name and linked into place.
    pub fn create(path: &Path) -> Result<ClusterKey, SecretFileError> {
        let fail = |problem: String| SecretFileError::new(path, problem);
        let key = ClusterKey::generate().map_err(|e| fail(e.to_string()))?;
        match write_new_file(path, &key.secret) {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(fail(
                "already exists; it is not replaced (remove it first to make a new secret, \
                 and copy the new one to every node and client)"
                    .into(),
            )),
            Err(e) => Err(fail(format!("cannot create: {e}"))),
        }
    }

    /// Loads `path`, creating it with a new secret if it does not exist. Returns the key and
    /// whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(ClusterKey, bool), SecretFileError> {
        match ClusterKey::load(path) {
            Err(e) if e.missing => match write_new_file_with_new_key(path) {
                Ok(key) => Ok((key, true)),
                // Someone else created it meanwhile: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    ClusterKey::load(path).map(|k| (k, false))
                }
                Err(e) => Err(SecretFileError::new(path, format!("cannot create: {e}"))),
            },
            other => other.map(|k| (k, false)),
        }
    }

    /// This key with `admin`'s secret as the admin secret (a file of the same format as
    /// the cluster secret's, loaded with [`ClusterKey::load`]).
    pub fn with_admin(mut self, admin: &ClusterKey) -> ClusterKey {
        self.admin = Some(admin.secret.clone());
        self
    }

    /// True when this key holds an admin secret.
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// The client's proof of the admin secret for a handshake, if it holds one. It covers
    /// both nonces under its own label, so it proves nothing about the cluster secret and
    /// cannot be replayed on another connection.
    pub fn prove_admin(
        &self,
        cluster: &str,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
    ) -> Option<Proof> {
        let admin = self.admin.as_ref()?;
        Some(
            admin_mac(admin, cluster, client_nonce, server_nonce)
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// Checks a client's admin proof, in constant time; false when this key holds no admin
    /// secret.
    pub fn verify_admin(
        &self,
        cluster: &str,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
        proof: &[u8],
    ) -> bool {
        self.admin.as_ref().is_some_and(|admin| {
            admin_mac(admin, cluster, client_nonce, server_nonce)
                .verify_slice(proof)
                .is_ok()
        })
    }

    /// This side's proof for a handshake.
    pub fn prove(
        &self,
        side: Side,
        cluster: &str,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
    ) -> Proof {
        self.mac(side, cluster, client_nonce, server_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks the other side's proof, in constant time.
    pub fn verify(
        &self,
        side: Side,
        cluster: &str,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
        proof: &[u8],
    ) -> bool {
        self.mac(side, cluster, client_nonce, server_nonce)
            .verify_slice(proof)
            .is_ok()
    }

    fn mac(
        &self,
        side: Side,
        cluster: &str,
        client_nonce: &Nonce,
        server_nonce: &Nonce,
    ) -> HmacSha256 {
        let (label, first, second): (&[u8], _, _) = match side {
            Side::Server => (b"rustre-server", client_nonce, server_nonce),
            Side::Client => (b"rustre-client", server_nonce, client_nonce),
        };
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(label);
        mac.update(cluster.as_bytes());
        mac.update(first);
        mac.update(second);
        mac
    }
}

/// HMAC-SHA256(admin secret, "rustre-admin" || cluster || server_nonce || client_nonce).
fn admin_mac(
    admin: &[u8],
    cluster: &str,
    client_nonce: &Nonce,
    server_nonce: &Nonce,
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(admin).expect("HMAC takes any key");
    mac.update(b"rustre-admin");
    mac.update(cluster.as_bytes());
    mac.update(server_nonce);
    mac.update(client_nonce);
    mac
}

fn write_new_file_with_new_key(path: &Path) -> std::io::Result<ClusterKey> {
    let key = ClusterKey::generate().map_err(std::io::Error::other)?;
    write_new_file(path, &key.secret)?;
    Ok(key)
}

/// Writes `secret` and a newline to a new file `path` with mode 0600: into a temporary file
/// (O_EXCL), fsynced, then hard-linked to `path` (which fails if `path` exists), so no reader
/// ever sees a partial secret.
fn write_new_file(path: &Path, secret: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        hex(&nonce().map_err(std::io::Error::other)?[..8])
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(secret)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    std::fs::File::open(&dir)?.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nonces() -> (Nonce, Nonce) {
        (nonce().unwrap(), nonce().unwrap())
    }

    #[test]
    fn proofs_verify_only_with_the_same_secret_side_cluster_and_nonces() {
        let k = ClusterKey::generate().unwrap();
        let other = ClusterKey::generate().unwrap();
        let (c, s) = nonces();
        let p = k.prove(Side::Server, "rustre", &c, &s);
        assert!(k.verify(Side::Server, "rustre", &c, &s, &p));
        assert!(!other.verify(Side::Server, "rustre", &c, &s, &p));
        assert!(!k.verify(Side::Client, "rustre", &c, &s, &p), "reflected");
        assert!(!k.verify(Side::Server, "other", &c, &s, &p));
        assert!(!k.verify(Side::Server, "rustre", &s, &c, &p));
        assert!(!k.verify(Side::Server, "rustre", &c, &s, &p[..31]));
        assert_ne!(c, s);
    }

    #[test]
    fn create_then_load_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cluster.secret");
        let missing = ClusterKey::load(&path).unwrap_err();
        assert!(missing.missing && missing.to_string().contains("no such file"));
        let k = ClusterKey::create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len() as usize, 2 * GENERATED_SECRET_BYTES + 1);
        let loaded = ClusterKey::load(&path).unwrap();
        let (c, s) = nonces();
        let p = k.prove(Side::Client, "x", &c, &s);
        assert!(loaded.verify(Side::Client, "x", &c, &s, &p));
        // Never replaced; no temporary file left behind.
        assert!(ClusterKey::create(&path)
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
        let (again, created) = ClusterKey::load_or_create(&path).unwrap();
        assert!(!created && again.verify(Side::Client, "x", &c, &s, &p));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ClusterKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("0644"), "{e}");
        assert!(!e.contains(std::str::from_utf8(&k.secret).unwrap()));

        let short = dir.path().join("short");
        std::fs::write(&short, "tooshort\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = ClusterKey::load(&short).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&short, "\n").unwrap();
        assert!(ClusterKey::load(&short)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = ClusterKey::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");

        let fresh = dir.path().join("fresh.secret");
        let (_, created) = ClusterKey::load_or_create(&fresh).unwrap();
        assert!(created);
    }

    #[test]
    fn admin_proofs_need_the_admin_secret() {
        let cluster = ClusterKey::generate().unwrap();
        let admin = ClusterKey::generate().unwrap();
        let (c, s) = nonces();
        assert!(cluster.prove_admin("x", &c, &s).is_none());
        let client = cluster.clone().with_admin(&admin);
        let server = cluster.clone().with_admin(&admin);
        let p = client.prove_admin("x", &c, &s).unwrap();
        assert!(server.verify_admin("x", &c, &s, &p));
        assert!(
            !cluster.verify_admin("x", &c, &s, &p),
            "a server without it"
        );
        assert!(!server.verify_admin("y", &c, &s, &p));
        assert!(!server.verify_admin("x", &s, &c, &p));
        // The cluster proof is not an admin proof, nor the other way round.
        let cluster_proof = client.prove(Side::Client, "x", &c, &s);
        assert!(!server.verify_admin("x", &c, &s, &cluster_proof));
        assert!(!server.verify(Side::Client, "x", &c, &s, &p));
        let other = cluster.with_admin(&ClusterKey::generate().unwrap());
        assert!(!other.verify_admin("x", &c, &s, &p));
        assert!(format!("{client:?}") == "ClusterKey(..)");
    }

    #[test]
    fn debug_shows_no_secret() {
        let k = ClusterKey::from_secret(&[b'z'; 40]).unwrap();
        assert_eq!(format!("{k:?}"), "ClusterKey(..)");
        assert!(ClusterKey::from_secret(b"short").is_err());
    }
}

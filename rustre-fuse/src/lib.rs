//! # rustre-fuse — the rustre client
//!
//! ## Layout
//! - [`client`]: the client library. It knows only the MGS address, follows the cluster map,
//!   makes metadata calls to the MDS and striped, parallel reads and writes straight to the
//!   OSTs. It never mentions FUSE types, so the CLI, tests and benchmarks use it directly.
//! - [`fuse`]: the thin `fuser::Filesystem` adapter over the client library.
//! - [`mount`]: mount options, the `mount.fuse.rustre` helper convention, daemonizing.

pub mod client;
pub mod fuse;
pub mod mount;

pub use client::Client;

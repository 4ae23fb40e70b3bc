//! # rustre-fuse — the rustre client
//!
//! ## Layout
//! - [`client`]: the client library. It knows only the MGS address, follows the cluster map,
//!   makes metadata calls to the MDS and striped, parallel reads and writes straight to the
//!   OSTs. It never mentions FUSE types, so the CLI, tests and benchmarks use it directly.

pub mod client;

pub use client::Client;

//! # rustre-proto — the wire between every rustre process
//!
//! The bottom floor of rustre: it knows nothing of FUSE, storage or key-value stores.
//!
//! ## Layout
//! - [`auth`]: the cluster secret and the challenge-response every connection opens with.
//! - [`frame`]: the fixed frame header, its hard limits, reading and writing frames.
//! - [`codec`]: the one place bodies are serialized (serde + postcard).
//! - [`error`]: the typed error that crosses the wire and its errno.
//! - [`msg`]: one request enum per service (MGS, MDS, OSS) and the shared types.
//! - [`cluster`]: the cluster map followed from the MGS and pooled connections to servers.
//! - [`rpc`]: the connection handshake, an async multiplexing client and a server loop.
//! - [`net`]: the transport under it (TCP, or a simulated network), and the one conversion
//!   of its I/O errors into the wire error ([`net::transport`]).
//! - [`blocking`]: where blocking work (disk, the metadata store) runs.
//! - [`host`]: the wall clock and disk space (or simulated ones).
//! - [`sync`]: the mutex-poison policy every process follows.

pub mod auth;
pub mod blocking;
pub mod checksum;
pub mod cluster;
pub mod codec;
pub mod error;
pub mod frame;
pub mod host;
pub mod msg;
pub mod net;
pub mod rpc;
pub mod sync;

pub use error::{Error, Result};

/// Default TCP port of the MGS.
pub const DEFAULT_MGS_PORT: u16 = 9400;

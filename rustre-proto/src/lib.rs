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
//! - [`copies`]: one call to every copy of a stripe at once, with a grace period.
//! - [`rpc`]: the connection handshake, an async multiplexing client and a server loop.
//! - [`net`]: the transport under it (TCP, or a simulated network), and the one conversion
//!   of its I/O errors into the wire error ([`net::transport`]).
//! - [`metrics`]: Prometheus metrics shared by every process: client-side RPC counts, the
//!   `/metrics` HTTP endpoint and its client.
//! - [`blocking`]: where blocking work (disk, the metadata store) runs.
//! - [`host`]: the wall clock and disk space (or simulated ones).
//! - [`sync`]: the mutex-poison policy every process follows.
//! - `injected_bug` (feature `sim-bug`, the simulation's only): deliberate bugs its suite
//!   must catch.

pub mod auth;
pub mod blocking;
pub mod checksum;
pub mod cluster;
pub mod codec;
pub mod copies;
pub mod error;
pub mod frame;
pub mod host;
#[cfg(feature = "sim-bug")]
pub mod injected_bug;
pub mod metrics;
pub mod msg;
pub mod net;
pub mod raw_names;
pub mod rpc;
pub mod sync;

pub use error::{Error, Result};

/// Default TCP port of the MGS.
pub const DEFAULT_MGS_PORT: u16 = 9400;
/// Where clients look for the MGS unless told otherwise: this host, [`DEFAULT_MGS_PORT`].
pub const DEFAULT_MGS_ADDR: &str = "127.0.0.1:9400";
/// Where an MGS listens unless told otherwise: every interface, [`DEFAULT_MGS_PORT`].
pub const DEFAULT_MGS_LISTEN: &str = "0.0.0.0:9400";
/// The name of a cluster that is not given one.
pub const DEFAULT_CLUSTER_NAME: &str = "rustre";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_addresses_use_the_default_port() {
        for addr in [DEFAULT_MGS_ADDR, DEFAULT_MGS_LISTEN] {
            let port = addr.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            assert_eq!(port, Some(Ok(DEFAULT_MGS_PORT)), "{addr}");
        }
    }
}

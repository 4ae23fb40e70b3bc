//! RPC over frames: the handshake every connection opens with, a multiplexing client
//! ([`client::Connection`], pooled by [`client::Peer`]) and a server loop ([`server::serve`]).

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most calls in flight on one connection (client side waits, server side queues).
pub const MAX_INFLIGHT_PER_CONN: usize = 256;
/// How long a call may wait for its answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting and the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest cluster or client name in a handshake.
pub const MAX_NAME_BYTES: usize = 256;

/// The body of the `Hello` frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The cluster the client believes it talks to; a mismatch is refused.
    pub cluster: String,
    /// Free-form name of the connecting process, for logs.
    pub client: String,
}

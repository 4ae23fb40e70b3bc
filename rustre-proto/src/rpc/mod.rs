//! RPC over frames: the handshake every connection opens with, a multiplexing client
//! ([`client::Connection`], pooled by [`client::Peer`]; its calls write their own frames
//! through an [`outbox`]) and a server loop ([`server::serve`]).
//!
//! The handshake (see [`crate::auth`] for the proofs): the client sends `Hello` ([`Hello`]);
//! the server answers `HelloReply` with `Result<`[`ServerProof`]`, Error>` (an error for a
//! wrong cluster name or service, and the connection closes); the client checks the server's
//! proof and sends `Auth` ([`ClientProof`]); the server checks it before it reads any request.
//! Handshake frames carry no payload and a body of at most [`MAX_HANDSHAKE_BODY_BYTES`], and
//! the whole handshake is bounded in time on both sides.

pub mod client;
mod outbox;
pub mod server;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncRead;

use crate::auth::{Nonce, Proof};
use crate::error::Error;
use crate::frame::{read_header, read_rest, Frame, FrameKind};

/// Most calls in flight on one connection (client side waits, server side queues).
pub const MAX_INFLIGHT_PER_CONN: usize = 256;
/// How long a call may wait for its answer.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting and the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest cluster or client name in a handshake.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest body of a handshake frame: a peer that has not proved itself yet gets no more.
pub const MAX_HANDSHAKE_BODY_BYTES: u32 = 4096;
/// Size of the buffer a server writes its replies through (and both sides their handshake
/// frames): replies queued together leave in one write, flushed once the queue is empty.
/// A client's calls go through its [`outbox`] instead.
pub const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// The body of the `Hello` frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The cluster the client believes it talks to; a mismatch is refused.
    pub cluster: String,
    /// Free-form name of the connecting process, for logs.
    pub client: String,
    /// The client's challenge to the server.
    pub nonce: Nonce,
}

/// What a `HelloReply` carries when the server accepts the `Hello`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerProof {
    /// The server's challenge to the client.
    pub nonce: Nonce,
    /// The server's proof that it holds the cluster secret.
    pub proof: Proof,
}

/// The body of the `Auth` frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientProof {
    /// The client's proof that it holds the cluster secret.
    pub proof: Proof,
    /// The client's proof that it holds the admin secret, if it does
    /// ([`crate::auth::ClusterKey::prove_admin`]).
    pub admin: Option<Proof>,
}

/// Reads one handshake frame of kind `want`: no payload, a small body. `Ok(None)` when the
/// peer closed the connection first. `r` is the connection's [`crate::frame::buffered_reader`],
/// kept for the frames after the handshake (it may hold some of them already).
pub(crate) async fn read_handshake_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    want: FrameKind,
) -> Result<Option<Frame>, Error> {
    let Some(header) = read_header(r).await? else {
        return Ok(None);
    };
    if header.kind != want {
        return Err(Error::Protocol(format!(
            "expected a {want:?} frame in the handshake, got {:?}",
            header.kind
        )));
    }
    if header.body_len > MAX_HANDSHAKE_BODY_BYTES || header.payload_len != 0 {
        return Err(Error::Protocol(format!(
            "{want:?} frame of {} + {} bytes is too large for a handshake",
            header.body_len, header.payload_len
        )));
    }
    read_rest(r, header).await.map(Some)
}

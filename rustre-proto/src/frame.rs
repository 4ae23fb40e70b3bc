//! Frames: the unit that crosses a rustre TCP connection.
//!
//! ```text
//! offset size field
//!      0    4 magic         b"RSTR"
//!      4    2 version       PROTOCOL_VERSION (big-endian, as every integer here)
//!      6    1 kind          FrameKind
//!      7    1 service       Service the connection talks to
//!      8    4 flags         reserved for options, 0 today
//!     12    8 request id    matches a response to its request
//!     20    4 body length   serde (postcard) body, at most MAX_BODY_BYTES
//!     24    4 payload len   raw data after the body, at most MAX_PAYLOAD_BYTES
//!     28    4 reserved      must be 0
//! ```
//!
//! The header is checked in full (magic, version, kind, both lengths) before a single byte of
//! body or payload is allocated, so a peer announcing a 4 GiB body costs nothing but a log line.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"RSTR";
/// Bumped on any incompatible change of frames or messages (2: authenticated handshake).
pub const PROTOCOL_VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 32;
/// Largest serde body accepted (directory pages, layouts and xattrs fit well below it).
pub const MAX_BODY_BYTES: u32 = 4 << 20;
/// Largest raw payload accepted (one I/O request; stripes are at most this size).
pub const MAX_PAYLOAD_BYTES: u32 = 16 << 20;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// First frame of a connection, client to server.
    Hello = 1,
    /// The server's answer to `Hello` (with its proof of the cluster secret).
    HelloReply = 2,
    /// A call.
    Request = 3,
    /// The answer to the call with the same request id.
    Response = 4,
    /// The client's proof of the cluster secret, after `HelloReply` (see [`crate::auth`]).
    Auth = 5,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FrameKind::Hello,
            2 => FrameKind::HelloReply,
            3 => FrameKind::Request,
            4 => FrameKind::Response,
            5 => FrameKind::Auth,
            _ => return None,
        })
    }
}

/// The service a connection talks to; checked in the handshake and on every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Service {
    Mgs = 1,
    Mds = 2,
    Oss = 3,
}

impl Service {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Service::Mgs,
            2 => Service::Mds,
            3 => Service::Oss,
            _ => return None,
        })
    }
}

/// A decoded, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: FrameKind,
    pub service: Service,
    pub flags: u32,
    pub request_id: u64,
    pub body_len: u32,
    pub payload_len: u32,
}

impl Header {
    /// Encodes the header into its fixed 32 bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        b[6] = self.kind as u8;
        b[7] = self.service as u8;
        b[8..12].copy_from_slice(&self.flags.to_be_bytes());
        b[12..20].copy_from_slice(&self.request_id.to_be_bytes());
        b[20..24].copy_from_slice(&self.body_len.to_be_bytes());
        b[24..28].copy_from_slice(&self.payload_len.to_be_bytes());
        b
    }

    /// Decodes and validates a header; any violation is a protocol error.
    pub fn decode(b: &[u8; HEADER_BYTES]) -> Result<Header, Error> {
        if b[0..4] != MAGIC {
            return Err(Error::Protocol("bad magic".into()));
        }
        let version = u16::from_be_bytes([b[4], b[5]]);
        if version != PROTOCOL_VERSION {
            return Err(Error::Protocol(format!(
                "protocol version {version}, expected {PROTOCOL_VERSION}"
            )));
        }
        let kind = FrameKind::from_u8(b[6])
            .ok_or_else(|| Error::Protocol(format!("unknown frame kind {}", b[6])))?;
        let service = Service::from_u8(b[7])
            .ok_or_else(|| Error::Protocol(format!("unknown service {}", b[7])))?;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let body_len = word(20);
        let payload_len = word(24);
        if body_len > MAX_BODY_BYTES {
            return Err(Error::Protocol(format!(
                "body of {body_len} bytes exceeds {MAX_BODY_BYTES}"
            )));
        }
        if payload_len > MAX_PAYLOAD_BYTES {
            return Err(Error::Protocol(format!(
                "payload of {payload_len} bytes exceeds {MAX_PAYLOAD_BYTES}"
            )));
        }
        if word(28) != 0 {
            return Err(Error::Protocol("reserved header bytes not zero".into()));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[12..20]);
        Ok(Header {
            kind,
            service,
            flags: word(8),
            request_id: u64::from_be_bytes(id),
            body_len,
            payload_len,
        })
    }
}

/// A whole frame as read from a connection.
#[derive(Debug)]
pub struct Frame {
    pub header: Header,
    pub body: Bytes,
    pub payload: Bytes,
}

/// Once a frame has begun, the rest of it must arrive within this time, so a peer that
/// stops half-way cannot hold a connection (and its buffers) forever.
pub const FRAME_REST_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly between frames;
/// a close inside a frame is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, Error> {
    match read_header(r).await? {
        None => Ok(None),
        Some(header) => read_rest(r, header).await.map(Some),
    }
}

/// Reads and validates one frame header (`None` on a clean close between frames).
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Header>, Error> {
    let mut hb = [0u8; HEADER_BYTES];
    // Read the first byte separately so a clean close between frames is not an error.
    match r.read(&mut hb[..1]).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    tokio::time::timeout(FRAME_REST_TIMEOUT, r.read_exact(&mut hb[1..]))
        .await
        .map_err(|_| stalled())?
        .map_err(truncated)?;
    Header::decode(&hb).map(Some)
}

/// Reads the body and payload announced by `header` (lengths already bounded by decode).
pub async fn read_rest<R: AsyncRead + Unpin>(r: &mut R, header: Header) -> Result<Frame, Error> {
    let read = async {
        let body = read_exact_bytes(r, header.body_len).await?;
        let payload = read_exact_bytes(r, header.payload_len).await?;
        Ok::<_, Error>(Frame {
            header,
            body,
            payload,
        })
    };
    tokio::time::timeout(FRAME_REST_TIMEOUT, read)
        .await
        .map_err(|_| stalled())?
}

fn stalled() -> Error {
    Error::Protocol(format!(
        "peer stalled inside a frame for {}s",
        FRAME_REST_TIMEOUT.as_secs()
    ))
}

async fn read_exact_bytes<R: AsyncRead + Unpin>(r: &mut R, len: u32) -> Result<Bytes, Error> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // `len` was bounded by Header::decode before we get here.
    let mut buf = BytesMut::zeroed(len as usize);
    r.read_exact(&mut buf).await.map_err(truncated)?;
    Ok(buf.freeze())
}

fn truncated(e: std::io::Error) -> Error {
    Error::Unavailable(format!("connection closed inside a frame: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            kind: FrameKind::Request,
            service: Service::Mds,
            flags: 0,
            request_id: 42,
            body_len: 10,
            payload_len: 3,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = header();
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn oversized_lengths_rejected() {
        let mut b = header().encode();
        b[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Header::decode(&b).is_err());
        let mut b = header().encode();
        b[24..28].copy_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_be_bytes());
        assert!(Header::decode(&b).is_err());
    }

    #[test]
    fn bad_magic_version_kind_rejected() {
        let mut b = header().encode();
        b[0] = b'X';
        assert!(Header::decode(&b).is_err());
        let mut b = header().encode();
        b[5] = 99;
        assert!(Header::decode(&b).is_err());
        let mut b = header().encode();
        b[6] = 77;
        assert!(Header::decode(&b).is_err());
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error_clean_close_is_none() {
        let h = header().encode();
        let mut short: &[u8] = &h[..10];
        assert!(read_frame(&mut short).await.is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).await.unwrap().is_none());
        let mut whole = h.to_vec();
        whole.extend_from_slice(&[1; 13]);
        let mut r: &[u8] = &whole;
        let f = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!(f.body.len(), 10);
        assert_eq!(f.payload.len(), 3);
    }
}

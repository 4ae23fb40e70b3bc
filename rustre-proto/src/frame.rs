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
//!
//! A connection reads its frames through a [`buffered_reader`]: one read of the socket brings
//! in a small frame whole (and whatever frames follow it), where a bare stream would take
//! about four (the first header byte, the rest of the header, the body, the payload). A large
//! payload does not pass through the buffer: once the bytes already buffered are taken, the
//! rest is read straight into the payload's own allocation.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::error::Error;
use crate::net;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"RSTR";
/// Bumped on any incompatible change of frames or messages (2: authenticated handshake;
/// 3: write verifiers, layout versions enforced at the OSTs, OST disk identity, fsck ops;
/// 4: written stripes in layouts and size reports, reads of objects that must exist or of
/// one moment, `MdsOp::Accessed`, POSIX ACLs in attributes, the umask in creates,
/// `OssOp::Seek` for SEEK_DATA/SEEK_HOLE, object allocations in write answers, size reports
/// and layouts for `st_blocks`; 5: file locks through the MDS (`SetLock`, `GetLock`,
/// `UnlockOwner`), O_APPEND ranges and leases (`ReserveAppend`, `ReturnAppendLease`); 6: the
/// admin proof in the handshake, project quotas (`Attr::project`, `QuotaSet`, `QuotaGet`,
/// `QuotaList`, `QuotaReserve`, EDQUOT), `Error::Denied`; 7: online migration
/// (`MigrateBegin`, `MigrateStep`), the close's one call (`ReportAndSetAttr`), a create's
/// answer with its directory (`Created`); 8: unlink, rmdir and rename answer their
/// directories and the inodes they touched (`NamesChanged`); 9: a create's answer says
/// whether it made the file (`Created::new`), atime updates in batches (`AccessedMany`);
/// 10: object deletes in batches (`OssOp::DeleteMany`); 11: mkdir, mknod and symlink
/// answered with their directory too (`Created`); 12: data on the MDS (`Attr::inline`,
/// `CloseInline`, `ReadInline`, `Spill`, `InlineData`, the session's `inline_max`); 13:
/// fsck of the bytes kept on the MDS (`FsckOp::KeptBytes`, `FsckFix::MendKeptBytes`), a
/// directory opened in one call (`OpenDir`, `DirOpened`); 14: directory capabilities
/// (`Mkdir::want_cap`, `Created::capped`, `Change::Recall`, `ReturnDirCaps`); 15: changes
/// answered ahead sent together (`Batch`).
pub const PROTOCOL_VERSION: u16 = 15;
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

/// Size of the buffer a connection reads its frames through ([`buffered_reader`]). A metadata
/// call or answer is tens to hundreds of bytes, so one read of this size brings in hundreds
/// of them at once, and a whole flush of the peer's write buffer
/// ([`crate::rpc::WRITE_BUFFER_BYTES`], the same size). Not larger: a read of a payload of at
/// least this size skips the buffer and goes straight into the payload, so a larger buffer
/// would only copy more file data twice; and every open connection holds one (256 MiB at the
/// server's [`crate::rpc::server::MAX_CONNECTIONS`]).
pub const READ_BUFFER_BYTES: usize = 64 << 10;

/// Wraps a connection's reading half in the buffer its frames are read through; use the same
/// one for the connection's whole life (from the handshake on), as it may hold bytes read
/// ahead. Small frames come out of the buffer; a read asking for at least
/// [`READ_BUFFER_BYTES`] while the buffer is empty (most of a large payload, see
/// [`read_rest`]) goes to the stream directly, into the caller's memory (what tokio's
/// `BufReader` does; the test `a_large_payload_skips_the_buffer` holds it to that).
pub fn buffered_reader<R: AsyncRead>(r: R) -> BufReader<R> {
    BufReader::with_capacity(READ_BUFFER_BYTES, r)
}

/// Once a frame has begun, the rest of it must arrive within this time, so a peer that
/// stops half-way cannot hold a connection (and its buffers) forever.
pub const FRAME_REST_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly between frames;
/// a close inside a frame is an error. Read from a [`buffered_reader`] (any other stream
/// works, at a few reads per frame).
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
        Err(e) => return Err(net::transport(e)),
    }
    tokio::time::timeout(FRAME_REST_TIMEOUT, r.read_exact(&mut hb[1..]))
        .await
        .map_err(|_| stalled())?
        .map_err(truncated)?;
    Header::decode(&hb).map(Some)
}

/// Reads the body and payload announced by `header` (lengths already bounded by decode),
/// each into an allocation of exactly its length. From a [`buffered_reader`], a payload first
/// takes what the buffer holds, then is read from the stream straight into its allocation
/// while at least [`READ_BUFFER_BYTES`] of it remain; its last part comes through the buffer,
/// in the same read as whatever follows it.
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

    /// Reads one frame from `bytes`, bare or through a [`buffered_reader`].
    async fn read_one(bytes: &[u8], buffered: bool) -> Result<Option<Frame>, Error> {
        if buffered {
            read_frame(&mut buffered_reader(bytes)).await
        } else {
            let mut r = bytes;
            read_frame(&mut r).await
        }
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error_clean_close_is_none() {
        let mut whole = header().encode().to_vec();
        whole.extend_from_slice(&[1; 13]);
        for buffered in [false, true] {
            // Cut inside the header, right after it, inside the body and inside the payload.
            for cut in [1, 10, HEADER_BYTES, HEADER_BYTES + 5, whole.len() - 1] {
                let r = read_one(&whole[..cut], buffered).await;
                assert!(r.is_err(), "cut at {cut} (buffered: {buffered}): {r:?}");
            }
            assert!(read_one(&[], buffered).await.unwrap().is_none());
            let f = read_one(&whole, buffered).await.unwrap().unwrap();
            assert_eq!(f.body.len(), 10);
            assert_eq!(f.payload.len(), 3);
        }
    }

    #[tokio::test]
    async fn oversized_lengths_are_refused_before_reading_on() {
        for buffered in [false, true] {
            let mut b = header().encode();
            b[24..28].copy_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_be_bytes());
            // A protocol error (the header), not a truncated frame (what reading on would give).
            let r = read_one(&b, buffered).await;
            assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
        }
    }

    /// An in-memory stream over `data` that returns at most `most` bytes per read (as a
    /// socket returns what its receive queue holds) and counts the reads that returned data.
    struct CountingStream<'a> {
        data: &'a [u8],
        most: usize,
        /// Reads that returned data.
        reads: usize,
        /// Bytes returned by reads larger than [`READ_BUFFER_BYTES`]: they cannot have gone
        /// into the reader's buffer, so they went straight into a payload.
        direct_bytes: usize,
    }

    impl<'a> CountingStream<'a> {
        fn new(data: &'a [u8], most: usize) -> Self {
            CountingStream {
                data,
                most,
                reads: 0,
                direct_bytes: 0,
            }
        }
    }

    impl AsyncRead for CountingStream<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.most.min(self.data.len()).min(buf.remaining());
            let (head, rest) = self.data.split_at(n);
            buf.put_slice(head);
            self.data = rest;
            if n > 0 {
                self.reads += 1;
            }
            if n > READ_BUFFER_BYTES {
                self.direct_bytes += n;
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// `len` bytes that differ from frame to frame and from byte to byte.
    fn pattern(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 31 + seed * 7 + i / 251) as u8)
            .collect()
    }

    /// A request frame `id` with `body` and `payload`, encoded.
    fn encoded(id: u64, body: &[u8], payload: &[u8]) -> Vec<u8> {
        let h = Header {
            kind: FrameKind::Request,
            service: Service::Oss,
            flags: 0,
            request_id: id,
            body_len: body.len() as u32,
            payload_len: payload.len() as u32,
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(body);
        v.extend_from_slice(payload);
        v
    }

    /// Reads the next frame and checks it is frame `id` with `body` and `payload`.
    async fn expect_frame<R: AsyncRead + Unpin>(r: &mut R, id: u64, body: &[u8], payload: &[u8]) {
        let f = read_frame(r).await.unwrap().expect("a frame, not a close");
        assert_eq!(f.header.request_id, id);
        assert!(f.body == body, "frame {id}: body differs");
        assert_eq!(f.payload.len(), payload.len(), "frame {id}");
        assert!(f.payload == payload, "frame {id}: payload differs");
    }

    /// Small frames back to back: hundreds per read through the buffer, where a bare stream
    /// takes one read per header byte, header rest, body and payload.
    #[tokio::test]
    async fn small_frames_take_a_read_per_buffer_not_per_part() {
        const FRAMES: usize = 1000;
        // Bodies and payloads of varying sizes, so frames straddle buffer boundaries anywhere.
        let parts: Vec<(Vec<u8>, Vec<u8>)> = (0..FRAMES)
            .map(|i| (pattern(i, 20 + i % 50), pattern(i + 1, i % 30)))
            .collect();
        let mut wire = Vec::new();
        for (i, (b, p)) in parts.iter().enumerate() {
            wire.extend_from_slice(&encoded(i as u64, b, p));
        }

        let mut bare = CountingStream::new(&wire, usize::MAX);
        let mut buffered = buffered_reader(CountingStream::new(&wire, usize::MAX));
        for (i, (b, p)) in parts.iter().enumerate() {
            expect_frame(&mut bare, i as u64, b, p).await;
            expect_frame(&mut buffered, i as u64, b, p).await;
        }
        assert!(read_frame(&mut bare).await.unwrap().is_none());
        assert!(read_frame(&mut buffered).await.unwrap().is_none());

        let reads = buffered.get_ref().reads;
        println!(
            "{FRAMES} small frames, {} bytes: {} reads bare, {reads} buffered",
            wire.len(),
            bare.reads
        );
        assert!(bare.reads >= 3 * FRAMES, "{} bare reads", bare.reads);
        assert_eq!(reads, wire.len().div_ceil(READ_BUFFER_BYTES));
    }

    /// A large payload between two small frames arrives whole, read from the stream straight
    /// into its allocation rather than through the buffer.
    #[tokio::test]
    async fn a_large_payload_skips_the_buffer() {
        const LARGE: usize = 8 << 20;
        // What one read of a socket returns at most here (a full receive queue).
        const SOCKET_READ: usize = 256 << 10;
        let small = (pattern(1, 40), pattern(2, 20));
        let large = (pattern(3, 100), pattern(4, LARGE));
        let mut wire = encoded(1, &small.0, &small.1);
        wire.extend_from_slice(&encoded(2, &large.0, &large.1));
        wire.extend_from_slice(&encoded(3, &small.0, &small.1));

        let mut bare = CountingStream::new(&wire, SOCKET_READ);
        let mut r = buffered_reader(CountingStream::new(&wire, SOCKET_READ));
        for mut rd in [&mut bare as &mut (dyn AsyncRead + Unpin), &mut r] {
            expect_frame(&mut rd, 1, &small.0, &small.1).await;
            expect_frame(&mut rd, 2, &large.0, &large.1).await;
            expect_frame(&mut rd, 3, &small.0, &small.1).await;
            assert!(read_frame(&mut rd).await.unwrap().is_none());
        }

        let s = r.get_ref();
        println!(
            "an {LARGE}-byte payload between two small frames, at most {SOCKET_READ} bytes a \
             read: {} reads bare, {} buffered ({} bytes straight into the payload)",
            bare.reads, s.reads, s.direct_bytes
        );
        // At most the buffer's worth before the payload and its last part pass the buffer.
        assert!(
            s.direct_bytes >= LARGE - 2 * READ_BUFFER_BYTES,
            "only {} of {LARGE} payload bytes skipped the buffer",
            s.direct_bytes
        );
        assert!(
            s.reads <= wire.len().div_ceil(SOCKET_READ) + 3,
            "{} reads",
            s.reads
        );

        // Cut half-way through the large payload: the frame before it is whole, then an error.
        let cut = &wire[..wire.len() / 2];
        let mut r = buffered_reader(cut);
        expect_frame(&mut r, 1, &small.0, &small.1).await;
        assert!(read_frame(&mut r).await.is_err());
    }

    /// A stream whose every read fails with `kind`.
    struct FailingStream(std::io::ErrorKind);

    impl AsyncRead for FailingStream {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            _buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(self.0.into()))
        }
    }

    #[tokio::test]
    async fn a_socket_error_between_frames_is_a_transport_error() {
        let missing = read_frame(&mut FailingStream(std::io::ErrorKind::NotFound)).await;
        assert!(matches!(missing, Err(Error::Io(_))), "{missing:?}");
        let reset = read_frame(&mut FailingStream(std::io::ErrorKind::ConnectionReset)).await;
        assert!(matches!(reset, Err(Error::Unavailable(_))), "{reset:?}");
    }
}

//! What the rustre fuzz targets share: decoding a body through the codec the servers and
//! clients use (and checking what must hold of anything that decodes), and feeding a byte
//! stream through the frame reader.
//!
//! Every function here must return for any input; a panic is a bug in the code under test
//! (or a wrong assertion here), and libFuzzer reports it as a crash.

use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use rustre_proto::codec;
use rustre_proto::frame::{
    read_frame, read_header, read_rest, FrameKind, Header, Service, HEADER_BYTES, MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
};
use rustre_proto::msg::mds::{MdsRequest, MdsResponse};
use rustre_proto::msg::mgs::{MgsRequest, MgsResponse};
use rustre_proto::msg::oss::{OssRequest, OssResponse};
use rustre_proto::rpc::{ClientProof, Hello, ServerProof};
use rustre_proto::Error;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, ReadBuf};

/// Decodes `bytes` as `T` with [`codec::decode`], as a server or client does with a body.
/// When it decodes, the value must round-trip: it encodes, its encoding is no longer than the
/// input (the codec writes the shortest form), decodes again to the same value (compared by
/// `Debug`, as the message types are not all `PartialEq`) and encodes to the same bytes.
pub fn decode_checked<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + Debug,
{
    let value: T = codec::decode(bytes).ok()?;
    let encoded = codec::encode(&value).expect("a decoded value must encode");
    assert!(
        encoded.len() <= bytes.len(),
        "re-encoding grew from {} to {} bytes: {value:?}",
        bytes.len(),
        encoded.len()
    );
    let again: T = codec::decode(&encoded).expect("an encoded value must decode");
    assert_eq!(
        format!("{value:?}"),
        format!("{again:?}"),
        "round trip changed the value"
    );
    assert_eq!(
        codec::encode(&again).expect("a decoded value must encode"),
        encoded,
        "round trip changed the encoding"
    );
    Some(value)
}

/// Decodes a frame's body as the type its kind and service carry; true if it decoded.
pub fn decode_body(kind: FrameKind, service: Service, body: &[u8]) -> bool {
    match (kind, service) {
        (FrameKind::Hello, _) => decode_checked::<Hello>(body).is_some(),
        (FrameKind::HelloReply, _) => decode_checked::<Result<ServerProof, Error>>(body).is_some(),
        (FrameKind::Auth, _) => decode_checked::<ClientProof>(body).is_some(),
        (FrameKind::Request, Service::Mgs) => decode_checked::<MgsRequest>(body).is_some(),
        (FrameKind::Request, Service::Mds) => decode_checked::<MdsRequest>(body).is_some(),
        (FrameKind::Request, Service::Oss) => decode_checked::<OssRequest>(body).is_some(),
        (FrameKind::Response, Service::Mgs) => {
            decode_checked::<Result<MgsResponse, Error>>(body).is_some()
        }
        (FrameKind::Response, Service::Mds) => {
            decode_checked::<Result<MdsResponse, Error>>(body).is_some()
        }
        (FrameKind::Response, Service::Oss) => {
            decode_checked::<Result<OssResponse, Error>>(body).is_some()
        }
    }
}

/// What must hold of every header that decodes.
pub fn check_header(h: &Header) {
    assert!(h.body_len <= MAX_BODY_BYTES, "body length {}", h.body_len);
    assert!(
        h.payload_len <= MAX_PAYLOAD_BYTES,
        "payload length {}",
        h.payload_len
    );
}

/// Most frames read from one input.
pub const MAX_FRAMES: usize = 32;

/// Feeds `stream` to the frame reader as a connection would, then decodes each whole
/// frame's body. `mode` picks how: bits 0-5 the most bytes one read returns (0 = all),
/// bit 6 makes every third read pending first, bit 7 reads like the server (header, then
/// the rest) instead of with `read_frame` (as the client does).
pub fn run_stream(mode: u8, stream: &[u8]) {
    let chunk = match mode & 0x3f {
        0 => usize::MAX,
        n => n as usize,
    };
    let mut reader = Chunked {
        data: stream,
        chunk,
        pending: mode & 0x40 != 0,
        polls: 0,
    };
    let server_like = mode & 0x80 != 0;
    runtime().block_on(async {
        for _ in 0..MAX_FRAMES {
            if announces_much_more(reader.data) {
                return;
            }
            let frame = if server_like {
                let header = match read_header(&mut reader).await {
                    Ok(Some(h)) => h,
                    Ok(None) | Err(_) => return,
                };
                check_header(&header);
                match read_rest(&mut reader, header).await {
                    Ok(f) => f,
                    Err(_) => return,
                }
            } else {
                match read_frame(&mut reader).await {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(_) => return,
                }
            };
            check_header(&frame.header);
            assert_eq!(frame.body.len(), frame.header.body_len as usize);
            assert_eq!(frame.payload.len(), frame.header.payload_len as usize);
            decode_body(frame.header.kind, frame.header.service, &frame.body);
        }
    });
}

/// Frames announcing more than this beyond what the input still holds are not read.
pub const MAX_MISSING_BYTES: u64 = 64 << 10;

/// True when `rest` starts with a valid header announcing far more bytes than `rest` holds.
/// Reading such a frame allocates the announced size (up to 20 MiB) and then fails as any
/// truncated frame does; skipping it keeps the fuzzer fast without losing a code path.
fn announces_much_more(rest: &[u8]) -> bool {
    let Some(b) = rest.first_chunk::<HEADER_BYTES>() else {
        return false;
    };
    match Header::decode(b) {
        Ok(h) => {
            let announced = u64::from(h.body_len) + u64::from(h.payload_len);
            let held = (rest.len() - HEADER_BYTES) as u64;
            announced > held + MAX_MISSING_BYTES
        }
        Err(_) => false,
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// An in-memory connection that hands out at most `chunk` bytes per read and, if asked,
/// makes every third read pending (waking itself at once) as a slow socket would.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
    pending: bool,
    polls: u32,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.polls = self.polls.wrapping_add(1);
        if self.pending && self.polls.is_multiple_of(3) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

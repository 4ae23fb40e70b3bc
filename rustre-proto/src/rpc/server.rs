//! The server side: an accept loop with a connection limit, the handshake, one task per call
//! (bounded per connection), and a writer that sends file-backed payloads with `sendfile`.
//!
//! Bad input (garbage, oversized lengths, truncated frames, a wrong version or cluster) closes
//! that one connection with a log line; other connections are never affected. A peer that
//! does not prove it holds the cluster secret (see [`crate::auth`]) is refused with a warning
//! naming its address before a single request frame is read.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

use super::{
    read_handshake_frame, ClientProof, Hello, ServerProof, MAX_INFLIGHT_PER_CONN, MAX_NAME_BYTES,
    WRITE_BUFFER_BYTES,
};
use crate::auth::{self, ClusterKey, Side};
use crate::codec;
use crate::error::Error;
use crate::frame::{buffered_reader, read_header, read_rest, FrameKind, Header, Service};
use crate::net::{self, Listener, ReadHalf, Stream, WriteHalf};

/// Most client connections one server accepts at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Most request bytes (bodies and payloads) one connection may have in flight.
pub const MAX_INFLIGHT_BYTES_PER_CONN: usize = 64 << 20;
/// How long a new connection may take to complete the handshake (`Hello` and `Auth`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Raw data sent after a reply's body.
pub enum Payload {
    None,
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, sent with `sendfile`.
    File {
        file: Arc<std::fs::File>,
        offset: u64,
        len: u32,
    },
}

impl Payload {
    /// Bytes of the payload.
    pub fn len(&self) -> usize {
        match self {
            Payload::None => 0,
            Payload::Bytes(b) => b.len(),
            Payload::File { len, .. } => *len as usize,
        }
    }

    /// True when the payload carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A handler's answer: the typed result and an optional payload.
pub struct Reply<R> {
    pub result: Result<R, Error>,
    pub payload: Payload,
}

impl<R> Reply<R> {
    /// A reply without payload.
    pub fn plain(result: Result<R, Error>) -> Self {
        Reply {
            result,
            payload: Payload::None,
        }
    }
}

/// Who sent a call: the connection's peer address, and whether it proved it holds the admin
/// secret in its handshake ([`crate::auth::ClusterKey::verify_admin`]; never for a server
/// whose key holds none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub addr: std::net::SocketAddr,
    pub admin: bool,
}

impl Caller {
    /// A caller that proved nothing beyond the cluster secret (for tests and in-process
    /// calls).
    pub fn plain(addr: std::net::SocketAddr) -> Caller {
        Caller { addr, admin: false }
    }
}

/// A service: decodes its request type and answers each call.
pub trait Handler: Send + Sync + 'static {
    type Request: DeserializeOwned + Send + std::fmt::Debug + 'static;
    type Response: Serialize + Send + 'static;
    /// The service this handler implements, checked on every frame.
    const SERVICE: Service;

    /// Answers one call from `caller`.
    fn handle(
        self: Arc<Self>,
        req: Self::Request,
        payload: Bytes,
        caller: Caller,
    ) -> impl Future<Output = Reply<Self::Response>> + Send;
}

struct Outgoing {
    header: Header,
    body: Vec<u8>,
    payload: Payload,
}

/// Serves `handler` on `listener` until `shutdown` turns true, to peers of cluster `cluster`
/// that prove they hold `key`.
pub async fn serve<H: Handler>(
    listener: impl Into<Listener>,
    handler: Arc<H>,
    cluster: String,
    key: ClusterKey,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = listener.into();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let cluster = Arc::new(cluster);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let (h, c, k, mut sd) = (
            handler.clone(),
            cluster.clone(),
            key.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                r = connection(stream, h, &c, &k, peer) => {
                    if let Err(e) = r {
                        tracing::warn!(%peer, service = ?H::SERVICE, "closing connection: {e}");
                    }
                }
                _ = sd.changed() => {}
            }
            drop(permit);
        });
    }
}

async fn connection<H: Handler>(
    stream: Stream,
    handler: Arc<H>,
    cluster: &str,
    key: &ClusterKey,
    peer: std::net::SocketAddr,
) -> Result<(), Error> {
    // One buffered reader for the whole connection: a client sends its first requests right
    // behind its proof, so the handshake's reads may already hold them.
    let (rd, wr) = stream.into_split();
    let mut rd = buffered_reader(rd);
    let mut wr = BufWriter::with_capacity(WRITE_BUFFER_BYTES, wr);

    let shook = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::<H>(&mut rd, &mut wr, cluster, key),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::Protocol(format!(
            "handshake not completed within {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        )))
    });
    let caller = match shook {
        Ok((client, admin)) => {
            tracing::debug!(%peer, ?client, admin, service = ?H::SERVICE, "authenticated");
            Caller { addr: peer, admin }
        }
        Err(e) => {
            tracing::warn!(%peer, service = ?H::SERVICE, "refused connection: {e}");
            return Ok(());
        }
    };

    let (tx, rx) = mpsc::channel::<Outgoing>(MAX_INFLIGHT_PER_CONN);
    let writer = tokio::spawn(writer_task(wr, rx));
    let inflight = Arc::new(Semaphore::new(MAX_INFLIGHT_PER_CONN));
    let bytes_budget = Arc::new(Semaphore::new(MAX_INFLIGHT_BYTES_PER_CONN));
    let result = loop {
        let header = match read_header(&mut rd).await {
            Ok(Some(h)) => h,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        // Reserve the frame's bytes before reading them, so the calls of one connection
        // never hold more than MAX_INFLIGHT_BYTES_PER_CONN of request data.
        let bytes = (header.body_len as usize + header.payload_len as usize)
            .clamp(1, MAX_INFLIGHT_BYTES_PER_CONN) as u32;
        let reserved = bytes_budget
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("never closed");
        let frame = match read_rest(&mut rd, header).await {
            Ok(f) => f,
            Err(e) => break Err(e),
        };
        if frame.header.kind != FrameKind::Request || frame.header.service != H::SERVICE {
            break Err(Error::Protocol(format!(
                "unexpected {:?} frame for {:?}",
                frame.header.kind, frame.header.service
            )));
        }
        let id = frame.header.request_id;
        let permit = inflight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let tx = tx.clone();
        match codec::decode::<H::Request>(&frame.body) {
            Ok(req) => {
                let h = handler.clone();
                tokio::spawn(async move {
                    let reply = h.handle(req, frame.payload, caller).await;
                    drop(reserved);
                    let _ = tx.send(outgoing::<H>(id, reply)).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // The frame was whole, so the stream is still in sync: answer and go on.
                tracing::warn!(service = ?H::SERVICE, "undecodable request: {e}");
                let _ = tx.send(outgoing::<H>(id, Reply::plain(Err(e)))).await;
            }
        }
    };
    drop(tx);
    let _ = writer.await;
    result
}

/// The server side of the handshake: checks `Hello`, answers with our proof, checks the
/// client's proof. Returns the client's name once it proved it holds the secret, and
/// whether it also proved it holds the admin secret (an admin proof that does not check out
/// leaves the connection a plain one, with a warning when this server holds an admin secret).
async fn handshake<H: Handler>(
    rd: &mut BufReader<ReadHalf>,
    wr: &mut BufWriter<WriteHalf>,
    cluster: &str,
    key: &ClusterKey,
) -> Result<(String, bool), Error> {
    let hello = read_handshake_frame(rd, FrameKind::Hello)
        .await?
        .ok_or_else(|| Error::Protocol("closed before the handshake".into()))?;
    let server_nonce = auth::nonce()?;
    let verdict = check_hello::<H>(&hello.header, &hello.body, cluster).map(|h| {
        let proof = key.prove(Side::Server, cluster, &h.nonce, &server_nonce);
        (h, proof)
    });
    let answer = match &verdict {
        Ok((_, proof)) => Ok(ServerProof {
            nonce: server_nonce,
            proof: *proof,
        }),
        Err(e) => Err(e.clone()),
    };
    let body = codec::encode(&answer)?;
    let h = reply_header(FrameKind::HelloReply, 0, &body, 0, H::SERVICE);
    let send = async {
        wr.write_all(&h.encode()).await?;
        wr.write_all(&body).await?;
        wr.flush().await
    };
    send.await.map_err(net::transport)?;
    let (hello, _) = verdict?;

    let not_proved = |how: &str| {
        Error::Auth(format!(
            "client {:?} {how} (wrong cluster secret, or not a rustre peer)",
            hello.client
        ))
    };
    let frame = match read_handshake_frame(rd, FrameKind::Auth).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(not_proved(
                "closed the connection without proving it holds the cluster secret",
            ))
        }
        Err(Error::Protocol(e)) => {
            return Err(not_proved(&format!(
                "did not prove it holds the cluster secret: {e}"
            )))
        }
        Err(e) => return Err(e),
    };
    let proof = codec::decode::<ClientProof>(&frame.body)
        .map_err(|e| not_proved(&format!("sent an undecodable proof: {e}")))?;
    if frame.header.service != H::SERVICE
        || !key.verify(
            Side::Client,
            cluster,
            &hello.nonce,
            &server_nonce,
            &proof.proof,
        )
    {
        return Err(not_proved("failed to prove it holds the cluster secret"));
    }
    let admin = proof.admin.is_some_and(|p| {
        // A server without an admin secret ignores admin proofs (clients send theirs to
        // every server they connect to).
        let ok = key.verify_admin(cluster, &hello.nonce, &server_nonce, &p);
        if !ok && key.has_admin() {
            tracing::warn!(
                client = ?hello.client,
                service = ?H::SERVICE,
                "an admin proof that does not check out (another admin secret): the \
                 connection gets no admin rights"
            );
        }
        ok
    });
    Ok((hello.client, admin))
}

fn check_hello<H: Handler>(h: &Header, body: &[u8], cluster: &str) -> Result<Hello, Error> {
    if h.kind != FrameKind::Hello {
        return Err(Error::Protocol("first frame is not a handshake".into()));
    }
    if h.service != H::SERVICE {
        return Err(Error::Protocol(format!(
            "this is {:?}, not {:?}",
            H::SERVICE,
            h.service
        )));
    }
    let hello: Hello = codec::decode(body)?;
    if hello.cluster.len() > MAX_NAME_BYTES || hello.client.len() > MAX_NAME_BYTES {
        return Err(Error::Protocol("handshake name too long".into()));
    }
    if hello.cluster != cluster {
        return Err(Error::Protocol(format!(
            "cluster {:?} is not {:?}",
            hello.cluster, cluster
        )));
    }
    Ok(hello)
}

fn reply_header(kind: FrameKind, id: u64, body: &[u8], payload: usize, s: Service) -> Header {
    Header {
        kind,
        service: s,
        flags: 0,
        request_id: id,
        body_len: body.len() as u32,
        payload_len: payload as u32,
    }
}

fn outgoing<H: Handler>(id: u64, reply: Reply<H::Response>) -> Outgoing {
    let (body, payload) = match codec::encode(&reply.result) {
        Ok(b) => (b, reply.payload),
        Err(e) => (
            codec::encode(&Err::<H::Response, Error>(e)).expect("errors encode"),
            Payload::None,
        ),
    };
    // A failed call never carries data.
    let payload = if reply.result.is_err() {
        Payload::None
    } else {
        payload
    };
    Outgoing {
        header: reply_header(FrameKind::Response, id, &body, payload.len(), H::SERVICE),
        body,
        payload,
    }
}

async fn writer_task(mut wr: BufWriter<WriteHalf>, mut rx: mpsc::Receiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        let mut res = write_one(&mut wr, out).await;
        while res.is_ok() {
            match rx.try_recv() {
                Ok(o) => res = write_one(&mut wr, o).await,
                Err(_) => break,
            }
        }
        if res.is_ok() {
            res = wr.flush().await;
        }
        if let Err(e) = res {
            tracing::debug!("reply write failed: {e}");
            return;
        }
    }
    let _ = wr.flush().await;
}

async fn write_one(wr: &mut BufWriter<WriteHalf>, out: Outgoing) -> std::io::Result<()> {
    wr.write_all(&out.header.encode()).await?;
    wr.write_all(&out.body).await?;
    match out.payload {
        Payload::None => Ok(()),
        Payload::Bytes(b) => wr.write_all(&b).await,
        Payload::File { file, offset, len } => {
            wr.flush().await?;
            match wr.get_ref().tcp() {
                Some(stream) => send_file(stream, &file, offset, len as usize).await,
                None => copy_file(wr, &file, offset, len as usize).await,
            }
        }
    }
}

/// Sends `len` bytes of `file` at `offset` with sendfile(2). If the file ends early (it was
/// truncated meanwhile) the rest is sent as zeros, so the frame stays whole.
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> std::io::Result<()> {
    let mut off = offset as libc::off_t;
    let mut left = len;
    while left > 0 {
        stream.writable().await?;
        let r = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call and `off` is a
            // valid pointer to an off_t.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut off, left) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => break,
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    if left > 0 {
        let zeros = vec![0u8; left.min(1 << 20)];
        while left > 0 {
            stream.writable().await?;
            match stream.try_write(&zeros[..left.min(zeros.len())]) {
                Ok(n) => left -= n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// What [`send_file`] does on a stream that is not a TCP socket (a simulated network): reads
/// the bytes into memory and writes them, zeros past an early end of file.
async fn copy_file(
    wr: &mut BufWriter<WriteHalf>,
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    wr.write_all(&buf).await?;
    wr.flush().await
}

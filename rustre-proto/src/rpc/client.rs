//! The client side: one TCP connection carrying many calls at once, matched by request id,
//! and a small pool of such connections per server. A call writes its request itself
//! ([`super::outbox`]) and waits for the task reading answers to hand it its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::AbortHandle;

use super::outbox::Outbox;
use super::{
    read_handshake_frame, ClientProof, Hello, ServerProof, CONNECT_TIMEOUT, MAX_INFLIGHT_PER_CONN,
    RPC_TIMEOUT, WRITE_BUFFER_BYTES,
};
use crate::auth::{self, ClusterKey, Side};
use crate::codec;
use crate::error::Error;
use crate::frame::{buffered_reader, read_frame, Frame, FrameKind, Header, Service};
use crate::net::{self, ReadHalf, WriteHalf};
use crate::sync::lock;

/// Waiting calls by request id; ordered, so that a lost connection wakes them in the order
/// they were sent (a simulated run depends on its seed alone).
type Pending = Arc<Mutex<BTreeMap<u64, oneshot::Sender<Frame>>>>;

/// One connection to one server, shared by many concurrent calls.
pub struct Connection {
    service: Service,
    outbox: Arc<Outbox>,
    pending: Pending,
    next_id: AtomicU64,
    inflight: Semaphore,
    closed: Arc<AtomicBool>,
    /// The task reading answers; stopped with the connection (a hung peer never ends it).
    reader: AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.outbox.close();
    }
}

impl Connection {
    /// Connects to `addr`, runs the handshake (both ends prove they hold `key`, see
    /// [`crate::auth`]) and starts the reader and writer tasks. A server that does not prove
    /// it holds the secret gets no request: that is [`Error::Auth`].
    pub async fn connect(
        addr: &str,
        service: Service,
        cluster: &str,
        client: &str,
        key: &ClusterKey,
    ) -> Result<Arc<Connection>, Error> {
        let (mut rd, wr) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            handshake(addr, service, cluster, client, key),
        )
        .await
        .map_err(|_| Error::Unavailable(format!("connect to {addr}: timed out")))??;

        let pending: Pending = Arc::new(Mutex::new(BTreeMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        // The handshake flushed everything it wrote: nothing is left in the buffer.
        let outbox = Outbox::new(wr.into_inner(), closed.clone());
        tokio::spawn(outbox.clone().writer());
        let (p, c) = (pending.clone(), closed.clone());
        let peer = addr.to_string();
        let reader = tokio::spawn(async move {
            loop {
                match read_frame(&mut rd).await {
                    Ok(Some(frame)) if frame.header.kind == FrameKind::Response => {
                        let waiter = lock(&p).remove(&frame.header.request_id);
                        if let Some(w) = waiter {
                            let _ = w.send(frame);
                        }
                    }
                    Ok(Some(frame)) => {
                        tracing::warn!(%peer, kind = ?frame.header.kind, "unexpected frame");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(%peer, "connection lost: {e}");
                        break;
                    }
                }
            }
            c.store(true, Ordering::SeqCst);
            // Dropping the senders wakes every waiter with a closed-channel error.
            lock(&p).clear();
        });
        Ok(Arc::new(Connection {
            service,
            outbox,
            pending,
            next_id: AtomicU64::new(1),
            inflight: Semaphore::new(MAX_INFLIGHT_PER_CONN),
            closed,
            reader: reader.abort_handle(),
        }))
    }

    /// True once the connection is unusable.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Sends `req` with a raw `payload` and waits for the typed answer and its payload, at
    /// most [`RPC_TIMEOUT`].
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        payload: Bytes,
    ) -> Result<(Resp, Bytes), Error> {
        self.call_within(req, payload, RPC_TIMEOUT).await
    }

    /// [`Connection::call`] waiting at most `limit` for the answer. A call that times out
    /// retires the connection (calls in flight on it go on; new ones get a new connection):
    /// an answer that never came may mean the stream is dead without either end having
    /// seen it close (a peer that vanished, a connection dropped by the network), and every
    /// later call on it would wait as long.
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        payload: Bytes,
        limit: Duration,
    ) -> Result<(Resp, Bytes), Error> {
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("connection closed".into()))?;
        let body = codec::encode(req)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wtx, wrx) = oneshot::channel();
        lock(&self.pending).insert(id, wtx);
        // Checked after the waiter is in: a reader that ends marks the connection closed
        // before it drops the waiters, so either it drops this one (the call wakes at once)
        // or the mark is seen here. Checked before, a reader ending in between would leave
        // the call waiting for its whole limit.
        if self.is_closed() {
            lock(&self.pending).remove(&id);
            return Err(Error::Unavailable("connection closed".into()));
        }
        let h = header(FrameKind::Request, self.service, id, &body, payload.len());
        let head = Bytes::copy_from_slice(&h.encode());
        if let Err(e) = self.outbox.send([head, Bytes::from(body), payload]) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        // Forget the waiter however this call ends (answered, timed out or dropped).
        let _forget = PendingGuard {
            pending: &self.pending,
            id,
        };
        let frame = match tokio::time::timeout(limit, wrx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(Error::Unavailable("connection lost during call".into())),
            Err(_) => {
                self.closed.store(true, Ordering::SeqCst);
                return Err(Error::TimedOut);
            }
        };
        let result: Result<Resp, Error> = codec::decode(&frame.body)?;
        Ok((result?, frame.payload))
    }
}

/// Connects and runs the client side of the handshake; returns the stream once the server
/// proved itself and our proof is on its way. Its reading half is buffered from the first
/// handshake frame on, and stays so: whatever the buffer read ahead belongs to the answers.
async fn handshake(
    addr: &str,
    service: Service,
    cluster: &str,
    client: &str,
    key: &ClusterKey,
) -> Result<(BufReader<ReadHalf>, BufWriter<WriteHalf>), Error> {
    let stream = net::connect(addr)
        .await
        .map_err(|e| Error::Unavailable(format!("connect to {addr}: {e}")))?;
    let (rd, wr) = stream.into_split();
    let mut rd = buffered_reader(rd);
    let mut wr = BufWriter::with_capacity(WRITE_BUFFER_BYTES, wr);
    let client_nonce = auth::nonce()?;
    let hello = codec::encode(&Hello {
        cluster: cluster.to_string(),
        client: client.to_string(),
        nonce: client_nonce,
    })?;
    send_handshake_frame(&mut wr, FrameKind::Hello, service, &hello).await?;
    let reply = read_handshake_frame(&mut rd, FrameKind::HelloReply)
        .await?
        .ok_or_else(|| Error::Unavailable(format!("{addr} closed during handshake")))?;
    let server = codec::decode::<Result<ServerProof, Error>>(&reply.body)??;
    if !key.verify(
        Side::Server,
        cluster,
        &client_nonce,
        &server.nonce,
        &server.proof,
    ) {
        // The caller reports the error (a CLI prints it once, a server logs it).
        tracing::debug!(
            peer = %addr,
            ?service,
            "refusing a server that does not prove it holds the cluster secret"
        );
        let role = match service {
            Service::Mgs => "MGS",
            Service::Mds => "MDS",
            Service::Oss => "OSS",
        };
        return Err(Error::Auth(format!(
            "wrong cluster secret? (the {role} at {addr} holds another secret than ours)"
        )));
    }
    let proof = codec::encode(&ClientProof {
        proof: key.prove(Side::Client, cluster, &client_nonce, &server.nonce),
        admin: key.prove_admin(cluster, &client_nonce, &server.nonce),
    })?;
    send_handshake_frame(&mut wr, FrameKind::Auth, service, &proof).await?;
    Ok((rd, wr))
}

/// Writes one handshake frame (no payload) and flushes it.
async fn send_handshake_frame(
    wr: &mut BufWriter<WriteHalf>,
    kind: FrameKind,
    service: Service,
    body: &[u8],
) -> Result<(), Error> {
    write_frame(wr, &header(kind, service, 0, body, 0), body, &[])
        .await
        .map_err(net::transport)?;
    wr.flush().await.map_err(net::transport)
}

/// Removes a call's waiter from the pending table when the call ends in any way.
struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}

fn header(kind: FrameKind, service: Service, id: u64, body: &[u8], payload: usize) -> Header {
    Header {
        kind,
        service,
        flags: 0,
        request_id: id,
        body_len: body.len() as u32,
        payload_len: payload as u32,
    }
}

async fn write_frame(
    wr: &mut BufWriter<WriteHalf>,
    h: &Header,
    body: &[u8],
    payload: &[u8],
) -> std::io::Result<()> {
    wr.write_all(&h.encode()).await?;
    wr.write_all(body).await?;
    wr.write_all(payload).await
}

/// Connections kept per server by a [`Peer`].
pub const CONNS_PER_PEER: usize = 4;

/// A server reached through a few pooled connections, reconnected on demand.
pub struct Peer {
    addr: String,
    service: Service,
    cluster: String,
    client: String,
    key: ClusterKey,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Connection>>>>,
    next: AtomicUsize,
}

impl Peer {
    /// A peer with `conns` pooled connections (at least one), authenticated with `key`.
    pub fn new(
        addr: &str,
        service: Service,
        cluster: &str,
        client: &str,
        key: &ClusterKey,
        conns: usize,
    ) -> Peer {
        Peer {
            addr: addr.to_string(),
            service,
            cluster: cluster.to_string(),
            client: client.to_string(),
            key: key.clone(),
            slots: (0..conns.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connection(&self) -> Result<Arc<Connection>, Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
            if let Some(m) = crate::metrics::rpc_client() {
                m.reconnect(self.service);
            }
        }
        let c = Connection::connect(
            &self.addr,
            self.service,
            &self.cluster,
            &self.client,
            &self.key,
        )
        .await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// One call on one of the pooled connections; no retry (the caller knows whether the
    /// call is safe to repeat).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        payload: Bytes,
    ) -> Result<(Resp, Bytes), Error> {
        self.connection().await?.call(req, payload).await
    }

    /// [`Peer::call`] waiting at most `limit` for the answer (see
    /// [`Connection::call_within`]; connecting is bounded by [`CONNECT_TIMEOUT`]).
    pub async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        payload: Bytes,
        limit: Duration,
    ) -> Result<(Resp, Bytes), Error> {
        self.connection()
            .await?
            .call_within(req, payload, limit)
            .await
    }
}

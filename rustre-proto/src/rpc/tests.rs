//! The authenticated handshake over real loopback TCP: the right secret connects; a wrong one
//! is refused on both sides; a peer that skips or fakes the handshake is closed before any
//! request reaches the handler, and the server goes on serving others. Frames a buffered
//! reader takes in along with the handshake's are not lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::client::{Connection, Peer};
use super::server::{serve, Caller, Handler, Reply};
use super::{read_handshake_frame, ClientProof, Hello, ServerProof};
use crate::auth::{self, ClusterKey, Side};
use crate::codec;
use crate::error::Error;
use crate::frame::{buffered_reader, read_frame, FrameKind, Header, Service};

const CLUSTER: &str = "authtest";
/// A request the test handler never answers.
const NEVER_ANSWERED: u32 = 999;
/// A request the test handler answers with 1 when the caller proved the admin secret.
const AM_I_ADMIN: u32 = 1000;

/// Doubles numbers, and counts the calls that reached it.
#[derive(Default)]
struct Doubler {
    calls: AtomicUsize,
}

impl Handler for Doubler {
    type Request = u32;
    type Response = u32;
    const SERVICE: Service = Service::Mgs;

    async fn handle(self: Arc<Self>, req: u32, _payload: Bytes, caller: Caller) -> Reply<u32> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if req == AM_I_ADMIN {
            return Reply::plain(Ok(caller.admin as u32));
        }
        if req == NEVER_ANSWERED {
            std::future::pending::<()>().await;
        }
        Reply::plain(Ok(req * 2))
    }
}

struct TestServer {
    addr: String,
    handler: Arc<Doubler>,
    _stop: watch::Sender<bool>,
}

async fn server(key: &ClusterKey) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(Doubler::default());
    let (stop, rx) = watch::channel(false);
    tokio::spawn(serve(
        listener,
        handler.clone(),
        CLUSTER.into(),
        key.clone(),
        rx,
    ));
    TestServer {
        addr,
        handler,
        _stop: stop,
    }
}

async fn connect(addr: &str, key: &ClusterKey) -> Result<Arc<Connection>, Error> {
    Connection::connect(addr, Service::Mgs, CLUSTER, "test", key).await
}

async fn double(c: &Connection, n: u32) -> Result<u32, Error> {
    c.call::<u32, u32>(&n, Bytes::new()).await.map(|r| r.0)
}

fn frame(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let h = Header {
        kind,
        service: Service::Mgs,
        flags: 0,
        request_id: 1,
        body_len: body.len() as u32,
        payload_len: 0,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(body);
    v
}

fn hello(nonce: auth::Nonce) -> Vec<u8> {
    let body = codec::encode(&Hello {
        cluster: CLUSTER.into(),
        client: "raw".into(),
        nonce,
    })
    .unwrap();
    frame(FrameKind::Hello, &body)
}

/// True when the server closes `s` (EOF or reset) within a few seconds, without sending
/// anything more.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn only_a_proof_of_the_servers_admin_secret_makes_an_admin_connection() {
    let key = ClusterKey::generate().unwrap();
    let admin = ClusterKey::generate().unwrap();
    let s = server(&key.clone().with_admin(&admin)).await;
    let who = |k: ClusterKey| {
        let addr = s.addr.clone();
        async move { double(&connect(&addr, &k).await.unwrap(), AM_I_ADMIN).await }
    };
    assert_eq!(who(key.clone().with_admin(&admin)).await.unwrap(), 1);
    assert_eq!(who(key.clone()).await.unwrap(), 0, "no admin secret");
    let wrong = ClusterKey::generate().unwrap();
    assert_eq!(
        who(key.clone().with_admin(&wrong)).await.unwrap(),
        0,
        "another one"
    );
    // A server without an admin secret makes nobody admin.
    let plain = server(&key).await;
    let c = connect(&plain.addr, &key.clone().with_admin(&admin))
        .await
        .unwrap();
    assert_eq!(double(&c, AM_I_ADMIN).await.unwrap(), 0);
}

#[tokio::test]
async fn the_right_secret_connects_and_calls() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let c = connect(&s.addr, &key).await.unwrap();
    assert_eq!(double(&c, 21).await.unwrap(), 42);
    // The pool authenticates every connection it opens.
    let p = Peer::new(&s.addr, Service::Mgs, CLUSTER, "pool", &key, 3);
    for n in 0..6 {
        assert_eq!(p.call::<u32, u32>(&n, Bytes::new()).await.unwrap().0, 2 * n);
    }
}

#[tokio::test]
async fn a_client_with_the_wrong_secret_is_refused_and_others_go_on() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let wrong = ClusterKey::generate().unwrap();
    match connect(&s.addr, &wrong).await {
        Err(Error::Auth(m)) => assert!(m.contains("wrong cluster secret"), "{m}"),
        Err(e) => panic!("expected an authentication error, got {e}"),
        Ok(_) => panic!("a client with the wrong secret connected"),
    }
    assert_eq!(Error::Auth(String::new()).errno(), libc::EACCES);
    let c = connect(&s.addr, &key).await.unwrap();
    assert_eq!(double(&c, 4).await.unwrap(), 8);
    assert_eq!(s.handler.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_fake_server_without_the_secret_gets_no_proof_and_no_request() {
    let key = ClusterKey::generate().unwrap();
    // A server holding another secret, through the real server code.
    let fake = server(&ClusterKey::generate().unwrap()).await;
    assert!(matches!(
        connect(&fake.addr, &key).await,
        Err(Error::Auth(_))
    ));
    assert_eq!(fake.handler.calls.load(Ordering::SeqCst), 0);

    // A fake that answers with a made-up proof must see the client hang up without sending
    // its own proof or any request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let hello = read_frame(&mut s).await.unwrap().unwrap();
        assert_eq!(hello.header.kind, FrameKind::Hello);
        let reply: Result<ServerProof, Error> = Ok(ServerProof {
            nonce: auth::nonce().unwrap(),
            proof: [7; auth::PROOF_BYTES],
        });
        let body = codec::encode(&reply).unwrap();
        s.write_all(&frame(FrameKind::HelloReply, &body))
            .await
            .unwrap();
        // Nothing more may arrive: the next read sees the client's close.
        read_frame(&mut s).await
    });
    let c = Connection::connect(&addr, Service::Mgs, CLUSTER, "test", &key).await;
    assert!(matches!(c, Err(Error::Auth(_))));
    let after = fake.await.unwrap();
    assert!(
        matches!(after, Ok(None) | Err(_)),
        "the client sent {after:?}"
    );
}

#[tokio::test]
async fn a_peer_skipping_or_faking_the_handshake_is_closed_before_any_request() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let request = frame(FrameKind::Request, &codec::encode(&5u32).unwrap());

    // A request as the first frame.
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    raw.write_all(&request).await.unwrap();
    assert!(closed_by_server(&mut raw).await);

    // Hello, then a request instead of the proof.
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    raw.write_all(&hello(auth::nonce().unwrap())).await.unwrap();
    let reply = read_frame(&mut raw).await.unwrap().unwrap();
    assert_eq!(reply.header.kind, FrameKind::HelloReply);
    raw.write_all(&request).await.unwrap();
    assert!(closed_by_server(&mut raw).await);

    // Hello, then a wrong proof, then a request.
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    raw.write_all(&hello(auth::nonce().unwrap())).await.unwrap();
    read_frame(&mut raw).await.unwrap().unwrap();
    let proof = codec::encode(&ClientProof {
        proof: [1; auth::PROOF_BYTES],
        admin: None,
    })
    .unwrap();
    raw.write_all(&frame(FrameKind::Auth, &proof))
        .await
        .unwrap();
    let _ = raw.write_all(&request).await;
    assert!(closed_by_server(&mut raw).await);

    // A replayed proof: the right proof for another connection's nonces.
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    let cn = auth::nonce().unwrap();
    raw.write_all(&hello(cn)).await.unwrap();
    read_frame(&mut raw).await.unwrap().unwrap();
    let stale = key.prove(Side::Client, CLUSTER, &cn, &auth::nonce().unwrap());
    let proof = codec::encode(&ClientProof {
        proof: stale,
        admin: None,
    })
    .unwrap();
    raw.write_all(&frame(FrameKind::Auth, &proof))
        .await
        .unwrap();
    let _ = raw.write_all(&request).await;
    assert!(closed_by_server(&mut raw).await);

    // An oversized handshake frame is refused before its body is read.
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    let mut big = frame(FrameKind::Hello, &[]);
    big[20..24].copy_from_slice(&(1u32 << 20).to_be_bytes());
    raw.write_all(&big).await.unwrap();
    assert!(closed_by_server(&mut raw).await);

    assert_eq!(
        s.handler.calls.load(Ordering::SeqCst),
        0,
        "a request got in"
    );
    let c = connect(&s.addr, &key).await.unwrap();
    assert_eq!(double(&c, 50).await.unwrap(), 100);
}

#[tokio::test]
async fn a_wrong_cluster_name_is_refused_with_a_reason() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let r = Connection::connect(&s.addr, Service::Mgs, "other", "test", &key).await;
    match r {
        Err(Error::Protocol(m)) => assert!(m.contains("other"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected to another cluster"),
    }
}

#[tokio::test]
async fn a_call_that_times_out_retires_its_connection() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let c = connect(&s.addr, &key).await.unwrap();
    let r = c
        .call_within::<u32, u32>(&NEVER_ANSWERED, Bytes::new(), Duration::from_millis(200))
        .await;
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(c.is_closed(), "a timed-out connection stays in use");
    // A call on the retired connection fails at once instead of waiting for its limit.
    let started = std::time::Instant::now();
    let r = c
        .call_within::<u32, u32>(&21, Bytes::new(), Duration::from_secs(30))
        .await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A peer with a single pooled connection replaces the retired one.
    let peer = Peer::new(&s.addr, Service::Mgs, CLUSTER, "test", &key, 1);
    let r = peer
        .call_within::<u32, u32>(&NEVER_ANSWERED, Bytes::new(), Duration::from_millis(200))
        .await;
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    let (n, _) = peer.call::<u32, u32>(&21, Bytes::new()).await.unwrap();
    assert_eq!(n, 42);
}

#[tokio::test]
async fn frames_read_ahead_with_the_handshake_are_kept() {
    let request = codec::encode(&77u32).unwrap();
    let mut wire = hello(auth::nonce().unwrap());
    wire.extend_from_slice(&frame(FrameKind::Auth, &[9; 40]));
    wire.extend_from_slice(&frame(FrameKind::Request, &request));
    let mut rd = buffered_reader(&wire[..]);
    let h = read_handshake_frame(&mut rd, FrameKind::Hello)
        .await
        .unwrap();
    assert_eq!(h.unwrap().header.kind, FrameKind::Hello);
    assert!(!rd.buffer().is_empty(), "nothing was read ahead");
    let a = read_handshake_frame(&mut rd, FrameKind::Auth)
        .await
        .unwrap();
    assert_eq!(a.unwrap().body.as_ref(), &[9; 40]);
    let r = read_frame(&mut rd).await.unwrap().unwrap();
    assert_eq!(r.header.kind, FrameKind::Request);
    assert_eq!(r.body.as_ref(), request.as_slice());
    assert!(read_frame(&mut rd).await.unwrap().is_none());
}

#[tokio::test]
async fn requests_sent_with_the_proof_in_one_write_are_answered() {
    let key = ClusterKey::generate().unwrap();
    let s = server(&key).await;
    let mut raw = TcpStream::connect(&s.addr).await.unwrap();
    let cn = auth::nonce().unwrap();
    raw.write_all(&hello(cn)).await.unwrap();
    let reply = read_frame(&mut raw).await.unwrap().unwrap();
    let sp = codec::decode::<Result<ServerProof, Error>>(&reply.body)
        .unwrap()
        .unwrap();
    let proof = codec::encode(&ClientProof {
        proof: key.prove(Side::Client, CLUSTER, &cn, &sp.nonce),
        admin: None,
    })
    .unwrap();
    // The proof and two requests in one segment: the server's handshake read takes them all.
    let mut wire = frame(FrameKind::Auth, &proof);
    for n in [5u32, 6] {
        wire.extend_from_slice(&frame(FrameKind::Request, &codec::encode(&n).unwrap()));
    }
    raw.write_all(&wire).await.unwrap();
    let mut rd = buffered_reader(raw);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut rd))
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        assert_eq!(answer.header.kind, FrameKind::Response);
        let n = codec::decode::<Result<u32, Error>>(&answer.body)
            .unwrap()
            .unwrap();
        answers.push(n);
    }
    answers.sort_unstable();
    assert_eq!(answers, [10, 12]);
    assert_eq!(s.handler.calls.load(Ordering::SeqCst), 2);
}

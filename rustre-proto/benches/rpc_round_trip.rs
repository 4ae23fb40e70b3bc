//! What one RPC costs beyond the network: the median round trip of a small call through
//! rustre's client [`Connection`] and server [`serve`] over loopback TCP, beside a raw TCP
//! ping-pong of the same size between two blocking threads, in the same run.
//!
//! The call is made from a plain thread, as fuser's thread makes the FUSE client's calls,
//! two ways: handed to the client's runtime (the thread sleeps until a worker has the
//! answer), and polled by the thread itself until it waits, as the FUSE adapter does since
//! it writes requests from fuser's thread. Both runtimes have two workers, as `rustre
//! mount` and `rustre local` have on this machine. Run: `cargo bench -p rustre-proto --bench rpc_round_trip` (`CALLS=N`,
//! `ROUNDS=N`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::frame::Service;
use rustre_proto::rpc::client::Connection;
use rustre_proto::rpc::server::{serve, Caller, Handler, Reply};

const CLUSTER: &str = "bench";
/// Bytes each raw ping and pong carries: about a small metadata call's frame.
const RAW_MESSAGE_BYTES: usize = 96;

/// Answers every call with its number plus one.
struct Echo;

impl Handler for Echo {
    type Request = u64;
    type Response = u64;
    const SERVICE: Service = Service::Mgs;

    async fn handle(self: Arc<Self>, req: u64, _payload: Bytes, _caller: Caller) -> Reply<u64> {
        Reply::plain(Ok(req + 1))
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median_us(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median microseconds of `calls` raw ping-pongs between two blocking threads.
fn raw_round_trip(calls: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = [0u8; RAW_MESSAGE_BYTES];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut buf = [7u8; RAW_MESSAGE_BYTES];
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        c.write_all(&buf).expect("write");
        c.read_exact(&mut buf).expect("read");
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(c);
    server.join().expect("server thread");
    median_us(times)
}

/// How a plain thread (fuser's) gets a call made.
#[derive(Clone, Copy)]
enum HowCalled {
    /// Spawns the call on the client runtime and sleeps until a worker sends the answer.
    Spawned,
    /// Polls the call itself until it waits (its request written from this thread), as the
    /// FUSE client does: `block_on` from outside the runtime.
    FirstPoll,
}

/// Median microseconds of `calls` rustre calls made by this thread as `how` says.
fn rpc_round_trip(calls: usize, how: HowCalled) -> f64 {
    let server_rt = runtime("bench-server");
    let client_rt = runtime("bench-client");
    let key = ClusterKey::generate().expect("key");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    server_rt.spawn(serve(
        listener,
        Arc::new(Echo),
        CLUSTER.into(),
        key.clone(),
        stop_rx,
    ));
    let conn = client_rt
        .block_on(Connection::connect(
            &addr,
            Service::Mgs,
            CLUSTER,
            "bench",
            &key,
        ))
        .expect("connect");
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls as u64 {
        let c = conn.clone();
        let t = Instant::now();
        let answer = match how {
            HowCalled::Spawned => {
                let (tx, rx) = mpsc::sync_channel(1);
                client_rt.spawn(async move {
                    let r: Result<(u64, Bytes), _> = c.call(&i, Bytes::new()).await;
                    let _ = tx.send(r.map(|(n, _)| n));
                });
                rx.recv().expect("answer").expect("call")
            }
            HowCalled::FirstPoll => {
                let r: Result<(u64, Bytes), _> = client_rt.block_on(c.call(&i, Bytes::new()));
                r.expect("call").0
            }
        };
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(answer, i + 1, "wrong answer");
    }
    median_us(times)
}

fn main() {
    let calls = env_usize("CALLS", 20_000);
    let rounds = env_usize("ROUNDS", 3);
    println!(
        "| round | raw TCP ping-pong (us) | rustre RPC, spawned (us) | rustre RPC, first \
         poll on the caller (us) | spawned / raw | first poll / raw |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let (mut raws, mut spawned, mut polled) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let raw = raw_round_trip(calls);
        let s = rpc_round_trip(calls, HowCalled::Spawned);
        let p = rpc_round_trip(calls, HowCalled::FirstPoll);
        println!(
            "| {round} | {raw:.1} | {s:.1} | {p:.1} | {:.2} | {:.2} |",
            s / raw,
            p / raw
        );
        raws.push(raw);
        spawned.push(s);
        polled.push(p);
    }
    let (raw, s, p) = (median_us(raws), median_us(spawned), median_us(polled));
    println!(
        "| median of {rounds} | {raw:.1} | {s:.1} | {p:.1} | {:.2} | {:.2} |",
        s / raw,
        p / raw
    );
}

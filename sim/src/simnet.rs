//! rustre's transport seam (`rustre_proto::net`) over turmoil's simulated TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Once};

use rustre_proto::net::{self, Accept, BoxFuture, Conn, Listener, Network};

/// Connects through turmoil's network of the calling thread's simulation.
struct SimNetwork;

impl Network for SimNetwork {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Conn>>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as Box<dyn Conn>)
        })
    }
}

struct SimListener(turmoil::net::TcpListener);

impl Accept for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn Conn>, SocketAddr)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as Box<dyn Conn>, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Makes this process's rustre code use the simulated network and run blocking work in
/// place (so that a run depends on its seed alone). Idempotent.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        net::install(Arc::new(SimNetwork)).expect("first network installed");
        net::run_blocking_inline();
    });
}

/// A listener on `port` of the current simulated host.
pub async fn listen(port: u16) -> io::Result<Listener> {
    let l = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(Listener::Other(Box::new(SimListener(l))))
}

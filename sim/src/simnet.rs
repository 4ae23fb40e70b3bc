//! rustre's seams over turmoil: its transport (`rustre_proto::net`) over simulated TCP, and
//! its wall clock and disk space (`rustre_proto::host`): the simulated clock, a fixed disk.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use rustre_proto::msg::Capacity;
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

/// What every simulated OST reports of its disk (the real one under the temporary
/// directory changes with whatever else runs on the machine).
pub const SIM_DISK: Capacity = Capacity {
    total_bytes: 1 << 40,
    free_bytes: 1 << 39,
    avail_bytes: 1 << 39,
};

/// The wall-clock time at which every run starts (2026-01-01 00:00:00 UTC).
pub const SIM_EPOCH: Duration = Duration::from_secs(1_767_225_600);

thread_local! {
    /// The last time the simulated wall clock gave on this thread (every run is on one).
    static LAST_READ: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// The simulated wall clock: [`SIM_EPOCH`] plus the simulated time, and a nanosecond later
/// than its last reading when the simulated time (a tick of 1 ms) has not moved, so that
/// times stay distinct as a real clock's are.
fn sim_clock() -> Duration {
    let t = SIM_EPOCH + turmoil::sim_elapsed().unwrap_or_default();
    LAST_READ.with(|last| {
        let t = t.max(last.get() + Duration::from_nanos(1));
        last.set(t);
        t
    })
}

/// Makes this process's rustre code use the simulated network, clock and disk space and
/// run blocking work in place (so that a run depends on its seed alone). Idempotent; call
/// [`start_run`] at the start of each run.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        net::install(Arc::new(SimNetwork)).expect("first network installed");
        rustre_proto::host::install_clock(sim_clock).expect("first clock installed");
        rustre_proto::host::install_disk_space(SIM_DISK).expect("first disk space installed");
        rustre_proto::blocking::run_blocking_inline();
    });
}

/// Starts the simulated wall clock of this thread's next run at [`SIM_EPOCH`].
pub fn start_run() {
    LAST_READ.with(|last| last.set(Duration::ZERO));
}

/// A listener on `port` of the current simulated host.
pub async fn listen(port: u16) -> io::Result<Listener> {
    let l = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(Listener::Other(Box::new(SimListener(l))))
}

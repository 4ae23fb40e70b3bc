//! The transport under the RPC layer.
//!
//! Every rustre process talks TCP. A deterministic simulation (the `sim/` workspace) replaces
//! the network with a simulated one and runs every role on one thread under a simulated
//! clock; for that, this module is the only place that opens connections:
//!
//! - [`connect`] opens a [`Stream`]: TCP, unless a [`Network`] was [`install`]ed for the
//!   process (once, before any connection; production never installs one).
//! - [`Listener`] accepts [`Stream`]s: a `tokio` TCP listener, or one of the simulation.
//!
//! A TCP [`WriteHalf`] gives the server its socket for `sendfile`; other streams get file
//! payloads copied through a buffer.
//!
//! [`transport`] is the one conversion of a stream's `io::Error` into the wire error: a
//! socket's error says the peer is gone or slow, never that a file is missing.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::Error;

/// A boxed, sendable future (what the [`Network`] and [`Accept`] traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream of another network than TCP.
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn for T {}

/// A network other than TCP: how a process connects to `host:port`.
pub trait Network: Send + Sync + 'static {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Conn>>>;
}

/// A listener of another network than TCP.
pub trait Accept: Send + Sync + 'static {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Box<dyn Conn>, SocketAddr)>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

static NETWORK: OnceLock<Arc<dyn Network>> = OnceLock::new();

/// Makes every later [`connect`] of this process go through `net`. Only once per process;
/// a second call is refused.
pub fn install(net: Arc<dyn Network>) -> Result<(), Error> {
    NETWORK
        .set(net)
        .map_err(|_| Error::Invalid("a network is already installed".into()))
}

/// The wire error for an I/O error of a connection (connect, read, write, flush): a lost or
/// refused peer is [`Error::Unavailable`] (transient, the caller may retry elsewhere), a
/// timeout is [`Error::TimedOut`], anything else is [`Error::Io`]. Never a file-system errno:
/// a socket's `NotFound` or `PermissionDenied` is not the application's file missing.
pub fn transport(e: io::Error) -> Error {
    use io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected
        | ErrorKind::UnexpectedEof => Error::Unavailable(e.to_string()),
        ErrorKind::TimedOut => Error::TimedOut,
        _ => Error::Io(format!("transport: {e}")),
    }
}

/// Opens a stream to `addr` (`host:port`).
pub async fn connect(addr: &str) -> io::Result<Stream> {
    match NETWORK.get() {
        Some(net) => Ok(Stream::Other(net.connect(addr).await?)),
        None => {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        }
    }
}

/// A connected stream.
pub enum Stream {
    Tcp(TcpStream),
    Other(Box<dyn Conn>),
}

impl Stream {
    /// Splits the stream into halves that can be used from two tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Other(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Other(r), WriteHalf::Other(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    Tcp(OwnedReadHalf),
    Other(tokio::io::ReadHalf<Box<dyn Conn>>),
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Other(tokio::io::WriteHalf<Box<dyn Conn>>),
}

impl WriteHalf {
    /// The TCP socket under this half, for `sendfile`.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            WriteHalf::Tcp(w) => Some(w.as_ref()),
            WriteHalf::Other(_) => None,
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Other(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Other(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Other(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Tcp(w) => w.is_write_vectored(),
            WriteHalf::Other(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Where a server accepts connections.
pub enum Listener {
    Tcp(TcpListener),
    Other(Box<dyn Accept>),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl Listener {
    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), peer))
            }
            Listener::Other(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Other(s), peer))
            }
        }
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Other(l) => l.local_addr(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_thing_on_a_socket_is_not_a_missing_file() {
        for e in [
            io::Error::from(io::ErrorKind::NotFound),
            io::Error::from_raw_os_error(libc::ENOENT),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ] {
            let wire = transport(e);
            assert!(
                matches!(wire, Error::Io(_)),
                "a socket error became {wire:?}"
            );
            assert_eq!(wire.errno(), libc::EIO);
        }
    }

    #[test]
    fn a_lost_peer_is_unavailable_and_may_be_retried() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::NotConnected,
            io::ErrorKind::UnexpectedEof,
        ] {
            let wire = transport(io::Error::new(kind, "peer went away"));
            assert!(
                matches!(&wire, Error::Unavailable(m) if m.contains("peer went away")),
                "{kind:?} became {wire:?}"
            );
            assert!(wire.is_transient());
        }
        let reset = transport(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert!(matches!(reset, Error::Unavailable(_)), "{reset:?}");
    }

    #[test]
    fn a_timeout_is_timed_out() {
        assert_eq!(
            transport(io::Error::from(io::ErrorKind::TimedOut)),
            Error::TimedOut
        );
        assert_eq!(
            transport(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
            Error::TimedOut
        );
    }
}

//! The metrics endpoint: a minimal HTTP/1.1 responder that answers `GET /metrics` with a
//! registry in the Prometheus text format (0.0.4), one request per connection, and the
//! matching client ([`scrape`]) that `rustre top` and the tests read endpoints with.
//!
//! Anything else is answered 404 (another path) or 405 (another method); a request head
//! larger than [`MAX_REQUEST_HEAD_BYTES`] or slower than [`REQUEST_TIMEOUT`] closes the
//! connection. At most [`MAX_CONNECTIONS`] scrapes are served at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::error::Error;

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";
/// Largest request head read (request line and headers).
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 << 10;
/// Longest time one request may take to arrive and be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most scrapes served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Largest answer [`scrape`] accepts.
pub const MAX_SCRAPE_BYTES: usize = 64 << 20;

/// Binds `addr` and serves `registry` there until `shutdown` turns true or its sender is
/// dropped. Returns the bound address (the port, when `addr` asked for port 0).
pub async fn listen(
    addr: &str,
    registry: Registry,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io(format!("metrics: cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Io(format!("metrics: {e}")))?;
    tokio::spawn(serve(listener, Arc::new(registry), shutdown));
    tracing::info!(%bound, "serving metrics at http://{bound}{METRICS_PATH}");
    Ok(bound)
}

/// Answers scrapes on `listener` until `shutdown` turns true or its sender is dropped.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            r = shutdown.changed() => match r {
                Ok(()) if !*shutdown.borrow() => continue,
                // Told to stop, or the sender is gone.
                _ => return,
            },
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue; // Too many scrapes at once: drop this one.
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &registry)).await {
                Ok(Err(e)) => tracing::debug!(%peer, "metrics request: {e}"),
                Err(_) => tracing::debug!(%peer, "metrics request timed out"),
                Ok(Ok(())) => {}
            }
            drop(permit);
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "").await;
    }
    if path != METRICS_PATH {
        return respond(&mut stream, "404 Not Found", "try /metrics\n").await;
    }
    let mut body = String::new();
    if let Err(e) = prometheus_text::encode(&mut body, registry) {
        return respond(&mut stream, "500 Internal Server Error", &format!("{e}\n")).await;
    }
    if method == "HEAD" {
        body.clear();
    }
    respond(&mut stream, "200 OK", &body).await
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        prometheus_text::CONTENT_TYPE,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `HOST:PORT` and path of an endpoint given as `http://HOST:PORT[/PATH]` or `HOST:PORT`
/// (path [`METRICS_PATH`] when none is given).
pub fn parse_endpoint(endpoint: &str) -> Result<(String, String), Error> {
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    if rest.is_empty() || endpoint.starts_with("https://") {
        return Err(Error::Invalid(format!(
            "metrics endpoint {endpoint:?}: expected http://HOST:PORT[/PATH] or HOST:PORT"
        )));
    }
    Ok(match rest.split_once('/') {
        Some((host, path)) if !path.is_empty() => (host.to_string(), format!("/{path}")),
        Some((host, _)) => (host.to_string(), METRICS_PATH.to_string()),
        None => (rest.to_string(), METRICS_PATH.to_string()),
    })
}

/// The body of a `GET` of `endpoint` (see [`parse_endpoint`]), within [`REQUEST_TIMEOUT`].
pub async fn scrape(endpoint: &str) -> Result<String, Error> {
    let (host, path) = parse_endpoint(endpoint)?;
    let fail = |e: &dyn std::fmt::Display| Error::Unavailable(format!("{endpoint}: {e}"));
    let fetch = async {
        let mut s = TcpStream::connect(&host).await.map_err(|e| fail(&e))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| fail(&e))?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_SCRAPE_BYTES as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| fail(&e))?;
        Ok::<_, Error>(raw)
    };
    let raw = tokio::time::timeout(REQUEST_TIMEOUT, fetch)
        .await
        .map_err(|_| fail(&"no answer in time"))??;
    let text = String::from_utf8(raw).map_err(|e| fail(&e))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail(&"not an HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(&status));
    }
    Ok(body.to_string())
}

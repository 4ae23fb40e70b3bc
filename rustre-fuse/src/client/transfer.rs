//! `put` and `get`: whole files between the cluster and any byte stream, through the same
//! handle operations as the mount (open or create, buffered writes, fsync, release), so the
//! write, sync and size-report protocol is the mount's, not a copy of it.

use std::sync::Arc;

use bytes::BytesMut;
use rustre_proto::msg::{Creds, Ino, LayoutSpec};
use rustre_proto::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Client;

/// Fewest bytes `put` and `get` move per call.
pub(super) const TRANSFER_CHUNK_MIN: usize = 1 << 20;
/// Most bytes `put` and `get` move per call.
pub(super) const TRANSFER_CHUNK_MAX: usize = 64 << 20;

/// What a transfer fails with: the local stream, or the cluster.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Local(std::io::Error),
    #[error("{0}")]
    Cluster(#[from] Error),
}

/// Bytes moved per call for a file with `row` bytes per stripe row (4 rows: every OST busy).
fn chunk_for(row: usize) -> usize {
    row.saturating_mul(4)
        .clamp(TRANSFER_CHUNK_MIN, TRANSFER_CHUNK_MAX)
}

impl Client {
    /// Copies `src` into file `name` of directory `parent`, created with `perm` and `layout`
    /// (the directory's default and the cluster's fill what `layout` leaves open), or
    /// truncated if it exists (its layout is then kept); data and size are on disk when this
    /// returns. Returns the bytes copied.
    #[allow(clippy::too_many_arguments)]
    pub async fn put<R: AsyncRead + Unpin>(
        self: &Arc<Self>,
        creds: &Creds,
        parent: Ino,
        name: &str,
        perm: u32,
        layout: Option<LayoutSpec>,
        src: &mut R,
    ) -> Result<u64, TransferError> {
        let flags = libc::O_WRONLY | libc::O_TRUNC;
        let opened = self
            .create_file(creds, parent, name, perm, flags, layout)
            .await?;
        let row = opened
            .attr
            .layout
            .as_ref()
            .map_or(0, |l| l.stripe_size as usize * l.stripe_count() as usize);
        let copied = self.copy_in(opened.fh, chunk_for(row), src).await;
        let released = self.release_file(opened.fh).await;
        let copied = copied?;
        released?;
        Ok(copied)
    }

    /// Writes all of `src` through handle `fh`, then fsyncs it.
    async fn copy_in<R: AsyncRead + Unpin>(
        self: &Arc<Self>,
        fh: u64,
        chunk: usize,
        src: &mut R,
    ) -> Result<u64, TransferError> {
        let mut offset = 0u64;
        loop {
            let mut buf = BytesMut::zeroed(chunk);
            let mut filled = 0;
            while filled < chunk {
                match src.read(&mut buf[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Err(TransferError::Local(e)),
                }
            }
            buf.truncate(filled);
            if filled > 0 {
                self.write_file(fh, offset, buf.freeze()).await?;
                offset += filled as u64;
            }
            if filled < chunk {
                break;
            }
        }
        self.fsync_file(fh).await?;
        Ok(offset)
    }

    /// Copies file `ino` to `dst`, as it is when opened. Returns the bytes copied.
    pub async fn get<W: AsyncWrite + Unpin>(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        dst: &mut W,
    ) -> Result<u64, TransferError> {
        let opened = self.open_file(creds, ino, libc::O_RDONLY).await?;
        let row = opened
            .attr
            .layout
            .as_ref()
            .map_or(0, |l| l.stripe_size as usize * l.stripe_count() as usize);
        let copied = self.copy_out(opened.fh, chunk_for(row), dst).await;
        let released = self.release_file(opened.fh).await;
        let copied = copied?;
        released?;
        Ok(copied)
    }

    /// Reads handle `fh` to its end into `dst`.
    async fn copy_out<W: AsyncWrite + Unpin>(
        self: &Arc<Self>,
        fh: u64,
        chunk: usize,
        dst: &mut W,
    ) -> Result<u64, TransferError> {
        let mut offset = 0u64;
        loop {
            let data = self.read_file(fh, offset, chunk).await?;
            if data.is_empty() {
                break;
            }
            dst.write_all(&data).await.map_err(TransferError::Local)?;
            offset += data.len() as u64;
        }
        dst.flush().await.map_err(TransferError::Local)?;
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_four_stripe_rows_within_bounds() {
        assert_eq!(chunk_for(0), TRANSFER_CHUNK_MIN);
        assert_eq!(chunk_for(1 << 20), 4 << 20);
        assert_eq!(chunk_for(256 << 20), TRANSFER_CHUNK_MAX);
    }
}

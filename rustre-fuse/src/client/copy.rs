//! `copy_file_range(2)` inside the client: the bytes go from the source's objects to the
//! destination's write-back buffer without crossing into the kernel and back 128 KiB at a
//! time, as the kernel's fallback (read and write through FUSE) would move them. `cp`
//! (coreutils 9) copies this way.
//!
//! A copy is the reads and writes it stands for: each chunk is read through the source's
//! handle (its buffered writes go out first, its atime moves, the page cache serves and
//! reads ahead) and written through the destination's (write-back, sizes, mtimes, quotas,
//! the file's limit), so what another reader sees is what those reads and writes would
//! give. The kernel has already refused what copy_file_range may not do (an O_APPEND
//! destination, overlapping ranges of one file, files of two mounts), cleared setid bits
//! of the destination, and drops its cached pages of the range after the answer. A copy
//! stops short at the source's end of file or at a short write, and answers how far it got;
//! an error after some bytes were copied answers those bytes (the caller's next call gets
//! the error), as a write does.

use std::sync::Arc;

use rustre_proto::Error;

use super::Client;

/// Most bytes one call copies (the FUSE answer is a u32; `cp` calls again for the rest).
pub const COPY_MAX_BYTES: u64 = 1 << 30;
/// Bytes read and then written at a time.
pub(super) const COPY_CHUNK_BYTES: u64 = 4 << 20;

impl Client {
    /// Copies up to `len` bytes at `offset_in` of handle `fh_in` to `offset_out` of handle
    /// `fh_out`; returns how many it copied (fewer at the source's end of file).
    pub async fn copy_range(
        self: &Arc<Self>,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> Result<u64, Error> {
        let len = len.min(COPY_MAX_BYTES);
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(COPY_CHUNK_BYTES);
            let step = async {
                let data = self
                    .read_file(fh_in, offset_in + done, want as usize)
                    .await?;
                let read = data.len() as u64;
                if read == 0 {
                    return Ok((0, 0));
                }
                let written = self
                    .write_file_as(fh_out, offset_out + done, data, false)
                    .await?;
                Ok::<_, Error>((read, written.len as u64))
            };
            match step.await {
                Ok((read, written)) => {
                    done += written;
                    if written < read || read < want {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(e) => {
                    tracing::debug!("copy_file_range stopped after {done} bytes: {e}");
                    break;
                }
            }
        }
        Ok(done)
    }
}

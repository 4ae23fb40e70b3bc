//! The workload's operations on the client library. Each keeps the model: a path becomes
//! unsure before its bytes start to change and known again only once fsync succeeded.

use bytes::Bytes;
use rustre_proto::msg::Ino;
use rustre_proto::Error;
use std::time::Duration;

use super::{name, Entry, Path, Workload};
use crate::rng::Rng;

/// Largest file the workload writes in one go.
const MAX_WRITE: u64 = 200 << 10;
/// Largest single write call.
const MAX_CHUNK: u64 = 64 << 10;
/// Chance (percent) that a writer waits before its fsync, up to [`MAX_FSYNC_DELAY`]: the
/// write-back sends the bytes meanwhile, and an OSS may lose them in a power cut before the
/// fsync (which must then give them again or fail).
const FSYNC_DELAY_PERCENT: u64 = 50;
const MAX_FSYNC_DELAY: Duration = Duration::from_secs(3);
/// Bytes asked per read call.
const READ_CHUNK: usize = 128 << 10;
/// Chance (percent) that a writer, once its fsync succeeded, writes the same range again
/// with other bytes and fsyncs again before it closes (as an editor saves twice, or a
/// database rewrites the pages it just committed). A copy that missed the first write (its
/// OSS stalled, `faults.rs`) is marked stale before the second, which only the other copy
/// takes; resync then refills it, and the first write, arriving late under the older
/// layout version, must be refused.
const REWRITE_PERCENT: u64 = 75;

impl Workload {
    pub(super) async fn create(&self, path: Path) -> Result<String, String> {
        let (d, f) = path;
        let data = {
            let mut st = self.st();
            let len = st.rng.below(MAX_WRITE + 1) as usize;
            st.rng.bytes(len)
        };
        let len = data.len();
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let opened = match self
            .client
            .create_file(&self.creds, self.dir(path), &name(f), 0o644, flags, None)
            .await
        {
            Ok(o) => o,
            Err(Error::Exists) => {
                self.violation(format!(
                    "create of d{d}/f{f}, which no acknowledged operation made, said EEXIST"
                ));
                return Err("EEXIST".into());
            }
            Err(e) => return Err(e.to_string()),
        };
        // From here the file exists whatever happens to its bytes.
        self.st().model.insert(path, Entry::Unsure);
        let (data, again) = self.write_all(opened.fh, 0, data).await?;
        self.st().model.insert(path, Entry::Known(data));
        Ok(format!("{len} bytes{again}"))
    }

    /// Writes `data` at `offset` in random chunks and fsyncs, sometimes writes the range again
    /// with other bytes the same way ([`REWRITE_PERCENT`]), closes. Ok only if every fsync
    /// succeeded (a failed close after them loses nothing), with the bytes left at `offset`
    /// and what the trace says of the rewrite.
    async fn write_all(
        &self,
        fh: u64,
        offset: u64,
        mut data: Vec<u8>,
    ) -> Result<(Vec<u8>, &'static str), String> {
        let mut result = self.write_synced(fh, offset, &data, false).await;
        let mut again = "";
        if result.is_ok() {
            if let Some(bytes) = self.rewrite_of(data.len()) {
                result = self.write_synced(fh, offset, &bytes, true).await;
                data = bytes;
                again = ", written twice";
            }
        }
        if let Err(e) = self.client.release_file(fh).await {
            self.trace(format!("close after the write: {e}"));
        }
        result.map(|()| (data, again))
    }

    /// Whether a writer of `len` bytes writes them again, and the new bytes.
    fn rewrite_of(&self, len: usize) -> Option<Vec<u8>> {
        let mut st = self.st();
        let r = &mut st.rewrites;
        (len > 0 && r.chance(REWRITE_PERCENT)).then(|| r.bytes(len))
    }

    /// Draws from the workload's stream, or from the rewrites' when `again`.
    fn draw<T>(&self, again: bool, f: impl FnOnce(&mut Rng) -> T) -> T {
        let mut st = self.st();
        f(if again { &mut st.rewrites } else { &mut st.rng })
    }

    /// Writes `data` at `offset` in random chunks, then fsyncs (after a pause, sometimes);
    /// `again`: a rewrite, whose chunks and pause come from the rewrites' stream.
    async fn write_synced(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
        again: bool,
    ) -> Result<(), String> {
        let (what, sync) = if again {
            ("rewrite", "fsync after the rewrite")
        } else {
            ("write", "fsync")
        };
        let mut at = 0usize;
        while at < data.len() {
            let chunk =
                (self.draw(again, |r| r.between(1, MAX_CHUNK)) as usize).min(data.len() - at);
            let piece = Bytes::copy_from_slice(&data[at..at + chunk]);
            let n = self
                .client
                .write_file(fh, offset + at as u64, piece)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            if n != chunk {
                return Err(format!("short write {n} of {chunk}"));
            }
            at += chunk;
        }
        let delay = self.draw(again, |r| {
            r.chance(FSYNC_DELAY_PERCENT)
                .then(|| r.below(MAX_FSYNC_DELAY.as_millis() as u64 + 1))
        });
        if let Some(ms) = delay {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.client
            .fsync_file(fh)
            .await
            .map_err(|e| format!("{sync}: {e}"))
    }

    pub(super) async fn lookup(&self, path: Path) -> Result<Ino, Error> {
        let a = self
            .client
            .lookup(&self.creds, self.dir(path), &name(path.1))
            .await?;
        Ok(a.ino)
    }

    pub(super) async fn overwrite(&self, path: Path) -> Result<String, String> {
        let Some(Entry::Known(mut data)) = self.st().model.get(&path).cloned() else {
            return Err("not known".into());
        };
        let ino = self.lookup(path).await.map_err(|e| e.to_string())?;
        let (offset, patch) = {
            let mut st = self.st();
            let offset = st.rng.below(data.len() as u64 + (16 << 10) + 1);
            let len = st.rng.between(1, 100 << 10) as usize;
            (offset, st.rng.bytes(len))
        };
        let len = patch.len();
        let opened = self
            .client
            .open_file(&self.creds, ino, libc::O_RDWR)
            .await
            .map_err(|e| format!("open: {e}"))?;
        self.st().model.insert(path, Entry::Unsure);
        let (patch, again) = self.write_all(opened.fh, offset, patch).await?;
        let end = offset as usize + len;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(&patch);
        self.st().model.insert(path, Entry::Known(data));
        Ok(format!("{len} bytes at {offset}{again}"))
    }

    pub(super) async fn rename(&self, from: Path, to: Path) -> Result<String, String> {
        if from == to {
            return Ok("onto itself: skipped".into());
        }
        let (td, tf) = to;
        self.client
            .rename(
                &self.creds,
                self.dir(from),
                &name(from.1),
                self.dir(to),
                &name(tf),
                0,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut st = self.st();
        let moved = st.model.remove(&from).expect("renamed a modelled file");
        st.model.insert(to, moved);
        Ok(format!("to d{td}/f{tf}"))
    }

    pub(super) async fn unlink(&self, path: Path) -> Result<String, String> {
        let (d, f) = path;
        let known = matches!(self.st().model.get(&path), Some(Entry::Known(_)));
        match self
            .client
            .unlink(&self.creds, self.dir(path), &name(f))
            .await
        {
            Ok(()) => {
                self.st().model.remove(&path);
                Ok(String::new())
            }
            Err(Error::NotFound) if !known => {
                self.st().model.remove(&path);
                Ok("was not there".into())
            }
            Err(Error::NotFound) => {
                self.violation(format!(
                    "acknowledged file d{d}/f{f} is gone (unlink: ENOENT)"
                ));
                self.st().model.remove(&path);
                Err("ENOENT".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) async fn read(&self, path: Path) -> Result<String, String> {
        let Some(Entry::Known(want)) = self.st().model.get(&path).cloned() else {
            return Err("not known".into());
        };
        let got = self.read_bytes(path).await.map_err(|e| e.to_string())?;
        self.compare(path, &want, &got);
        Ok(format!("{} bytes", got.len()))
    }

    /// The whole file as a fresh open reads it.
    pub(super) async fn read_bytes(&self, path: Path) -> Result<Vec<u8>, Error> {
        let ino = self.lookup(path).await?;
        let opened = self
            .client
            .open_file(&self.creds, ino, libc::O_RDONLY)
            .await?;
        let mut out = Vec::new();
        let result = loop {
            match self
                .client
                .read_file(opened.fh, out.len() as u64, READ_CHUNK)
                .await
            {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(e),
            }
        };
        let _ = self.client.release_file(opened.fh).await;
        result.map(|()| out)
    }

    /// A violation unless `got` is `want`.
    pub(super) fn compare(&self, path: Path, want: &[u8], got: &[u8]) {
        if want == got {
            return;
        }
        let (d, f) = path;
        let first = want
            .iter()
            .zip(got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        self.violation(format!(
            "d{d}/f{f} read back wrong: {} bytes, {} acknowledged, first difference at byte \
             {first}",
            got.len(),
            want.len()
        ));
    }
}

//! O_APPEND writes: the MDS decides where each one lands (`MdsOp::ReserveAppend`), so
//! appends through any number of clients never overlap (docs/mount.md, "Appends"). The
//! offset the kernel passes is its guess from the size it knows, and is ignored.

use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::Error;

use super::meta::check_layout;
use super::{unexpected, Client};

impl Client {
    /// Reserves `len` bytes at the end of open regular file `ino` for a write by `creds`;
    /// returns where to write them and how many fit (fewer at the size limit). The size
    /// this client knows stays where it was until the write is buffered (its caller's
    /// `Files::wrote`), so a read through this client never sees the range before its data.
    pub(super) async fn reserve_append(
        &self,
        creds: &Creds,
        ino: Ino,
        len: usize,
    ) -> Result<(u64, usize), Error> {
        let (known_size, truncate_version) = self.files.size_and_version(ino);
        let op = MdsOp::ReserveAppend {
            ino,
            len: len as u64,
            known_size,
            truncate_version,
        };
        match self.mds(creds, op).await? {
            MdsResponse::Reserved {
                offset,
                len: granted,
                mut attr,
            } => {
                check_layout(&attr)?;
                let granted = usize::try_from(granted)
                    .ok()
                    .filter(|g| *g <= len && offset.checked_add(*g as u64).is_some())
                    .ok_or_else(|| Error::Protocol(format!("MDS granted {granted} of {len}")))?;
                // Learned without the reserved bytes (a truncate version, the layout).
                attr.size = offset;
                self.merge_local(&mut attr);
                Ok((offset, granted))
            }
            r => Err(unexpected(r)),
        }
    }
}

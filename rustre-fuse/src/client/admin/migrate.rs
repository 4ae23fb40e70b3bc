//! TEMPORARY STUB of the lead's `migrate` API (brief-rebalance.md), so the rebalance branch
//! builds before main has it; removed when main's `migrate` is merged.

use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;

use super::Progress;
use crate::client::Client;

/// What a migration should make of a file's layout. `None`: keep the file's current value.
#[derive(Debug, Clone, Default)]
pub struct MigrateTarget {
    pub stripe_size: Option<u32>,
    pub stripe_count: Option<u32>,
    pub replicas: Option<u32>,
    /// Copy 0's OSTs, one per stripe (as `setstripe --ost`).
    pub osts: Option<Vec<u32>>,
    /// Every slot's OST, replica-major.
    pub slots: Option<Vec<u32>>,
}

impl Client {
    /// Moves file `ino` to the layout `target` asks for (stub: not supported yet).
    pub async fn migrate_file(
        &self,
        _ino: Ino,
        _target: &MigrateTarget,
        _progress: &dyn Progress,
    ) -> Result<Layout, Error> {
        Err(Error::NotSupported)
    }
}

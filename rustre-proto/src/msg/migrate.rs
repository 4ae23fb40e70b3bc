//! Messages of online migration (`rustre migrate`, `rustre rebalance`): moving a file's data
//! to a new layout while it is read and written (docs/migrate.md).
//!
//! The administrator's client drives it: `MdsOp::MigrateBegin` records the target layout at
//! the MDS and names its fresh slots (copies that need data); the client copies the file's
//! bytes into them while writers go on writing the old objects, repeating delta passes until
//! little changes; `MigrateStep::Freeze` then fences the old objects, the last delta is
//! copied, and `MigrateStep::Commit` makes the target the file's layout.

use serde::{Deserialize, Serialize};

use super::Layout;

/// What a migration makes of a file's layout. `None`: as the file has it now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateTarget {
    pub stripe_size: Option<u32>,
    pub stripe_count: Option<u32>,
    pub replicas: Option<u32>,
    /// Copy 0's OSTs, one per stripe (as `setstripe --ost`): the stripe count.
    pub osts: Option<Vec<u32>>,
    /// Every slot's OST, replica-major (as `Layout::osts`): what rebalance asks for, the
    /// current slots with some replaced. Its length must be stripes × copies.
    pub slots: Option<Vec<u32>>,
}

/// One step of a migration begun with `MigrateBegin`, named by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MigrateStep {
    /// Extends the migration's lease (while copying).
    Renew,
    /// Fences the old objects: from now on they refuse every write, and clients wait for
    /// the new layout. Refused when the file's layout changed since the migration began.
    Freeze,
    /// Makes the target the file's layout (after a freeze); the old objects the target does
    /// not keep are deleted once no writer has the file open.
    Commit,
    /// Gives the migration up: the file keeps its layout, the fresh objects are deleted.
    Abort,
}

/// The answer to `MigrateBegin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigratePlan {
    /// Names the migration in its steps.
    pub token: u64,
    /// The file's layout now (the copy source).
    pub from: Layout,
    /// The layout it will have (its version is set at commit).
    pub to: Layout,
    /// Slots of `to` that need the file's data copied in (the others are copies `from`
    /// already has, kept as they are).
    pub fresh: Vec<u32>,
}

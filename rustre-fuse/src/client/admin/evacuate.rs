//! `evacuate`: every copy on an OST gone for good moved to other OSTs (the MDS picks them;
//! resync fills them from the other copies).

use rustre_proto::msg::Ino;
use rustre_proto::Error;

use super::Progress;
use crate::client::Client;

/// What an evacuation did.
#[derive(Debug, Default)]
pub struct EvacuateReport {
    /// Files whose copies on the OST were moved.
    pub moved: usize,
    /// Files that could not be moved (their only copy was there, or the MDS refused), and why.
    pub lost: Vec<(Ino, Error)>,
}

impl Client {
    /// Moves every copy on OST `ost` to other OSTs, telling `progress` of each file seen.
    pub async fn evacuate(
        &self,
        ost: u32,
        progress: &dyn Progress,
    ) -> Result<EvacuateReport, Error> {
        progress.phase("namespace walk", 0);
        let files = self.walk_files().await?;
        let mut report = EvacuateReport::default();
        progress.phase("files", files.len() as u64);
        for a in files.values() {
            progress.advance(1);
            let Some(l) = &a.layout else { continue };
            if !l.osts.contains(&ost) {
                continue;
            }
            match self.move_copies(a.ino, ost).await {
                Ok(()) => report.moved += 1,
                // Not the administrator: every file would be refused alike.
                Err(e @ Error::Denied(_)) => return Err(e),
                Err(e) => report.lost.push((a.ino, e)),
            }
        }
        Ok(report)
    }
}

//! The instance of an OST served from a directory (its write verifier, docs/replication.md,
//! "Write verifiers"): the same across restarts of the OSS process within one boot of the
//! host, new after a reboot or on another disk.
//!
//! An OSS acknowledges a write once `pwrite` put the bytes (and their checksums) in the
//! kernel's page cache. The death of the process (kill -9, a panic, the OOM killer, an
//! upgrade) loses nothing of that: the kernel still holds the bytes and writes them back. Only
//! the death of the kernel (a power cut, a crash, a reboot) loses acknowledged but unsynced
//! writes. So an instance that changed on every process start made a client count a mere
//! process restart as lost writes: a file written, closed, then fsync'd through a new open
//! (`cp f dst && sync dst`), whose kept changes went at the close, failed with EIO.
//!
//! `DIR/ost.instance` records the kernel's boot id (`/proc/sys/kernel/random/boot_id`), the
//! disk's UUID and the instance. A start in the same boot on the same disk takes the recorded
//! instance; any other start makes a new one and records it durably before serving. A host
//! whose boot id cannot be read gets a new instance on every start (the safe side).
//! An OSS in the test mode that keeps unsynced writes in its own memory
//! (`RUSTRE_TEST_VOLATILE_WRITES=1`) does not use this: there the process's death is a power
//! cut, and every start is a new instance.

use std::path::Path;

use rustre_proto::msg::mgs::OstUuid;
use serde::{Deserialize, Serialize};

use crate::records::{self, RecordError};

/// Name of the instance file in an OST directory.
pub(crate) const INSTANCE_FILE: &str = "ost.instance";
/// Magic of the instance file, format 1.
const INSTANCE_MAGIC: [u8; 8] = *b"RSTRINS\x01";
/// Where Linux publishes the id of the running boot, new on every boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// What the instance file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordedInstance {
    boot: String,
    disk: OstUuid,
    instance: u64,
}

/// The id of the running boot of this host, `None` when it cannot be read.
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string(BOOT_ID_PATH).ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The instance to serve the OST in `dir` (whose disk is `disk`) with, starting now: the one
/// recorded in this boot for this disk, else `fresh` (which must differ from any earlier
/// one), recorded. An unreadable or damaged file is replaced (a new instance is always safe).
pub(crate) fn instance_of_this_boot(
    dir: &Path,
    disk: OstUuid,
    fresh: u64,
) -> Result<u64, RecordError> {
    instance_for_boot(dir, disk, boot_id(), fresh)
}

fn instance_for_boot(
    dir: &Path,
    disk: OstUuid,
    boot: Option<String>,
    fresh: u64,
) -> Result<u64, RecordError> {
    let Some(boot) = boot else {
        return Ok(fresh);
    };
    let path = dir.join(INSTANCE_FILE);
    match records::read_record::<RecordedInstance>(&path, INSTANCE_MAGIC) {
        Ok(Some(r)) if r.boot == boot && r.disk == disk && r.instance != 0 => return Ok(r.instance),
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}: a new OST instance is made"),
    }
    let record = RecordedInstance {
        boot,
        disk,
        instance: fresh,
    };
    records::write_record(dir, INSTANCE_FILE, INSTANCE_MAGIC, &record)?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn one_boot_one_disk_keeps_its_instance_and_anything_else_gets_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let disk = OstUuid([7; 16]);
        let first = instance_for_boot(dir.path(), disk, boot("a"), 100).unwrap();
        assert_eq!(first, 100);
        assert_eq!(
            instance_for_boot(dir.path(), disk, boot("a"), 200).unwrap(),
            100,
            "a process restart in the same boot keeps the instance"
        );
        assert_eq!(
            instance_for_boot(dir.path(), disk, boot("b"), 300).unwrap(),
            300,
            "a reboot makes a new instance"
        );
        assert_eq!(
            instance_for_boot(dir.path(), disk, boot("b"), 400).unwrap(),
            300,
            "and records it"
        );
        assert_eq!(
            instance_for_boot(dir.path(), OstUuid([8; 16]), boot("b"), 500).unwrap(),
            500,
            "another disk makes a new instance"
        );
        assert_eq!(
            instance_for_boot(dir.path(), disk, None, 600).unwrap(),
            600,
            "no boot id: a new instance every start"
        );
    }

    #[test]
    fn a_damaged_instance_file_is_replaced_by_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let disk = OstUuid([1; 16]);
        instance_for_boot(dir.path(), disk, boot("a"), 10).unwrap();
        std::fs::write(dir.path().join(INSTANCE_FILE), b"garbage").unwrap();
        assert_eq!(
            instance_for_boot(dir.path(), disk, boot("a"), 20).unwrap(),
            20
        );
        assert_eq!(
            instance_for_boot(dir.path(), disk, boot("a"), 30).unwrap(),
            20
        );
    }

    #[test]
    fn this_host_has_a_boot_id() {
        let id = boot_id().expect("Linux publishes a boot id");
        assert_eq!(id.len(), 36, "a UUID: {id}");
    }
}

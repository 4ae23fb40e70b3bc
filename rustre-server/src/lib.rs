//! # rustre-server — the three server roles
//!
//! ## Layout
//! - [`meta`]: the transactional metadata KV trait and its backends (embedded fjall, FDB).
//! - [`local`]: a whole single-node cluster in one process.
//! - [`mds`]: the metadata service — namespace, inodes, opens, sessions.
//! - [`metrics`]: the servers' Prometheus metrics (off unless `--metrics-listen`).
//! - [`mgs`]: the management service — registry, heartbeats, cluster map.
//! - [`oss`]: the object storage service — objects in plain files, served with `sendfile`.
//! - [`space`]: the free space the MDS and the OSTs keep on their disks (full disks).

pub mod checks;
pub mod local;
pub mod mds;
pub mod meta;
pub mod metrics;
pub mod mgs;
pub mod oss;
pub mod records;
pub mod schema;
pub mod space;
#[cfg(test)]
mod test_cluster;

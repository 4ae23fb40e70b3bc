//! The client's Prometheus metrics (docs/operations.md, "Metrics"; a mount serves them with
//! `-o metrics=ADDR`): what applications read and wrote, the page cache's hits and misses,
//! write-back bytes and stalls. One set per process, registered by [`enable`] together with
//! the client-side RPC metrics of `rustre_proto::metrics` (calls to the MDS and OSSs per
//! operation, retries, reconnects).
//!
//! Off until [`enable`] runs: [`get`] is `None` and every hot path pays one atomic load.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustre_proto::metrics::{enable_rpc_client, latency_histogram};

/// Every client metric of the process.
#[derive(Debug, Default)]
pub struct ClientMetrics {
    /// Bytes applications read through the client.
    pub read_bytes: Counter,
    /// Bytes applications wrote through the client.
    pub write_bytes: Counter,
    /// Writes that reached the client (one per FUSE write request: with the kernel's
    /// write-back cache, `-o writeback_cache`, one per batch of pages the kernel sends).
    pub write_calls: Counter,
    /// Page-cache pages found in the cache (or already being fetched).
    pub cache_hits: Counter,
    /// Page-cache pages fetched from the OSTs for a read.
    pub cache_misses: Counter,
    /// Reads that bypassed the page cache (a random read over two blocks, cache off).
    pub cache_bypassed: Counter,
    /// Opens that started reading their small file before the MDS answered.
    pub open_prefetches: Counter,
    /// Of those, the reads the open's answer let stand (the rest were dropped).
    pub open_prefetches_kept: Counter,
    /// Directory opens answered with the first page a previous open of it fetched.
    pub first_pages_reused: Counter,
    /// Directories opened ahead of a tree walker (`client/dirs_ahead.rs`).
    pub dirs_opened_ahead: Counter,
    /// Unlinks answered before the MDS answered (`client/async_dirops.rs`).
    pub unlinks_ahead: Counter,
    /// Renames answered before the MDS answered.
    pub renames_ahead: Counter,
    /// Opens for reading answered before the MDS answered (`client/open_ahead.rs`).
    pub opens_ahead: Counter,
    /// Of those unlinks, renames and opens, the ones the MDS then refused (the names
    /// stayed; the open's handle fails with EIO).
    pub dirops_ahead_failed: Counter,
    /// Metadata calls that waited for changes answered ahead to be answered by the MDS.
    pub dirops_ahead_waits: Counter,
    /// Changes answered ahead that went to the MDS in a batch of more than one
    /// (`client/dirops_send.rs`).
    pub dirops_ahead_batched: Counter,
    /// Waited calls (an rmdir, a listing, a lookup) sent behind changes answered ahead in
    /// their batches instead of waiting for them to be answered first.
    pub calls_behind_dirops: Counter,
    /// Lookups the kernel sent (a path walk through a name it did not hold, or whose
    /// entry TTL lapsed: `client/kernel_names.rs`).
    pub kernel_lookups: Counter,
    /// Bytes sent to the OSTs by write-back.
    pub writeback_bytes: Counter,
    /// Writers that had to wait for room in the write-back budget or for sends in flight.
    pub writeback_stalls: Counter,
    stall_seconds: OnceLock<Histogram>,
}

static METRICS: OnceLock<ClientMetrics> = OnceLock::new();

/// The process's client metrics, `None` while metrics are off.
pub fn get() -> Option<&'static ClientMetrics> {
    METRICS.get()
}

impl ClientMetrics {
    /// Records a writer's stall of `took`.
    pub fn stalled(&self, took: Duration) {
        self.writeback_stalls.inc();
        self.stall_seconds
            .get_or_init(latency_histogram)
            .observe(took.as_secs_f64());
    }
}

/// Turns the client metrics on for the whole process and registers them (with the
/// client-side RPC metrics) in `registry`.
pub fn enable(registry: &mut Registry) {
    enable_rpc_client(registry);
    let m = METRICS.get_or_init(ClientMetrics::default);
    let r = registry;
    r.register(
        "rustre_client_read_bytes",
        "Bytes applications read through this client",
        m.read_bytes.clone(),
    );
    r.register(
        "rustre_client_write_bytes",
        "Bytes applications wrote through this client",
        m.write_bytes.clone(),
    );
    r.register(
        "rustre_client_write_calls",
        "Writes that reached this client (FUSE write requests)",
        m.write_calls.clone(),
    );
    r.register(
        "rustre_client_cache_hits",
        "Page-cache pages a read found cached (or already being fetched)",
        m.cache_hits.clone(),
    );
    r.register(
        "rustre_client_cache_misses",
        "Page-cache pages a read had to fetch from the OSTs",
        m.cache_misses.clone(),
    );
    r.register(
        "rustre_client_cache_bypassed_reads",
        "Reads that went straight to the OSTs (a random read over two blocks, cache off)",
        m.cache_bypassed.clone(),
    );
    r.register(
        "rustre_client_open_prefetches",
        "Opens that started reading their small file while the MDS checked the open",
        m.open_prefetches.clone(),
    );
    r.register(
        "rustre_client_open_prefetches_kept",
        "Reads started by opens that the open's answer let stand",
        m.open_prefetches_kept.clone(),
    );
    r.register(
        "rustre_client_dir_first_pages_reused",
        "Directory opens answered with the first page the previous open of it fetched",
        m.first_pages_reused.clone(),
    );
    r.register(
        "rustre_client_dirs_opened_ahead",
        "Directories opened ahead of a tree walker, their first page kept for its open",
        m.dirs_opened_ahead.clone(),
    );
    r.register(
        "rustre_client_unlinks_ahead",
        "Unlinks answered before the MDS answered (the cache knew the outcome)",
        m.unlinks_ahead.clone(),
    );
    r.register(
        "rustre_client_renames_ahead",
        "Renames within a directory answered before the MDS answered",
        m.renames_ahead.clone(),
    );
    r.register(
        "rustre_client_opens_ahead",
        "Opens for reading of files this client vouches for, answered before the MDS answered",
        m.opens_ahead.clone(),
    );
    r.register(
        "rustre_client_dirops_ahead_waits",
        "Metadata calls that waited for unlinks and renames answered ahead to be answered",
        m.dirops_ahead_waits.clone(),
    );
    r.register(
        "rustre_client_dirops_ahead_failed",
        "Unlinks, renames and opens answered ahead that the MDS then refused (logged)",
        m.dirops_ahead_failed.clone(),
    );
    r.register(
        "rustre_client_dirops_ahead_batched",
        "Changes answered ahead sent to the MDS in a batch of more than one",
        m.dirops_ahead_batched.clone(),
    );
    r.register(
        "rustre_client_calls_behind_dirops",
        "Waited calls sent behind changes answered ahead instead of waiting for their answers",
        m.calls_behind_dirops.clone(),
    );
    r.register(
        "rustre_client_kernel_lookups",
        "Lookups the kernel sent (names it did not hold, or whose entry TTL lapsed)",
        m.kernel_lookups.clone(),
    );
    r.register(
        "rustre_client_writeback_bytes",
        "Bytes write-back sent to the OSTs in the background",
        m.writeback_bytes.clone(),
    );
    r.register(
        "rustre_client_writeback_stalls",
        "Writes that waited for room in the write-back budget or for sends in flight",
        m.writeback_stalls.clone(),
    );
    r.register(
        "rustre_client_writeback_stall_seconds",
        "How long a stalled write waited",
        m.stall_seconds.get_or_init(latency_histogram).clone(),
    );
}

//! The servers' Prometheus metrics (docs/operations.md, "Metrics"): one set per process,
//! shared by every role it runs (`rustre local` runs them all), registered by [`enable`]
//! and served by `rustre_proto::metrics::http`.
//!
//! Off until [`enable`] runs: [`get`] is `None` and the hot paths (RPC dispatch, OST
//! reads and writes, group commit) pay one atomic load. On, they pay a label lookup and
//! atomic increments or a histogram observe. Gauges read from the metadata store (sessions,
//! backlogs) are refreshed by an MDS task every [`STORE_GAUGE_INTERVAL`], only while on.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rustre_proto::frame::Service;
use rustre_proto::metrics::{enable_rpc_client, latency_histogram, CallHelp, CallMetrics};
use rustre_proto::Error;

pub use rustre_proto::metrics::op_name;

/// How often an MDS recounts the gauges it reads from the store.
pub const STORE_GAUGE_INTERVAL: Duration = Duration::from_secs(2);
/// Most rows counted for one store gauge: a larger backlog reads as this.
pub const STORE_GAUGE_MAX_ROWS: usize = 100_000;
/// Group-commit batch buckets: 1, 2, 4, ... 4096 callers per sync.
const BATCH_BUCKETS: u16 = 13;

/// Labels of what is counted per OST.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OstLabels {
    pub ost: u32,
}

/// Labels of a request an OST refused: the OST and why (`fenced`, `old_epoch`, `stale`,
/// `unavailable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub ost: u32,
    pub reason: &'static str,
}

/// Every server metric of the process.
#[derive(Debug)]
pub struct ServerMetrics {
    requests: CallMetrics,
    ost_read_bytes: Family<OstLabels, Counter>,
    ost_write_bytes: Family<OstLabels, Counter>,
    ost_reads: Family<OstLabels, Counter>,
    ost_writes: Family<OstLabels, Counter>,
    ost_refused: Family<RefusedLabels, Counter>,
    commit_batch: Histogram,
    commit_fsync: Histogram,
    /// Live client sessions in the MDS's store.
    pub sessions: Gauge,
    /// Files with stale copies waiting for resync.
    pub resync_backlog: Gauge,
    /// Destroyed inodes whose objects are not all deleted yet.
    pub destroy_backlog: Gauge,
    /// Sessions ended because their lease ran out.
    pub sessions_expired: Counter,
    /// Files whose data went to the MDS at their close (`MdsOp::CloseInline` kept).
    pub inline_closes: Counter,
    /// Files whose data moved from the MDS to their objects (`mds::inline`).
    pub inline_spills: Counter,
    /// Directory capabilities granted (`mds::dir_caps`).
    pub dir_caps_granted: Counter,
    /// Requests that waited for directory capabilities to come back.
    pub dir_cap_waits: Counter,
    /// Directory capabilities taken back because their holder did not give them back.
    pub dir_caps_taken: Counter,
}

static METRICS: OnceLock<ServerMetrics> = OnceLock::new();

/// The process's server metrics, `None` while metrics are off.
pub fn get() -> Option<&'static ServerMetrics> {
    METRICS.get()
}

/// Turns server metrics on for the whole process and registers them (with the client-side
/// RPC metrics, which servers calling servers use) in `registry`.
pub fn enable(registry: &mut Registry) {
    enable_rpc_client(registry);
    let m = METRICS.get_or_init(|| ServerMetrics {
        requests: CallMetrics::default(),
        ost_read_bytes: Family::default(),
        ost_write_bytes: Family::default(),
        ost_reads: Family::default(),
        ost_writes: Family::default(),
        ost_refused: Family::default(),
        commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, BATCH_BUCKETS)),
        commit_fsync: latency_histogram(),
        sessions: Gauge::default(),
        resync_backlog: Gauge::default(),
        destroy_backlog: Gauge::default(),
        sessions_expired: Counter::default(),
        inline_closes: Counter::default(),
        inline_spills: Counter::default(),
        dir_caps_granted: Counter::default(),
        dir_cap_waits: Counter::default(),
        dir_caps_taken: Counter::default(),
    });
    let r = registry;
    m.requests.register(
        r,
        "rustre_server",
        CallHelp {
            requests: "Requests a server answered, by service and operation",
            errors: "Requests a server answered with an error, by service and operation",
            duration: "Time a server took to answer a request, by service and operation",
        },
    );
    r.register(
        "rustre_ost_read_bytes",
        "Object bytes an OST returned to reads",
        m.ost_read_bytes.clone(),
    );
    r.register(
        "rustre_ost_write_bytes",
        "Object bytes an OST was sent in writes and repairs",
        m.ost_write_bytes.clone(),
    );
    r.register(
        "rustre_ost_reads",
        "Read requests an OST served",
        m.ost_reads.clone(),
    );
    r.register(
        "rustre_ost_writes",
        "Write and repair requests an OST served",
        m.ost_writes.clone(),
    );
    r.register(
        "rustre_ost_refused",
        "Requests an OST refused: fenced (lease lost), old_epoch (caller's map too old), \
         stale (older layout version), unavailable (disk not accepted)",
        m.ost_refused.clone(),
    );
    r.register(
        "rustre_mds_group_commit_batch_size",
        "Callers one metadata-store sync made durable at once",
        m.commit_batch.clone(),
    );
    r.register(
        "rustre_mds_group_commit_fsync_seconds",
        "Duration of one metadata-store sync (fsync)",
        m.commit_fsync.clone(),
    );
    r.register(
        "rustre_mds_sessions",
        "Client sessions live in the metadata store",
        m.sessions.clone(),
    );
    r.register(
        "rustre_mds_resync_backlog",
        "Files with stale copies waiting for resync",
        m.resync_backlog.clone(),
    );
    r.register(
        "rustre_mds_destroy_backlog",
        "Removed files whose objects are not all deleted from the OSTs yet",
        m.destroy_backlog.clone(),
    );
    r.register(
        "rustre_mds_sessions_expired",
        "Client sessions ended because their lease ran out",
        m.sessions_expired.clone(),
    );
    r.register(
        "rustre_mds_dir_caps_granted",
        "Directory capabilities granted with a mkdir",
        m.dir_caps_granted.clone(),
    );
    r.register(
        "rustre_mds_dir_cap_waits",
        "Requests that waited for directory capabilities to be recalled",
        m.dir_cap_waits.clone(),
    );
    r.register(
        "rustre_mds_dir_caps_taken",
        "Directory capabilities taken back because their holder did not give them back in time",
        m.dir_caps_taken.clone(),
    );
    r.register(
        "rustre_mds_inline_closes",
        "Files whose bytes the MDS kept in its store at their close (data on the MDS)",
        m.inline_closes.clone(),
    );
    r.register(
        "rustre_mds_inline_spills",
        "Files whose bytes moved from the MDS's store to their objects (a write open)",
        m.inline_spills.clone(),
    );
}

impl ServerMetrics {
    /// Counts one answered request of `op` to `service`, started at `start`.
    pub fn request(&self, service: Service, op: &'static str, start: Instant, ok: bool) {
        self.requests.record(service, op, start, ok);
    }

    /// Counts a read of OST `ost` that returned `bytes`.
    pub fn ost_read(&self, ost: u32, bytes: usize) {
        let l = OstLabels { ost };
        self.ost_reads.get_or_create(&l).inc();
        self.ost_read_bytes.get_or_create(&l).inc_by(bytes as u64);
    }

    /// Counts a write (or repair) of `bytes` to OST `ost`.
    pub fn ost_write(&self, ost: u32, bytes: usize) {
        let l = OstLabels { ost };
        self.ost_writes.get_or_create(&l).inc();
        self.ost_write_bytes.get_or_create(&l).inc_by(bytes as u64);
    }

    /// Counts a request OST `ost` refused with `e`, if `e` is a refusal counted.
    pub fn ost_refused(&self, ost: u32, e: &Error) {
        let reason = match e {
            Error::Fenced(_) => "fenced",
            Error::OldEpoch { .. } => "old_epoch",
            Error::Stale => "stale",
            Error::Unavailable(_) => "unavailable",
            _ => return,
        };
        self.ost_refused
            .get_or_create(&RefusedLabels { ost, reason })
            .inc();
    }

    /// Makes OST `ost` show in every per-OST family (at 0) before its first request.
    pub fn ost_known(&self, ost: u32) {
        let l = OstLabels { ost };
        for f in [
            &self.ost_reads,
            &self.ost_read_bytes,
            &self.ost_writes,
            &self.ost_write_bytes,
        ] {
            drop(f.get_or_create(&l));
        }
    }

    /// Records one metadata-store sync that served `batch` callers and took `took`.
    pub fn group_commit(&self, batch: u64, took: Duration) {
        self.commit_batch.observe(batch as f64);
        self.commit_fsync.observe(took.as_secs_f64());
    }
}

//! Prometheus metrics, the part every process shares (docs/operations.md, "Metrics"): the
//! latency buckets, the name of a request's operation for labels, the client side of RPC
//! (calls, latency, retries and reconnects of whoever calls a server: mounts, and an MDS
//! calling OSSs) in [`RpcClientMetrics`], and the HTTP endpoint that serves a registry as
//! Prometheus text ([`http`]).
//!
//! Metrics are off until a process turns them on ([`enable_rpc_client`], done by
//! [`http::listen`]'s callers before they serve): until then [`rpc_client`] is `None` and
//! every hot path pays one atomic load. Turned on, a hot path pays a label lookup (a read
//! lock) and atomic increments or a histogram observe.

pub mod http;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::frame::Service;

/// Lowest upper bound of the latency histograms, in seconds (50 µs).
pub const LATENCY_BUCKET_START_SECS: f64 = 50e-6;
/// Latency buckets, each twice the one before: 50 µs up to about 13 s, then `+Inf`.
pub const LATENCY_BUCKETS: u16 = 19;
/// The label value of an operation whose name cannot be told (not an enum variant).
pub const UNKNOWN_OP: &str = "unknown";

/// A histogram of durations in seconds with the shared buckets.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        LATENCY_BUCKET_START_SECS,
        2.0,
        LATENCY_BUCKETS,
    ))
}

/// The constructor of latency histograms in a [`Family`].
pub type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A family of latency histograms with the shared buckets.
pub fn latency_family<L>() -> LatencyFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

/// The variant name of an operation enum (`Lookup`, `Write`, ...), for a label: no
/// allocation, the fields are not looked at.
pub fn op_name<T: Serialize>(op: &T) -> &'static str {
    serde_variant::to_variant_name(op).unwrap_or(UNKNOWN_OP)
}

/// The label value of a service.
pub fn service_name(s: Service) -> &'static str {
    match s {
        Service::Mgs => "mgs",
        Service::Mds => "mds",
        Service::Oss => "oss",
    }
}

/// Labels of a call: the service called and the operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: &'static str,
    pub op: &'static str,
}

/// Labels of what is counted per service only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: &'static str,
}

/// Calls of some kind counted by service and operation: how many, how many failed, and how
/// long each took. Servers count the requests they answer with one, the RPC client the
/// calls it makes with another.
#[derive(Debug)]
pub struct CallMetrics {
    requests: Family<CallLabels, Counter>,
    errors: Family<CallLabels, Counter>,
    duration: LatencyFamily<CallLabels>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        CallMetrics {
            requests: Family::default(),
            errors: Family::default(),
            duration: latency_family(),
        }
    }
}

/// The help texts of a [`CallMetrics`]' three families, in registration order.
pub struct CallHelp {
    pub requests: &'static str,
    pub errors: &'static str,
    pub duration: &'static str,
}

impl CallMetrics {
    /// Registers the families as `{prefix}_requests`, `{prefix}_errors` and
    /// `{prefix}_request_duration_seconds`.
    pub fn register(&self, registry: &mut Registry, prefix: &str, help: CallHelp) {
        registry.register(
            format!("{prefix}_requests"),
            help.requests,
            self.requests.clone(),
        );
        registry.register(format!("{prefix}_errors"), help.errors, self.errors.clone());
        registry.register(
            format!("{prefix}_request_duration_seconds"),
            help.duration,
            self.duration.clone(),
        );
    }

    /// Counts one finished call of `op` to `service` that started at `start`.
    pub fn record(&self, service: Service, op: &'static str, start: Instant, ok: bool) {
        let labels = CallLabels {
            service: service_name(service),
            op,
        };
        self.requests.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
    }
}

/// The client side of RPC, one set per process.
#[derive(Debug)]
pub struct RpcClientMetrics {
    calls: CallMetrics,
    retries: Family<ServiceLabels, Counter>,
    reconnects: Family<ServiceLabels, Counter>,
}

static RPC_CLIENT: OnceLock<RpcClientMetrics> = OnceLock::new();

/// The process's client-side RPC metrics, `None` while metrics are off.
pub fn rpc_client() -> Option<&'static RpcClientMetrics> {
    RPC_CLIENT.get()
}

/// Turns the client-side RPC metrics on (once per process; later calls register the same
/// metrics again) and registers them in `registry`.
pub fn enable_rpc_client(registry: &mut Registry) {
    let m = RPC_CLIENT.get_or_init(|| RpcClientMetrics {
        calls: CallMetrics::default(),
        retries: Family::default(),
        reconnects: Family::default(),
    });
    m.calls.register(
        registry,
        "rustre_rpc_client",
        CallHelp {
            requests: "Calls this process made to a server, by service and operation",
            errors: "Calls this process made that failed (error answer or transport), by service and operation",
            duration: "Time from sending a call to its answer, by service and operation",
        },
    );
    registry.register(
        "rustre_rpc_client_retries",
        "Calls made again after a transient failure or an old cluster-map epoch, by service",
        m.retries.clone(),
    );
    registry.register(
        "rustre_rpc_client_reconnects",
        "Pooled connections opened again after the previous one closed, by service",
        m.reconnects.clone(),
    );
}

impl RpcClientMetrics {
    /// Counts one finished call of `op` to `service` that started at `start`.
    pub fn call(&self, service: Service, op: &'static str, start: Instant, ok: bool) {
        self.calls.record(service, op, start, ok);
    }

    /// Counts one call made again.
    pub fn retry(&self, service: Service) {
        self.retries
            .get_or_create(&ServiceLabels {
                service: service_name(service),
            })
            .inc();
    }

    /// Counts one connection opened again.
    pub fn reconnect(&self, service: Service) {
        self.reconnects
            .get_or_create(&ServiceLabels {
                service: service_name(service),
            })
            .inc();
    }
}

/// Counts a retry if metrics are on.
pub fn client_retry(service: Service) {
    if let Some(m) = rpc_client() {
        m.retry(service);
    }
}

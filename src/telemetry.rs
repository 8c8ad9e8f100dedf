//! faultline's own metrics, served as Prometheus text at `GET /metrics`.
//!
//! Every receiver reports through the same counters (labelled by receiver),
//! so accepted and refused spans read the same everywhere.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::graph::pairing::PairingCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabel {
    pub receiver: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabel {
    pub exporter: &'static str,
    pub stream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

pub struct Telemetry {
    registry: Registry,
    accepted: Family<ReceiverLabel, Counter>,
    refused: Family<ReceiverLabel, Counter>,
    bad_requests: Family<ReceiverLabel, Counter>,
    request_seconds: Family<ReceiverLabel, Histogram, fn() -> Histogram>,
    pairing: Family<OutcomeLabel, Gauge<u64, AtomicU64>>,
    graph_size: Family<OutcomeLabel, Gauge<u64, AtomicU64>>,
    exported: Family<ExporterLabel, Counter>,
    export_dropped: Family<ExporterLabel, Counter>,
    export_buffered: Family<ExporterLabel, Gauge<u64, AtomicU64>>,
    memory_refused: Family<ReceiverLabel, Counter>,
    memory: Family<MemoryLabel, Gauge<u64, AtomicU64>>,
    memory_refusing: Gauge<u64, AtomicU64>,
    traces_skipped: Gauge<u64, AtomicU64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabel {
    pub value: &'static str,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("faultline");
        let t = Telemetry {
            accepted: Family::default(),
            refused: Family::default(),
            bad_requests: Family::default(),
            request_seconds: Family::new_with_constructor(request_histogram),
            pairing: Family::default(),
            graph_size: Family::default(),
            exported: Family::default(),
            export_dropped: Family::default(),
            export_buffered: Family::default(),
            memory_refused: Family::default(),
            memory: Family::default(),
            memory_refusing: Gauge::default(),
            traces_skipped: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "receiver_accepted_spans",
            "Spans accepted, by receiver",
            t.accepted.clone(),
        );
        registry.register(
            "receiver_refused_spans",
            "Spans refused as invalid (missing ids, bad times), by receiver",
            t.refused.clone(),
        );
        registry.register(
            "receiver_bad_requests",
            "Requests refused whole (malformed, oversized), by receiver",
            t.bad_requests.clone(),
        );
        registry.register(
            "receiver_request_duration_seconds",
            "Time a receiver's handler spent on each export request, from its first poll to its reply: reading the body, decoding, handing the spans to the graph (waiting while the graph is behind); the wait in the runtime's queue before and the socket write after are not in it; by receiver",
            t.request_seconds.clone(),
        );
        registry.register(
            "pairing_spans",
            "Pairing store: pending spans now, and totals by outcome (paired, expired_to_virtual, expired_client, expired_server, dropped)",
            t.pairing.clone(),
        );
        registry.register(
            "graph_size",
            "Distinct nodes, edges and operations in the graph",
            t.graph_size.clone(),
        );
        registry.register(
            "exporter_sent_records",
            "Records an exporter delivered (acknowledged by Kafka, written to a file), by exporter and stream",
            t.exported.clone(),
        );
        registry.register(
            "exporter_dropped_records",
            "Records an exporter gave up on (buffer full, broker refused), by exporter and stream",
            t.export_dropped.clone(),
        );
        registry.register(
            "exporter_buffered_records",
            "Records waiting in an exporter's buffer, by exporter",
            t.export_buffered.clone(),
        );
        registry.register(
            "memory_limiter_refused_requests",
            "Requests refused whole with a retry delay (gRPC RESOURCE_EXHAUSTED, HTTP 429) because memory was over the soft limit, by receiver",
            t.memory_refused.clone(),
        );
        registry.register(
            "memory_limiter_bytes",
            "Memory limiter: memory in use at the last check (used: RSS below the soft limit, RSS less lazily freed pages at or over it), its soft and hard limits, in bytes",
            t.memory.clone(),
        );
        registry.register(
            "memory_limiter_refusing",
            "1 while the memory limiter refuses requests, else 0",
            t.memory_refusing.clone(),
        );
        registry.register(
            "trace_assembly_skipped_spans",
            "Spans left out of trace assembly (paths, clusters, retries) because traces.max_traces traces or traces.max_open_spans span records were open in their shard, or because their trace was outside the sample a shard takes while short of that room; they still count in nodes and edges",
            t.traces_skipped.clone(),
        );
        Telemetry { registry, ..t }
    }

    /// Requests the memory limiter refused, by receiver.
    pub fn memory_refused(&self, receiver: &'static str) {
        self.memory_refused
            .get_or_create(&ReceiverLabel { receiver })
            .inc();
    }

    /// Refusals so far for one receiver (tests read this).
    pub fn memory_refused_total(&self, receiver: &'static str) -> u64 {
        self.memory_refused
            .get_or_create(&ReceiverLabel { receiver })
            .get()
    }

    /// The limiter's limits, set once at start.
    pub fn memory_limits(&self, soft: u64, hard: u64) {
        let set = |value, v| self.memory.get_or_create(&MemoryLabel { value }).set(v);
        set("soft_limit", soft);
        set("hard_limit", hard);
    }

    /// The limiter's last measurement and state.
    pub fn memory_checked(&self, used: u64, refusing: bool) {
        self.memory
            .get_or_create(&MemoryLabel { value: "used" })
            .set(used);
        self.memory_refusing.set(u64::from(refusing));
    }

    pub fn accepted(&self, receiver: &'static str, spans: u64) {
        self.accepted
            .get_or_create(&ReceiverLabel { receiver })
            .inc_by(spans);
    }

    pub fn refused(&self, receiver: &'static str, spans: u64) {
        self.refused
            .get_or_create(&ReceiverLabel { receiver })
            .inc_by(spans);
    }

    pub fn bad_request(&self, receiver: &'static str) {
        self.bad_requests
            .get_or_create(&ReceiverLabel { receiver })
            .inc();
    }

    /// Starts timing one export request; it is counted when the returned
    /// timer drops, so a request its client gave up on (a reset stream, a
    /// closed connection, often the slowest ones) is counted too.
    pub fn time_request(self: &Arc<Self>, receiver: &'static str) -> RequestTimer {
        RequestTimer {
            telemetry: self.clone(),
            receiver,
            started: Instant::now(),
        }
    }

    pub fn exported(&self, exporter: &'static str, stream: &'static str, records: u64) {
        self.exported
            .get_or_create(&ExporterLabel { exporter, stream })
            .inc_by(records);
    }

    pub fn export_dropped(&self, exporter: &'static str, stream: &'static str, records: u64) {
        self.export_dropped
            .get_or_create(&ExporterLabel { exporter, stream })
            .inc_by(records);
    }

    /// Sets the number of records waiting in `exporter`'s buffer.
    pub fn export_buffered(&self, exporter: &'static str, records: u64) {
        self.export_buffered
            .get_or_create(&ExporterLabel {
                exporter,
                stream: "all",
            })
            .set(records);
    }

    /// Records dropped so far by one exporter, over all streams (tests read this).
    pub fn export_dropped_total(&self, exporter: &'static str) -> u64 {
        crate::exporters::Stream::ALL
            .iter()
            .map(|s| {
                self.export_dropped
                    .get_or_create(&ExporterLabel {
                        exporter,
                        stream: s.name(),
                    })
                    .get()
            })
            .sum()
    }

    /// Accepted spans so far, for one receiver (tests and `loadgen` read this).
    pub fn accepted_total(&self, receiver: &'static str) -> u64 {
        self.accepted
            .get_or_create(&ReceiverLabel { receiver })
            .get()
    }

    /// Renders the metrics, with pairing and graph gauges as of now.
    pub fn render(&self, graph: &GraphGauges) -> String {
        let (pairing, sizes) = (&graph.pairing, graph.sizes);
        self.traces_skipped.set(graph.traces_skipped);
        let set = |f: &Family<OutcomeLabel, Gauge<u64, AtomicU64>>, outcome, v: u64| {
            f.get_or_create(&OutcomeLabel { outcome }).set(v);
        };
        set(&self.pairing, "pending", pairing.pending);
        set(&self.pairing, "paired", pairing.paired);
        set(
            &self.pairing,
            "expired_to_virtual",
            pairing.expired_to_virtual,
        );
        set(&self.pairing, "expired_client", pairing.expired_client);
        set(&self.pairing, "expired_server", pairing.expired_server);
        set(&self.pairing, "dropped", pairing.dropped);
        set(&self.graph_size, "nodes", sizes.0 as u64);
        set(&self.graph_size, "edges", sizes.1 as u64);
        set(&self.graph_size, "operations", sizes.2 as u64);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One export request being timed, from [`Telemetry::time_request`].
pub struct RequestTimer {
    telemetry: Arc<Telemetry>,
    receiver: &'static str,
    started: Instant,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.telemetry
            .request_seconds
            .get_or_create(&ReceiverLabel {
                receiver: self.receiver,
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Buckets of `receiver_request_duration_seconds`, 0.1 ms to 2.5 s.
///
/// Why this fine at the low end: a 512-span request takes about 0.3 ms,
/// and the tail that matters (issue 8's 5 ms export p99) has to be told
/// apart from it, so there is a bucket every millisecond up to 5 ms; the
/// client's export timeout is seconds.
fn request_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
        0.25, 0.5, 1.0, 2.5,
    ])
}

/// The graph's figures `/metrics` shows, read without asking the shards.
#[derive(Default)]
pub struct GraphGauges {
    pub pairing: PairingCounters,
    /// Distinct nodes, edges and operations.
    pub sizes: (usize, usize, usize),
    /// Spans left out of trace assembly, summed over shards.
    pub traces_skipped: u64,
}

/// Pairing counters one shard publishes after each batch (not per span), so
/// `/metrics` reads them without asking the shard thread.
#[derive(Default)]
pub struct ShardGauges {
    values: [AtomicU64; 6],
    traces_skipped: AtomicU64,
}

impl ShardGauges {
    pub fn publish(&self, c: &PairingCounters, traces_skipped: u64) {
        self.traces_skipped.store(traces_skipped, Ordering::Relaxed);
        let v = [
            c.pending,
            c.paired,
            c.expired_to_virtual,
            c.expired_client,
            c.expired_server,
            c.dropped,
        ];
        for (slot, value) in self.values.iter().zip(v) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    pub fn traces_skipped(&self) -> u64 {
        self.traces_skipped.load(Ordering::Relaxed)
    }

    pub fn read(&self) -> PairingCounters {
        let v: Vec<u64> = self
            .values
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        PairingCounters {
            pending: v[0],
            paired: v[1],
            expired_to_virtual: v[2],
            expired_client: v[3],
            expired_server: v[4],
            dropped: v[5],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_requests_are_counted_into_buckets() {
        let telemetry = Arc::new(Telemetry::new());
        drop(telemetry.time_request("otlp_grpc"));
        let timer = telemetry.time_request("otlp_grpc");
        let abandoned = async move {
            let _timer = timer;
            std::future::pending::<()>().await
        };
        // A request's future dropped before it finishes, as hyper drops
        // one whose client reset the stream.
        drop(abandoned);
        let text = telemetry.render(&GraphGauges::default());
        let name = "faultline_receiver_request_duration_seconds";
        assert!(
            text.contains(&format!("{name}_count{{receiver=\"otlp_grpc\"}} 2")),
            "{text}"
        );
        let top = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}_bucket")) && l.contains("+Inf"))
            .unwrap_or_else(|| panic!("no +Inf bucket:\n{text}"));
        assert!(top.ends_with(" 2"), "{top}");
        assert!(!text.contains("receiver=\"otlp_http\""), "{text}");
    }
}

//! The pipeline's typed shape. Every struct denies unknown keys, and every
//! field's doc comment is its user documentation.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::graph::traces::TraceSettings;
use crate::graph::{GraphSettings, NamingRule};
use crate::receivers::ProtobufDecoder;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub receivers: Receivers,
    #[serde(default)]
    pub processors: Processors,
    #[serde(default)]
    pub exporters: Exporters,
    #[serde(default)]
    pub extensions: Extensions,
    pub service: Service,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receivers {
    /// The OTLP receiver (gRPC and/or HTTP).
    pub otlp: Option<OtlpReceiver>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiver {
    pub protocols: OtlpProtocols,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpProtocols {
    pub grpc: Option<GrpcProtocol>,
    pub http: Option<HttpProtocol>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcProtocol {
    /// Address to listen on, e.g. `127.0.0.1:4317` (`0.0.0.0:4317` in a container).
    pub endpoint: SocketAddr,
    /// Largest accepted message, in MiB; larger ones get RESOURCE_EXHAUSTED.
    #[serde(default = "default_max_mib")]
    pub max_recv_msg_size_mib: usize,
    /// Protobuf decoder: `fast` (default; reads the bytes in place, several
    /// times faster) or `prost` (the reference decoder, kept to rule a
    /// decoder bug in or out). Both accept and refuse exactly the same input.
    #[serde(default)]
    pub decoder: ProtobufDecoder,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProtocol {
    /// Address to listen on, e.g. `127.0.0.1:4318`.
    pub endpoint: SocketAddr,
    /// Largest accepted body (after gunzip too), in MiB; larger ones get 413.
    #[serde(default = "default_max_mib")]
    pub max_request_body_size_mib: usize,
    /// Decoder for `application/x-protobuf` bodies: `fast` (default) or
    /// `prost` (the reference), as for gRPC. JSON bodies are unaffected.
    #[serde(default)]
    pub decoder: ProtobufDecoder,
}

fn default_max_mib() -> usize {
    16
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processors {
    /// Memory backpressure, as the Collector's `memory_limiter`: past the
    /// soft limit, the OTLP receivers refuse requests with a retry delay.
    #[serde(default)]
    pub memory_limiter: Option<crate::memory_limiter::MemoryLimiterConfig>,
    /// The interaction graph (always present; this sets its knobs).
    #[serde(default)]
    pub graph: GraphProcessor,
    /// Signals, baselines, anomalies and hotspot ranking.
    #[serde(default)]
    pub operators: crate::operators::OperatorSettings,
    /// Scenario generation from the ranking (`GET /api/scenarios`).
    #[serde(default)]
    pub scenarios: crate::scenarios::ScenarioSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphProcessor {
    /// Tumbling window length, e.g. `10s`.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// Closed windows kept for `?window=N`; older ones fold into `all`.
    /// Also bounded by size: once the closed windows of a shard hold more
    /// than `max_edges` entries together, the oldest fold into `all` early.
    pub windows_kept: usize,
    /// How often windows close and pending pairs expire.
    #[serde(deserialize_with = "duration")]
    pub tick: Duration,
    /// How virtual nodes are named: `tempo` (default) or `collector`.
    pub naming: NamingRule,
    pub pairing: Pairing,
    /// Caps on distinct nodes, edges and operations; past them, stats are
    /// counted under `__overflow__`.
    pub max_nodes: usize,
    pub max_edges: usize,
    pub max_operations: usize,
    /// Aggregation shards (threads); 0 means one per CPU.
    pub shards: usize,
    /// Trace assembly, for paths, clusters and retries.
    pub traces: Traces,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Traces {
    /// A trace is read once no span arrived for it for this long, e.g. `2s`.
    #[serde(deserialize_with = "duration")]
    pub idle: Duration,
    /// Open traces per shard; spans of further traces skip assembly
    /// (counted), and short of room a shard takes a sample of traces.
    pub max_traces: usize,
    /// Span records the trace buffers have room for, per shard (56 bytes
    /// each): open traces' buffers, empty room included, and the buffers
    /// kept for reuse together stay within it. The memory bound of
    /// assembly; past it, new traces skip assembly (counted), and the
    /// shard takes a sample of traces by trace id until room is back.
    pub max_open_spans: usize,
    /// A failed call repeated to the same peer and operation within this
    /// gap counts as a retry (where `http.request.resend_count` is absent).
    #[serde(deserialize_with = "duration")]
    pub retry_gap: Duration,
    /// Distinct paths and clusters kept per window and shard.
    pub max_paths: usize,
}

impl Default for Traces {
    fn default() -> Self {
        let d = TraceSettings::default();
        Traces {
            idle: Duration::from_millis(d.idle_ms),
            max_traces: d.max_traces,
            max_open_spans: d.max_open_spans,
            retry_gap: Duration::from_nanos(d.retry_gap_ns),
            max_paths: d.max_paths,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pairing {
    /// How long one side of a call waits for the other, e.g. `10s`.
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// Pending spans per shard; beyond it new spans are counted as dropped.
    pub max_items: usize,
}

impl Default for GraphProcessor {
    fn default() -> Self {
        let d = GraphSettings::default();
        GraphProcessor {
            window: Duration::from_millis(d.window_ms),
            windows_kept: d.windows_kept,
            tick: Duration::from_secs(1),
            naming: d.naming,
            pairing: Pairing::default(),
            max_nodes: d.max_nodes,
            max_edges: d.max_edges,
            max_operations: d.max_operations,
            shards: 0,
            traces: Traces::default(),
        }
    }
}

impl Default for Pairing {
    fn default() -> Self {
        let d = GraphSettings::default();
        Pairing {
            ttl: Duration::from_millis(d.pairing_ttl_ms),
            max_items: d.max_pending,
        }
    }
}

impl GraphProcessor {
    pub fn settings(&self) -> GraphSettings {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        GraphSettings {
            window_ms: self.window.as_millis() as u64,
            windows_kept: self.windows_kept,
            pairing_ttl_ms: self.pairing.ttl.as_millis() as u64,
            max_pending: self.pairing.max_items,
            max_nodes: self.max_nodes,
            max_edges: self.max_edges,
            max_operations: self.max_operations,
            naming: self.naming,
            shards: if self.shards == 0 { cpus } else { self.shards },
            traces: TraceSettings {
                idle_ms: self.traces.idle.as_millis() as u64,
                max_traces: self.traces.max_traces,
                max_open_spans: self.traces.max_open_spans,
                retry_gap_ns: self.traces.retry_gap.as_nanos() as u64,
                max_paths: self.traces.max_paths,
                ..TraceSettings::default()
            },
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exporters {
    /// JSON lines files in a data directory (the embedded default).
    pub jsonl: Option<crate::exporters::jsonl::JsonlConfig>,
    /// Kafka topics, through librdkafka.
    pub kafka: Option<crate::exporters::kafka::KafkaConfig>,
    /// History for SQL: closed windows and records as hourly Parquet files.
    pub parquet: Option<crate::query::ParquetConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extensions {
    /// The HTTP API, web page, `/metrics` and `/healthz`.
    pub api: Option<ApiExtension>,
    /// The experiment runner behind `POST /api/experiments`.
    pub experiments: Option<ExperimentsExtension>,
    /// The fault proxy (Toxiproxy API), embedded.
    pub faultproxy: Option<FaultProxyExtension>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultProxyExtension {
    /// Address of its Toxiproxy-compatible API, e.g. `127.0.0.1:8474`.
    pub endpoint: SocketAddr,
    /// Seed of every random draw (reproducible runs); drawn when unset.
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentsExtension {
    /// The Toxiproxy API faults are injected through, e.g. `http://127.0.0.1:8474`.
    pub proxy_url: String,
    /// Journals, results and reports (`<directory>/experiments/`).
    pub directory: std::path::PathBuf,
    /// Steady-state sampling before a fault, e.g. `30s`.
    #[serde(default = "default_baseline", deserialize_with = "duration")]
    pub baseline: Duration,
    /// Consecutive in-tolerance windows that count as recovered.
    #[serde(default = "default_recover_ticks")]
    pub recover_ticks: usize,
    /// Give up waiting for recovery after this long.
    #[serde(default = "default_recover_limit", deserialize_with = "duration")]
    pub recover_limit: Duration,
    /// Multiplier on the feedback weight of what an unexpected run touched.
    #[serde(default = "default_feedback_factor")]
    pub feedback_factor: f64,
}

fn default_baseline() -> Duration {
    Duration::from_secs(30)
}

fn default_recover_ticks() -> usize {
    3
}

fn default_recover_limit() -> Duration {
    Duration::from_secs(120)
}

fn default_feedback_factor() -> f64 {
    1.5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiExtension {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub endpoint: SocketAddr,
    /// `POST /api/query`: how long one SQL query may run, e.g. `30s`.
    #[serde(default = "default_query_timeout", deserialize_with = "duration")]
    pub query_timeout: Duration,
    /// `POST /api/query`: memory one query's operators may hold, in MiB.
    #[serde(default = "default_query_memory")]
    pub query_memory_mib: usize,
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_query_memory() -> usize {
    512
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub extensions: Vec<String>,
    pub pipelines: Pipelines,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipelines {
    pub traces: TracesPipeline,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesPipeline {
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("{text:?} is not a duration like 10s or 500ms: {e}"))
    })
}

impl PipelineConfig {
    /// Checks what serde cannot: references between sections, sane values.
    /// Errors are `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let traces = &self.service.pipelines.traces;
        for r in &traces.receivers {
            if !(r == "otlp" && self.receivers.otlp.is_some()) {
                return Err(undeclared(
                    "service.pipelines.traces.receivers",
                    "receivers",
                    r,
                ));
            }
        }
        for e in &traces.exporters {
            let declared = match e.as_str() {
                "jsonl" => self.exporters.jsonl.is_some(),
                "kafka" => self.exporters.kafka.is_some(),
                "parquet" => self.exporters.parquet.is_some(),
                _ => false,
            };
            if !declared {
                return Err(undeclared(
                    "service.pipelines.traces.exporters",
                    "exporters",
                    e,
                ));
            }
        }
        for p in &traces.processors {
            let declared = match p.as_str() {
                "graph" | "operators" | "scenarios" => true,
                "memory_limiter" => self.processors.memory_limiter.is_some(),
                _ => false,
            };
            if !declared {
                return Err(undeclared(
                    "service.pipelines.traces.processors",
                    "processors",
                    p,
                ));
            }
        }
        for x in &self.service.extensions {
            let declared = match x.as_str() {
                "api" => self.extensions.api.is_some(),
                "experiments" => self.extensions.experiments.is_some(),
                "faultproxy" => self.extensions.faultproxy.is_some(),
                _ => false,
            };
            if !declared {
                return Err(undeclared("service.extensions", "extensions", x));
            }
        }
        if let Some(m) = &self.processors.memory_limiter {
            m.validate()
                .map_err(|e| ("processors.memory_limiter".to_owned(), e.to_string()))?;
        }
        let g = &self.processors.graph;
        if g.window.is_zero() || g.tick.is_zero() || g.pairing.ttl.is_zero() {
            return Err((
                "processors.graph".into(),
                "window, tick and pairing.ttl must be above zero".into(),
            ));
        }
        Ok(())
    }

    pub fn grpc_endpoint(&self) -> Option<SocketAddr> {
        self.otlp()?.protocols.grpc.as_ref().map(|g| g.endpoint)
    }

    pub fn http_endpoint(&self) -> Option<SocketAddr> {
        self.otlp()?.protocols.http.as_ref().map(|h| h.endpoint)
    }

    /// Bounds on `POST /api/query` (the defaults when the API is off).
    pub fn query_limits(&self) -> crate::query::Limits {
        let d = crate::query::Limits::default();
        match &self.extensions.api {
            Some(a) => crate::query::Limits {
                timeout: a.query_timeout,
                memory_bytes: a.query_memory_mib.max(1) << 20,
            },
            None => d,
        }
    }

    pub fn api_endpoint(&self) -> Option<SocketAddr> {
        let enabled = self.service.extensions.iter().any(|e| e == "api");
        self.extensions
            .api
            .as_ref()
            .filter(|_| enabled)
            .map(|a| a.endpoint)
    }

    /// The embedded fault proxy, if the extension is on.
    pub fn faultproxy(&self) -> Option<&FaultProxyExtension> {
        let on = self.service.extensions.iter().any(|e| e == "faultproxy");
        self.extensions.faultproxy.as_ref().filter(|_| on)
    }

    /// The experiment runner's settings, if the extension is on.
    pub fn experiments(&self) -> Option<crate::experiments::RunSettings> {
        let on = self.service.extensions.iter().any(|e| e == "experiments");
        let x = self.extensions.experiments.as_ref().filter(|_| on)?;
        Some(crate::experiments::RunSettings {
            proxy_url: x.proxy_url.clone(),
            baseline: x.baseline,
            tick: self.processors.graph.tick,
            recover_ticks: x.recover_ticks,
            recover_limit: x.recover_limit,
            feedback_factor: x.feedback_factor,
            data_dir: x.directory.clone(),
        })
    }

    /// The memory limiter, if the traces pipeline uses it.
    pub fn memory_limiter(&self) -> Option<&crate::memory_limiter::MemoryLimiterConfig> {
        let used = self
            .service
            .pipelines
            .traces
            .processors
            .iter()
            .any(|p| p == "memory_limiter");
        self.processors.memory_limiter.as_ref().filter(|_| used)
    }

    /// The JSON lines exporter, if the traces pipeline uses it.
    pub fn jsonl_exporter(&self) -> Option<&crate::exporters::jsonl::JsonlConfig> {
        self.exporters
            .jsonl
            .as_ref()
            .filter(|_| self.exports_to("jsonl"))
    }

    /// The Kafka exporter, if the traces pipeline uses it.
    pub fn kafka_exporter(&self) -> Option<&crate::exporters::kafka::KafkaConfig> {
        self.exporters
            .kafka
            .as_ref()
            .filter(|_| self.exports_to("kafka"))
    }

    /// The Parquet history writer, if the traces pipeline uses it.
    pub fn parquet_exporter(&self) -> Option<&crate::query::ParquetConfig> {
        self.exporters
            .parquet
            .as_ref()
            .filter(|_| self.exports_to("parquet"))
    }

    fn exports_to(&self, name: &str) -> bool {
        let traces = &self.service.pipelines.traces;
        traces.exporters.iter().any(|e| e == name)
    }

    /// The OTLP receiver, if the traces pipeline uses it.
    fn otlp(&self) -> Option<&OtlpReceiver> {
        let used = self
            .service
            .pipelines
            .traces
            .receivers
            .iter()
            .any(|r| r == "otlp");
        self.receivers.otlp.as_ref().filter(|_| used)
    }
}

fn undeclared(path: &str, section: &str, name: &str) -> (String, String) {
    (
        path.to_owned(),
        format!("`{name}` is not declared under `{section}` (or is not a component faultline has)"),
    )
}

//! The Kafka exporter: records to topics, keyed by target, via librdkafka.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Stream;

/// `exporters.kafka` in the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// Topic per stream; each defaults to `faultline.<stream>`.
    #[serde(default)]
    pub topics: Topics,
    /// `json` (default) or `protobuf` (schemas in `proto/faultline.proto`).
    #[serde(default)]
    pub encoding: Encoding,
    /// Records that may wait while the broker is away; past it, new records
    /// are dropped and counted in `faultline_exporter_dropped_records_total`.
    #[serde(default = "default_buffer")]
    pub buffer_max_records: usize,
    /// How long start-up waits for the broker to answer before failing.
    #[serde(
        default = "default_startup_timeout",
        deserialize_with = "crate::config::model::duration"
    )]
    pub startup_timeout: Duration,
    /// `client.id` the broker sees.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Extra librdkafka settings (`security.protocol`, `compression.type`…),
    /// applied last.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub signals: String,
    pub hotspots: String,
    pub anomalies: String,
    pub scenarios: String,
    pub experiments: String,
}

impl Default for Topics {
    fn default() -> Self {
        let t = |s: Stream| format!("faultline.{}", s.name());
        Topics {
            signals: t(Stream::Signals),
            hotspots: t(Stream::Hotspots),
            anomalies: t(Stream::Anomalies),
            scenarios: t(Stream::Scenarios),
            experiments: t(Stream::Experiments),
        }
    }
}

impl Topics {
    pub fn of(&self, stream: Stream) -> &str {
        match stream {
            Stream::Signals => &self.signals,
            Stream::Hotspots => &self.hotspots,
            Stream::Anomalies => &self.anomalies,
            Stream::Scenarios => &self.scenarios,
            Stream::Experiments => &self.experiments,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Json,
    Protobuf,
}

fn default_buffer() -> usize {
    100_000
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_client_id() -> String {
    "faultline".into()
}

/// Placeholder until the producer lands (being written on the `kafka` branch).
pub struct KafkaExporter;

impl KafkaExporter {
    pub fn start(
        config: &KafkaConfig,
        _telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    ) -> Result<KafkaExporter, std::io::Error> {
        Err(std::io::Error::other(format!(
            "the Kafka exporter ({}) is not available in this build",
            config.brokers
        )))
    }
}

impl super::Exporter for KafkaExporter {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn export(&self, _records: &[super::Record]) {}
    fn flush(&self, _timeout: Duration) {}
}

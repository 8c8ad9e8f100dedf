//! Exporters: where operator records leave faultline.
//!
//! Operators (signals, anomalies, hotspots) and later stages (scenarios,
//! experiments) produce [`Record`]s; every configured exporter gets every
//! record. `jsonl` (files in the data directory) is the embedded default,
//! `kafka` the gateway choice. The HTTP API always serves the latest records
//! too, whatever is configured here.

pub mod jsonl;
pub mod kafka;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which stream a record belongs to; each maps to one Kafka topic and one
/// JSON lines file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Signals,
    Hotspots,
    Anomalies,
    Scenarios,
    Experiments,
}

impl Stream {
    pub const ALL: [Stream; 5] = [
        Stream::Signals,
        Stream::Hotspots,
        Stream::Anomalies,
        Stream::Scenarios,
        Stream::Experiments,
    ];

    /// `signals`, `hotspots`, …: the file stem, the metric label and the
    /// default topic's suffix (`faultline.signals`).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Signals => "signals",
            Stream::Hotspots => "hotspots",
            Stream::Anomalies => "anomalies",
            Stream::Scenarios => "scenarios",
            Stream::Experiments => "experiments",
        }
    }
}

/// One message: its stream, its key (a target key such as `edge:a->b`, so
/// one key's records stay in order on one partition) and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub stream: Stream,
    pub key: String,
    pub json: Arc<[u8]>,
}

impl Record {
    /// Serializes `body` as the record's JSON.
    pub fn new<T: Serialize>(stream: Stream, key: impl Into<String>, body: &T) -> Record {
        let json = serde_json::to_vec(body).unwrap_or_else(|e| {
            // Our own record types always serialize; keep the stream alive if not.
            tracing::error!(error = %e, "record does not serialize");
            b"{}".to_vec()
        });
        Record {
            stream,
            key: key.into(),
            json: json.into(),
        }
    }
}

/// A destination for records. `export` must not block for long: it buffers
/// (Kafka) or appends (files) and returns; delivery problems are counted in
/// `/metrics` and logged, never returned to the operators.
pub trait Exporter: Send + Sync {
    fn name(&self) -> &'static str;
    fn export(&self, records: &[Record]);
    /// Every closed window, once, before its records are made (the
    /// Parquet history keeps its stats; the others ignore it). Must not
    /// block either.
    fn window(&self, _window: &crate::graph::ClosedWindow) {}
    /// Waits up to `timeout` for buffered records to go out (at shutdown).
    fn flush(&self, timeout: std::time::Duration);
}

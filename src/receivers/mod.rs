//! Receivers: where spans enter faultline.
//!
//! Each file is one way in. The network receivers (`otlp_grpc`, `otlp_http`)
//! and the file importers (`otlp_json`, `jaeger_json`, `zipkin_json`, picked
//! by `file`) all produce a [`Batch`] of [`crate::model::Span`]s; none of them
//! knows about the graph beyond handing batches to it.

pub mod batch;
pub mod file;
pub mod jaeger_json;
pub mod otlp_fast;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod otlp_json;
pub mod otlp_proto;
pub mod refusal;
pub mod zipkin_json;

pub use batch::{Batch, DecodeError};

/// Which decoder the OTLP receivers use for protobuf bodies.
///
/// `fast` ([`otlp_fast`]) reads the wire bytes in place and is the default;
/// `prost` ([`otlp_proto`]) builds the generated message tree first and is
/// the reference the fast one is tested against: it stays selectable so a
/// suspected decoder bug can be ruled in or out on a live collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtobufDecoder {
    #[default]
    Fast,
    Prost,
}

impl ProtobufDecoder {
    /// Decodes an `ExportTraceServiceRequest` body into a [`Batch`].
    pub fn decode(self, body: &[u8]) -> Result<Batch, DecodeError> {
        match self {
            ProtobufDecoder::Fast => otlp_fast::decode(body),
            ProtobufDecoder::Prost => otlp_proto::decode_request(body).map(otlp_proto::to_batch),
        }
    }
}

use std::sync::Arc;

use crate::graph::Graph;
use crate::memory_limiter::{MemoryLimiter, Refusal};
use crate::telemetry::Telemetry;

/// Where receivers hand decoded batches: the graph, with self-metrics.
/// (The OpenTelemetry Collector calls this the next consumer.)
#[derive(Clone)]
pub struct SpanSink {
    pub graph: Graph,
    pub telemetry: Arc<Telemetry>,
    /// Backpressure (`processors.memory_limiter`), when the pipeline has it.
    pub limiter: Option<Arc<MemoryLimiter>>,
}

impl SpanSink {
    /// Whether a request may come in now; receivers ask before decoding,
    /// so a refused request costs no decoding and holds no spans.
    pub fn admit(&self, receiver: &'static str) -> Result<(), Refusal> {
        self.limiter.as_ref().map_or(Ok(()), |l| l.admit(receiver))
    }

    /// Counts and forwards a batch; returns it emptied of spans, keeping the
    /// refusal count and message for the receiver's reply.
    pub async fn accept(&self, receiver: &'static str, mut batch: Batch) -> Batch {
        self.telemetry.accepted(receiver, batch.spans.len() as u64);
        self.telemetry.refused(receiver, batch.rejected);
        let spans = std::mem::take(&mut batch.spans);
        self.graph.ingest(spans).await;
        batch
    }
}

//! Synthetic OTLP traffic with a realistic shape: the benchmarks' input, and
//! the start of `faultline loadgen`.
//!
//! Traces walk a chain of services (`svc-0 -> svc-1 -> ...`), each hop a
//! CLIENT span and the SERVER span it parents, so every span pairs across
//! services as real traffic does.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

/// What the generated spans look like.
#[derive(Debug, Clone)]
pub struct SpanShape {
    pub services: usize,
    /// Attributes per span (besides the HTTP status code).
    pub attributes: usize,
    /// Length of each attribute value, in bytes.
    pub attribute_len: usize,
    /// Spans per request.
    pub batch: usize,
    /// One call in this many fails.
    pub error_every: u64,
}

impl Default for SpanShape {
    /// The standard shape of the benchmarks: 5 services, 10 attributes,
    /// batches of 512 spans of about 300 bytes.
    fn default() -> Self {
        SpanShape {
            services: 5,
            attributes: 9,
            attribute_len: 12,
            batch: 512,
            error_every: 50,
        }
    }
}

/// A deterministic generator of export requests.
pub struct Generator {
    shape: SpanShape,
    next_id: u64,
}

impl Generator {
    pub fn new(shape: SpanShape, seed: u64) -> Generator {
        Generator {
            shape,
            next_id: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// One request of `shape.batch` spans, grouped by service as SDKs send them.
    pub fn request(&mut self, start_unix_nano: u64) -> ExportTraceServiceRequest {
        let services = self.shape.services.max(2);
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services];
        let mut made = 0;
        while made < self.shape.batch {
            let trace = self.fresh_id();
            let mut parent = Vec::new();
            for hop in 0..services - 1 {
                if made + 2 > self.shape.batch {
                    break;
                }
                let call = self.fresh_id();
                let failed = call.is_multiple_of(self.shape.error_every.max(1));
                let start = start_unix_nano + hop as u64 * 1_000_000;
                let client = self.span(
                    trace,
                    call,
                    &parent,
                    span::SpanKind::Client,
                    start,
                    900_000 + call % 500_000,
                    failed,
                );
                let server_id = self.fresh_id();
                let server = self.span(
                    trace,
                    server_id,
                    &call.to_le_bytes(),
                    span::SpanKind::Server,
                    start + 50_000,
                    700_000 + call % 400_000,
                    failed,
                );
                by_service[hop].push(client);
                by_service[hop + 1].push(server);
                parent = server_id.to_le_bytes().to_vec();
                made += 2;
            }
        }
        ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(|(i, spans)| resource_spans(i, spans))
                .collect(),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        // xorshift: ids look random, as real ones do, and never repeat soon.
        let mut x = self.next_id;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.next_id = x;
        x
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &self,
        trace: u64,
        id: u64,
        parent: &[u8],
        kind: span::SpanKind,
        start: u64,
        duration: u64,
        failed: bool,
    ) -> Span {
        let mut trace_id = trace.to_le_bytes().to_vec();
        trace_id.extend_from_slice(&trace.rotate_left(17).to_le_bytes());
        let mut attributes: Vec<KeyValue> = (0..self.shape.attributes)
            .map(|i| string_kv(&format!("attr.{i}"), &"v".repeat(self.shape.attribute_len)))
            .collect();
        attributes.push(KeyValue {
            key: "http.response.status_code".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(if failed { 503 } else { 200 })),
            }),
            ..Default::default()
        });
        Span {
            trace_id,
            span_id: id.to_le_bytes().to_vec(),
            parent_span_id: parent.to_vec(),
            name: if kind == span::SpanKind::Client {
                "GET /call".into()
            } else {
                "GET /serve".into()
            },
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            status: failed.then(|| Status {
                code: status::StatusCode::Error as i32,
                message: String::new(),
            }),
            ..Default::default()
        }
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource_spans(service: usize, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string_kv("service.name", &format!("svc-{service}"))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{GraphSettings, OfflineGraph};
    use crate::receivers::otlp_proto;

    #[test]
    fn generated_traffic_pairs_into_a_chain() {
        let mut g = Generator::new(SpanShape::default(), 7);
        let request = g.request(1_700_000_000_000_000_000);
        let size = prost::Message::encoded_len(&request);
        let per_span = size / 512;
        assert!((250..400).contains(&per_span), "{per_span} bytes per span");
        let batch = otlp_proto::to_batch(request);
        assert_eq!(batch.spans.len(), 512);
        let mut graph = OfflineGraph::new(GraphSettings::default());
        graph.ingest(&batch.spans);
        let view = graph.finish();
        let calls: u64 = view.edges.iter().map(|e| e.calls).sum();
        assert_eq!(calls, 256, "every client span pairs: {:?}", view.edges);
        assert!(view.edge("svc-0", "svc-1").is_some() && view.edge("svc-3", "svc-4").is_some());
    }
}

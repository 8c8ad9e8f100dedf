//! Synthetic OTLP traffic with a realistic shape, and `faultline loadgen`,
//! which sends it.
//!
//! A trace is a tree of calls `depth` levels deep, each caller making
//! `fan_out` calls; each call is a CLIENT span in the caller's service and
//! the SERVER span it parents in the callee's, so every span pairs across
//! services as real traffic does. Callees rotate through the services
//! (`svc-0` calls `svc-1`, ...). The default shape (depth 4, fan-out 1) is
//! the chain `svc-0 -> svc-1 -> ... -> svc-4` the benchmarks use.
//!
//! [`template`] turns generated requests into byte templates that can be
//! re-sent with fresh ids and times at no encoding cost, and [`run`] drives
//! the load against a collector.

mod client;
pub mod probe;
pub mod run;
pub mod template;

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
    /// Levels of calls below the root caller.
    pub depth: usize,
    /// Calls each caller makes at each level.
    pub fan_out: usize,
    /// Attributes per span (besides the HTTP status code).
    pub attributes: usize,
    /// Length of each attribute value, in bytes.
    pub attribute_len: usize,
    /// Spans per request.
    pub batch: usize,
    /// Share of calls that fail (both sides report ERROR and HTTP 503).
    pub error_ratio: f64,
    /// Distinct caller -> callee edges to spread calls over; 0 keeps the
    /// rotation through `services`. Set, it replaces `services` by as many
    /// as the edges need (see [`EdgePlan`]): the soak benchmark's 10^5 edges.
    pub edges: usize,
}

impl Default for SpanShape {
    /// The standard shape of the benchmarks: 5 services, 10 attributes,
    /// batches of 512 spans of about 300 bytes, one call in 50 failing.
    fn default() -> Self {
        SpanShape {
            services: 5,
            depth: 4,
            fan_out: 1,
            attributes: 9,
            attribute_len: 12,
            batch: 512,
            error_ratio: 0.02,
            edges: 0,
        }
    }
}

/// How `edges` distinct edges are laid out: `services` services (the
/// fewest that can have that many edges between them), `svc-i` calling
/// `svc-(i+1+k)` for k below its count of callees — `per_caller` for the
/// first `wide` services, one fewer for the rest — so there are exactly
/// `edges` edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgePlan {
    pub services: usize,
    pub per_caller: usize,
    pub wide: usize,
}

impl EdgePlan {
    pub fn new(edges: usize) -> EdgePlan {
        // From two on, every service has at least one callee.
        let edges = edges.max(2);
        let mut services = (edges as f64).sqrt() as usize + 1;
        while services * (services - 1) < edges {
            services += 1;
        }
        let per_caller = edges.div_ceil(services);
        EdgePlan {
            services,
            per_caller,
            wide: edges - services * (per_caller - 1),
        }
    }

    /// Distinct edges the plan makes.
    pub fn edges(&self) -> usize {
        self.services * (self.per_caller - 1) + self.wide
    }

    /// How many callees `caller` has.
    fn callees(&self, caller: usize) -> usize {
        self.per_caller - usize::from(caller >= self.wide)
    }
}

/// A deterministic generator of export requests.
pub struct Generator {
    shape: SpanShape,
    next_id: u64,
    /// With `shape.edges`: the layout, and per caller the next callee offset.
    plan: Option<(EdgePlan, Vec<usize>)>,
    traces: usize,
}

/// One call of a trace being laid out: its caller's service and server span.
struct Caller {
    service: usize,
    server_span: Option<u64>,
    level: usize,
}

impl Generator {
    pub fn new(shape: SpanShape, seed: u64) -> Generator {
        let plan = (shape.edges > 0).then(|| {
            let plan = EdgePlan::new(shape.edges);
            (plan, vec![0; plan.services])
        });
        Generator {
            shape,
            next_id: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            plan,
            traces: 0,
        }
    }

    pub fn shape(&self) -> &SpanShape {
        &self.shape
    }

    /// One request of `shape.batch` spans (rounded down to whole calls),
    /// grouped by service as SDKs send them. Traces are laid out depth
    /// first; the last one is cut where the batch is full.
    pub fn request(&mut self, start_unix_nano: u64) -> ExportTraceServiceRequest {
        let services = match &self.plan {
            Some((plan, _)) => plan.services,
            None => self.shape.services.max(2),
        };
        let depth = self.shape.depth.max(1);
        let fan_out = self.shape.fan_out.max(1);
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services];
        let mut made = 0;
        while made + 2 <= self.shape.batch {
            let trace = self.fresh_id();
            self.traces += 1;
            let root = match self.plan {
                // Roots rotate so every service calls out, not just svc-0.
                Some(_) => self.traces % services,
                None => 0,
            };
            let mut stack = vec![Caller {
                service: root,
                server_span: None,
                level: 0,
            }];
            while let Some(caller) = stack.pop() {
                if caller.level == depth {
                    continue;
                }
                for i in 0..fan_out {
                    if made + 2 > self.shape.batch {
                        break;
                    }
                    let callee = self.callee(caller.service, i, services);
                    let call = self.fresh_id();
                    let failed = self.fails(call);
                    let start = start_unix_nano + caller.level as u64 * 1_000_000;
                    let parent = caller.server_span.map(u64::to_le_bytes);
                    let client = self.span(
                        trace,
                        call,
                        parent.as_ref().map_or(&[][..], |p| &p[..]),
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
                    by_service[caller.service].push(client);
                    by_service[callee].push(server);
                    made += 2;
                    stack.push(Caller {
                        service: callee,
                        server_span: Some(server_id),
                        level: caller.level + 1,
                    });
                }
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

    /// The service the `i`-th call of `caller` goes to: the next one round
    /// the ring, or with an edge plan the caller's next of its callees, so
    /// each caller cycles through all of its edges.
    fn callee(&mut self, caller: usize, i: usize, services: usize) -> usize {
        match &mut self.plan {
            Some((plan, next)) => {
                let k = next[caller];
                next[caller] = (k + 1) % plan.callees(caller);
                (caller + 1 + k) % services
            }
            None => (caller + 1 + i) % services,
        }
    }

    /// Whether a call fails: decided by its id, so a replayed request fails alike.
    fn fails(&self, call: u64) -> bool {
        let ratio = self.shape.error_ratio.clamp(0.0, 1.0);
        (call % 1_000_000) < (ratio * 1_000_000.0) as u64
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

    #[test]
    fn fan_out_makes_trees_and_errors_follow_the_ratio() {
        let shape = SpanShape {
            services: 3,
            depth: 2,
            fan_out: 2,
            batch: 12,
            error_ratio: 0.5,
            ..SpanShape::default()
        };
        let mut g = Generator::new(shape, 9);
        let batch = otlp_proto::to_batch(g.request(1_700_000_000_000_000_000));
        // One trace: 2 calls from svc-0, then 2 from each callee = 6 calls.
        assert_eq!(batch.spans.len(), 12);
        let traces: std::collections::HashSet<_> = batch.spans.iter().map(|s| s.trace_id).collect();
        assert_eq!(traces.len(), 1);
        let mut graph = OfflineGraph::new(GraphSettings::default());
        graph.ingest(&batch.spans);
        let view = graph.finish();
        assert_eq!(view.edges.iter().map(|e| e.calls).sum::<u64>(), 6);
        assert!(view.edge("svc-0", "svc-2").is_some(), "{:?}", view.edges);
        let failed = batch.spans.iter().filter(|s| s.is_error()).count();
        assert!(
            (2..=10).contains(&failed),
            "{failed} of 12 failed at ratio 0.5"
        );
    }

    #[test]
    fn an_edge_plan_makes_that_many_distinct_edges() {
        let plan = EdgePlan::new(100_000);
        assert_eq!(plan.edges(), 100_000, "{plan:?}");
        assert_eq!(EdgePlan::new(7).edges(), 7);
        assert!(plan.per_caller < plan.services);
        let shape = SpanShape {
            edges: 60,
            batch: 64,
            ..SpanShape::default()
        };
        let plan = EdgePlan::new(60);
        let mut g = Generator::new(shape, 3);
        let mut graph = OfflineGraph::new(GraphSettings::default());
        for _ in 0..8 {
            let batch = otlp_proto::to_batch(g.request(1_700_000_000_000_000_000));
            graph.ingest(&batch.spans);
        }
        let view = graph.finish();
        let between_services = view.edges.iter().filter(|e| e.source != "user").count();
        assert_eq!(between_services, 60, "{plan:?}");
    }
}

//! A synthetic shop's traffic, sent live over OTLP/HTTP: gateway → orders →
//! payments, orders → redis. Phases switch the orders → payments edge
//! between healthy and degraded (slow and failing), so tests can check when
//! faultline notices and when it sees recovery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::kv;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// How the payments dependency behaves in one phase.
#[derive(Clone, Copy)]
pub struct Payments {
    pub latency_ms: u64,
    /// Every n-th call fails (0: none).
    pub fail_every: u64,
}

pub const HEALTHY: Payments = Payments {
    latency_ms: 20,
    fail_every: 0,
};

pub const DEGRADED: Payments = Payments {
    latency_ms: 800,
    fail_every: 2,
};

struct SpanOut {
    service: &'static str,
    span: Span,
}

#[allow(clippy::too_many_arguments)]
fn span(
    service: &'static str,
    kind: SpanKind,
    trace: &[u8],
    parent: Option<&[u8]>,
    end_ns: u64,
    duration_ms: u64,
    failed: bool,
    attrs: Vec<KeyValue>,
) -> (SpanOut, Vec<u8>) {
    let id = next_id().to_be_bytes().to_vec();
    let out = SpanOut {
        service,
        span: Span {
            trace_id: trace.to_vec(),
            span_id: id.clone(),
            parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
            name: format!("{service} call"),
            kind: kind as i32,
            start_time_unix_nano: end_ns - duration_ms * 1_000_000,
            end_time_unix_nano: end_ns,
            attributes: attrs,
            status: failed.then(|| Status {
                code: status::StatusCode::Error as i32,
                message: "payment declined by upstream".into(),
            }),
            ..Default::default()
        },
    };
    (out, id)
}

/// One shop trace ending now: 6 spans.
fn trace(p: Payments, n: u64) -> Vec<SpanOut> {
    let end = now_ns();
    let trace: Vec<u8> = [next_id().to_be_bytes(), n.to_be_bytes()].concat();
    let failed = p.fail_every > 0 && n.is_multiple_of(p.fail_every);
    let pay = p.latency_ms;
    let total = pay + 10;
    let mut out = Vec::new();
    let (root, root_id) = span(
        "gateway",
        SpanKind::Server,
        &trace,
        None,
        end,
        total + 4,
        false,
        vec![],
    );
    let (gw_c, gw_c_id) = span(
        "gateway",
        SpanKind::Client,
        &trace,
        Some(&root_id),
        end,
        total + 2,
        false,
        vec![],
    );
    let (ord_s, ord_s_id) = span(
        "orders",
        SpanKind::Server,
        &trace,
        Some(&gw_c_id),
        end,
        total,
        false,
        vec![],
    );
    let (pay_c, pay_c_id) = span(
        "orders",
        SpanKind::Client,
        &trace,
        Some(&ord_s_id),
        end,
        pay + 1,
        failed,
        vec![],
    );
    let (pay_s, _) = span(
        "payments",
        SpanKind::Server,
        &trace,
        Some(&pay_c_id),
        end,
        pay,
        failed,
        vec![],
    );
    let redis_attrs = vec![kv("db.system", "redis"), kv("server.address", "redis")];
    let redis_end = end - (pay + 2) * 1_000_000;
    let (cache, _) = span(
        "orders",
        SpanKind::Client,
        &trace,
        Some(&ord_s_id),
        redis_end,
        2,
        false,
        redis_attrs,
    );
    out.extend([root, gw_c, ord_s, pay_c, pay_s, cache]);
    out
}

/// `count` traces in one OTLP request.
pub fn batch(p: Payments, count: u64) -> ExportTraceServiceRequest {
    let spans: Vec<SpanOut> = (0..count).flat_map(|n| trace(p, n)).collect();
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|s| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s.service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![s.span],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Sends `per_tick` traces every 100 ms for `duration` to an OTLP/HTTP
/// endpoint (`http://host:port/v1/traces`).
pub async fn drive(url: &str, p: Payments, per_tick: u64, duration: Duration) {
    let client = reqwest::Client::new();
    let until = tokio::time::Instant::now() + duration;
    let mut beat = tokio::time::interval(Duration::from_millis(100));
    while tokio::time::Instant::now() < until {
        beat.tick().await;
        post(&client, url, &batch(p, per_tick)).await;
    }
}

/// POSTs one request as OTLP/HTTP protobuf; asserts it was accepted.
pub async fn post(client: &reqwest::Client, url: &str, request: &ExportTraceServiceRequest) {
    let reply = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .expect("POST /v1/traces");
    assert!(reply.status().is_success(), "{}", reply.status());
}

/// The shop's run: healthy, degraded, healthy. Returns when (ms since the
/// epoch) the degradation started and ended.
pub async fn healthy_degraded_healthy(url: &str, phases: [Duration; 3]) -> (u64, u64) {
    drive(url, HEALTHY, 20, phases[0]).await;
    let start = now_ns() / 1_000_000;
    drive(url, DEGRADED, 20, phases[1]).await;
    let end = now_ns() / 1_000_000;
    drive(url, HEALTHY, 20, phases[2]).await;
    (start, end)
}

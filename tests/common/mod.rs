//! Shared test helpers: a collector on free loopback ports, OTLP builders.
#![allow(dead_code)]

pub mod browser;
pub mod schema;
pub mod sdk;
pub mod system;
pub mod tansu;
pub mod traffic;

use std::time::Duration;

use faultline::cli::serve::{start, Running};
use faultline::config;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

/// Starts faultline on 127.0.0.1:0 everywhere, with a short pairing TTL and
/// tick so tests see expiry quickly. `extra` replaces lines of the default.
pub async fn serve_with(replacements: &[(&str, &str)]) -> Running {
    let mut text = config::on_free_ports(config::DEFAULT_PIPELINE, &data_dir())
        .replace("ttl: 10s", "ttl: 1s")
        .replace("tick: 1s", "tick: 100ms");
    for (from, to) in replacements {
        assert!(text.contains(from), "default pipeline has no {from:?}");
        text = text.replace(from, to);
    }
    let config = config::parse("test pipeline", &text).expect("test pipeline parses");
    start(&config).await.expect("collector starts")
}

/// A fresh data directory under the system's temp dir (kept after the test,
/// so a failing test's records can be read).
pub fn data_dir() -> String {
    let dir = tempfile::Builder::new()
        .prefix("faultline-test-")
        .tempdir()
        .expect("temp dir")
        .keep();
    dir.display().to_string()
}

pub async fn serve() -> Running {
    serve_with(&[]).await
}

/// GET a JSON document from the API.
pub async fn get_json(running: &Running, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", running.api.expect("api enabled"));
    reqwest::get(&url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

/// Polls the graph until `done` holds, for at most 10 s; returns the last document.
pub async fn wait_for_graph(
    running: &Running,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        last = get_json(running, "/api/graph?window=all").await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("graph never reached the expected state; last: {last:#}");
}

pub fn edge<'a>(
    graph: &'a serde_json::Value,
    source: &str,
    target: &str,
) -> Option<&'a serde_json::Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["source"] == source && e["target"] == target)
}

pub fn node<'a>(graph: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    graph["nodes"].as_array()?.iter().find(|n| n["id"] == id)
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A span description for [`request`]: (service, kind, trace, id, parent, start ms, duration ms, error, attributes).
#[derive(Clone)]
pub struct S {
    pub service: &'static str,
    pub kind: span::SpanKind,
    pub trace: u8,
    pub id: u8,
    pub parent: Option<u8>,
    pub start_ms: u64,
    pub duration_us: u64,
    pub error: bool,
    pub attrs: Vec<KeyValue>,
}

pub const BASE_NS: u64 = 1_700_000_000_000_000_000;

pub fn otlp_span(s: &S) -> Span {
    let start = BASE_NS + s.start_ms * 1_000_000;
    Span {
        trace_id: vec![s.trace; 16],
        span_id: vec![s.id; 8],
        parent_span_id: s.parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("{}-op", s.service),
        kind: s.kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + s.duration_us * 1000,
        attributes: s.attrs.clone(),
        status: s.error.then(|| Status {
            code: status::StatusCode::Error as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// One request holding the given spans, one ResourceSpans per span.
pub fn request(spans: &[S]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: spans
            .iter()
            .map(|s| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s.service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![otlp_span(s)],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// A client/server pair `a -> b` in trace `trace` (ids 2*trace+1 and 2*trace+2).
pub fn rpc_pair(a: &'static str, b: &'static str, trace: u8, duration_us: u64) -> [S; 2] {
    let client = trace.wrapping_mul(2).wrapping_add(1);
    [
        S {
            service: a,
            kind: span::SpanKind::Client,
            trace,
            id: client,
            parent: None,
            start_ms: 0,
            duration_us,
            error: false,
            attrs: vec![],
        },
        S {
            service: b,
            kind: span::SpanKind::Server,
            trace,
            id: client.wrapping_add(1),
            parent: Some(client),
            start_ms: 0,
            duration_us: duration_us / 2,
            error: false,
            attrs: vec![],
        },
    ]
}

/// Rank-1 hotspots published strictly inside a degradation (from a second
/// after it started until it ended).
pub fn tops_during<'a>(
    hotspots: impl IntoIterator<Item = &'a serde_json::Value>,
    start_ms: u64,
    end_ms: u64,
) -> Vec<&'a serde_json::Value> {
    hotspots
        .into_iter()
        .filter(|h| h["rank"] == 1)
        .filter(|h| {
            let at = h["at_ms"].as_u64().unwrap();
            at > start_ms + 1000 && at <= end_ms
        })
        .collect()
}

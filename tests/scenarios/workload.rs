//! The test workload: a shop whose cache is slow, whose payment dependency
//! is flaky (checkout retries failed calls), and whose order queue backs up
//! (messages wait seconds and most are never consumed), as OTLP JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faultline::cli::analyze;
use faultline::graph::{GraphSettings, GraphView};
use faultline::operators::{offline_hotspots, Feedback, Hotspot, OperatorSettings};
use serde_json::{json, Value};

pub const TRACES: u64 = 30;

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

/// Spans grouped by service, as OTLP JSON wants them.
#[derive(Default)]
struct Builder {
    by_service: BTreeMap<&'static str, Vec<Value>>,
    next_id: u64,
}

/// One span: who, what, when (ms from the trace's start) and how it went.
struct Sp<'a> {
    service: &'static str,
    kind: i32,
    name: &'a str,
    parent: Option<u64>,
    start_ms: u64,
    duration_ms: u64,
    error: bool,
    attrs: &'a [(&'a str, &'a str)],
}

impl Builder {
    fn span(&mut self, trace: u64, s: Sp<'_>) -> u64 {
        self.next_id += 1;
        let id = (trace << 20) | self.next_id;
        let start_ns = (1_700_000_000_000 + trace * 20_000 + s.start_ms) * 1_000_000;
        let attributes: Vec<Value> = s
            .attrs
            .iter()
            .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
            .collect();
        let mut span = json!({
            "traceId": format!("{:032x}", 0xfa01_7000_u64 + trace),
            "spanId": format!("{id:016x}"),
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": start_ns.to_string(),
            "endTimeUnixNano": (start_ns + s.duration_ms * 1_000_000).to_string(),
            "attributes": attributes,
            "status": if s.error { json!({"code": 2}) } else { json!({}) },
        });
        if let Some(p) = s.parent {
            span["parentSpanId"] = json!(format!("{p:016x}"));
        }
        self.by_service.entry(s.service).or_default().push(span);
        id
    }

    fn otlp(&self) -> Value {
        let resource_spans: Vec<Value> = self
            .by_service
            .iter()
            .map(|(service, spans)| {
                json!({
                    "resource": {"attributes": [
                        {"key": "service.name", "value": {"stringValue": service}},
                        {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
                        {"key": "k8s.deployment.name", "value": {"stringValue": format!("{service}-v1")}},
                    ]},
                    "scopeSpans": [{"scope": {"name": "faultline.tests"}, "spans": spans}],
                })
            })
            .collect();
        json!({ "resourceSpans": resource_spans })
    }
}

fn sp<'a>(
    service: &'static str,
    kind: i32,
    name: &'a str,
    parent: u64,
    start_ms: u64,
    duration_ms: u64,
) -> Sp<'a> {
    Sp {
        service,
        kind,
        name,
        parent: Some(parent),
        start_ms,
        duration_ms,
        error: false,
        attrs: &[],
    }
}

/// One checkout: frontend → checkout → (slow redis, orders-db, payments
/// with retries on even traces, a message to order-events, consumed by
/// notifier only on every third trace, 5 s later) and a call to an
/// uninstrumented geo-api.
fn checkout_trace(b: &mut Builder, t: u64) {
    let root = b.span(
        t,
        Sp {
            parent: None,
            ..sp("frontend", SERVER, "GET /checkout", 0, 0, 1_500)
        },
    );
    let call = b.span(t, sp("frontend", CLIENT, "POST /checkout", root, 5, 1_480));
    let handler = b.span(t, sp("checkout", SERVER, "POST /checkout", call, 10, 1_460));
    let cache = [("db.system", "redis"), ("server.address", "redis-cart")];
    b.span(
        t,
        Sp {
            attrs: &cache,
            ..sp(
                "checkout",
                CLIENT,
                "GET cart",
                handler,
                15,
                300 + (t % 5) * 50,
            )
        },
    );
    let db = [("db.system", "postgresql"), ("server.address", "orders-db")];
    b.span(
        t,
        Sp {
            attrs: &db,
            ..sp("checkout", CLIENT, "SELECT orders", handler, 520, 5)
        },
    );
    let geo = [("server.address", "geo-api")];
    b.span(
        t,
        Sp {
            attrs: &geo,
            ..sp("checkout", CLIENT, "GET /geo", handler, 526, 3)
        },
    );
    payments(b, t, handler);
    let msg = [
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "order-events"),
    ];
    let produced = b.span(
        t,
        Sp {
            attrs: &msg,
            ..sp(
                "checkout",
                PRODUCER,
                "order-events publish",
                handler,
                700,
                3,
            )
        },
    );
    if t.is_multiple_of(3) {
        let consume = sp(
            "notifier",
            CONSUMER,
            "order-events process",
            produced,
            5_703 + t * 10,
            50,
        );
        b.span(
            t,
            Sp {
                attrs: &msg,
                ..consume
            },
        );
    }
}

/// Even traces: two failed attempts, then success, 5 ms apart (sibling
/// CLIENT spans under checkout's handler). Odd traces: one good call.
fn payments(b: &mut Builder, t: u64, handler: u64) {
    let attempts: &[bool] = if t.is_multiple_of(2) {
        &[true, true, false]
    } else {
        &[false]
    };
    let db = [
        ("db.system", "postgresql"),
        ("server.address", "payments-db"),
    ];
    for (n, &failed) in attempts.iter().enumerate() {
        let start = 530 + n as u64 * 45;
        let call = b.span(
            t,
            Sp {
                error: failed,
                ..sp("checkout", CLIENT, "POST /pay", handler, start, 40)
            },
        );
        let serve = b.span(
            t,
            Sp {
                error: failed,
                ..sp("payments", SERVER, "POST /pay", call, start + 2, 35)
            },
        );
        b.span(
            t,
            Sp {
                attrs: &db,
                ..sp("payments", CLIENT, "INSERT payment", serve, start + 5, 5)
            },
        );
    }
}

/// The workload as one OTLP JSON export.
pub fn otlp() -> Value {
    let mut b = Builder::default();
    for t in 0..TRACES {
        checkout_trace(&mut b, t);
    }
    b.otlp()
}

/// Writes the workload to `dir/shop.otlp.json`.
pub fn write(dir: &Path) -> PathBuf {
    let path = dir.join("shop.otlp.json");
    std::fs::write(&path, serde_json::to_vec(&otlp()).unwrap()).unwrap();
    path
}

/// The offline import and ranking, as `faultline scenarios FILE` runs them.
pub fn import(path: &Path) -> (GraphView, Vec<Hotspot>) {
    let analysis = analyze::analyze(&[path.to_path_buf()], GraphSettings::default()).unwrap();
    let hotspots = offline_hotspots(
        &analysis.graph,
        &OperatorSettings::default(),
        &Feedback::default(),
    );
    (analysis.graph, hotspots)
}

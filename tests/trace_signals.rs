//! Retries, paths and queues read from assembled traces, each checked
//! against numbers computed here independently of faultline.

use std::sync::Arc;

use faultline::graph::{GraphSettings, GraphView, OfflineGraph};
use faultline::model::{Attributes, Link, Resource, Span, SpanKind, StatusCode};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000 * MS;

struct B {
    spans: Vec<Span>,
    next: u64,
}

impl B {
    fn new() -> B {
        B {
            spans: Vec::new(),
            next: 1,
        }
    }

    /// Adds a span; returns its id. Times in ms after T0.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        trace: u64,
        service: &str,
        kind: SpanKind,
        parent: Option<[u8; 8]>,
        start_ms: u64,
        dur_ms: u64,
        failed: bool,
        attrs: &[(&str, &str)],
    ) -> [u8; 8] {
        let id = self.next.to_be_bytes();
        self.next += 1;
        let mut attributes = Attributes::default();
        for (k, v) in attrs {
            attributes.set(k, faultline::model::attributes::Value::Str(v));
        }
        self.spans.push(Span {
            trace_id: [[0; 8], trace.to_be_bytes()].concat().try_into().unwrap(),
            span_id: id,
            parent_span_id: parent,
            resource: Arc::new(Resource {
                service_name: service.into(),
                ..Resource::default()
            }),
            name: format!("{service} op").into(),
            kind,
            start_unix_nano: T0 + start_ms * MS,
            end_unix_nano: T0 + (start_ms + dur_ms) * MS,
            status: if failed {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            attributes,
            links: vec![],
        });
        id
    }

    fn graph(self) -> GraphView {
        let mut g = OfflineGraph::new(GraphSettings::default());
        g.ingest(&self.spans);
        g.finish()
    }
}

fn edge<'a>(v: &'a GraphView, s: &str, t: &str) -> &'a faultline::graph::view::EdgeView {
    v.edge(s, t).unwrap_or_else(|| panic!("edge {s}->{t}"))
}

/// checkout calls payments: attempts in `attempts` (ms start, failed).
fn payment_calls(b: &mut B, trace: u64, attempts: &[(u64, bool)], resend: bool) {
    let root = b.add(
        trace,
        "checkout",
        SpanKind::Server,
        None,
        0,
        1000,
        false,
        &[],
    );
    for (n, &(start, failed)) in attempts.iter().enumerate() {
        let count = n.to_string();
        let attrs: Vec<(&str, &str)> = if resend {
            vec![("http.request.resend_count", count.as_str())]
        } else {
            vec![]
        };
        let c = b.add(
            trace,
            "checkout",
            SpanKind::Client,
            Some(root),
            start,
            50,
            failed,
            &attrs,
        );
        b.add(
            trace,
            "payments",
            SpanKind::Server,
            Some(c),
            start + 1,
            48,
            failed,
            &[],
        );
    }
}

#[test]
fn retries_without_resend_count_are_failed_siblings_within_the_gap() {
    let mut b = B::new();
    // Trace 1: fail, retry 100 ms later, fail, retry, success → 2 retries.
    payment_calls(&mut b, 1, &[(0, true), (150, true), (300, false)], false);
    // Trace 2: three successful calls in a row (a loop, not retries) → 0.
    payment_calls(&mut b, 2, &[(0, false), (60, false), (120, false)], false);
    // Trace 3: a failure, then a call 5 s later (past the 1 s gap) → 0.
    payment_calls(&mut b, 3, &[(0, true), (5050, false)], false);
    let v = b.graph();
    let e = edge(&v, "checkout", "payments");
    assert_eq!((e.attempts, e.retries), (8, 2));
    assert_eq!(e.calls, 8);
}

#[test]
fn resend_count_decides_where_present() {
    let mut b = B::new();
    // resend_count 0, 1, 2 on three successful calls: 2 retries even though
    // none failed (the instrumentation knows better than the heuristic).
    payment_calls(&mut b, 1, &[(0, false), (60, false), (120, false)], true);
    let v = b.graph();
    let e = edge(&v, "checkout", "payments");
    assert_eq!((e.attempts, e.retries), (3, 2));
    let hotspots =
        faultline::operators::offline_hotspots(&v, &Default::default(), &Default::default());
    let top = hotspots
        .iter()
        .find(|h| h.key == "edge:checkout->payments")
        .expect("payments ranked");
    assert!((top.signals["retry_amplification"] - 3.0).abs() < 1e-9);
}

#[test]
fn path_p99_and_critical_edge() {
    let mut b = B::new();
    let mut roots = Vec::new();
    for t in 0..200u64 {
        // gateway → orders → inventory → redis; inventory's own time varies.
        let inv = 5 + (t * 37) % 200;
        let total = inv + 2 + 3 + 4;
        roots.push(total);
        let r = b.add(t, "gateway", SpanKind::Server, None, 0, total, false, &[]);
        let c1 = b.add(
            t,
            "gateway",
            SpanKind::Client,
            Some(r),
            1,
            total - 2,
            false,
            &[],
        );
        let s1 = b.add(
            t,
            "orders",
            SpanKind::Server,
            Some(c1),
            1,
            total - 2,
            false,
            &[],
        );
        let c2 = b.add(
            t,
            "orders",
            SpanKind::Client,
            Some(s1),
            2,
            inv + 2,
            false,
            &[],
        );
        let s2 = b.add(
            t,
            "inventory",
            SpanKind::Server,
            Some(c2),
            2,
            inv + 1,
            false,
            &[],
        );
        b.add(
            t,
            "inventory",
            SpanKind::Client,
            Some(s2),
            3,
            1,
            false,
            &[("db.system", "redis"), ("server.address", "redis")],
        );
    }
    let v = b.graph();
    let path = v
        .paths
        .iter()
        .find(|p| p.nodes == ["gateway", "orders", "inventory", "redis"])
        .expect("the path");
    assert_eq!(path.traces, 200);
    // p99 by nearest rank over the root durations, computed here.
    roots.sort();
    let p99 = roots[(0.99 * roots.len() as f64).ceil() as usize - 1] as f64;
    let got = path.latency_ms.unwrap().p99;
    assert!((got - p99).abs() <= p99 * 0.002, "p99 {got} vs {p99}");
    let critical = path.critical_edge.as_ref().unwrap();
    assert_eq!(
        (critical.source.as_str(), critical.target.as_str()),
        ("orders", "inventory")
    );
}

#[test]
fn queue_depth_lag_and_reordering() {
    let mut b = B::new();
    let q = [
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "orders"),
        ("messaging.kafka.message.key", "cust-1"),
    ];
    // Ten messages produced 10 ms apart; seven consumed, message 4 after 5.
    let mut producers = Vec::new();
    for m in 0..10u64 {
        let id = b.add(
            100 + m,
            "shop",
            SpanKind::Producer,
            None,
            m * 10,
            1,
            false,
            &q,
        );
        producers.push((100 + m, id, m * 10 + 1));
    }
    let consume_at = [50u64, 60, 70, 80, 100, 90, 110];
    let mut lags = Vec::new();
    for (m, at) in consume_at.iter().enumerate() {
        let (trace, id, produced_end) = producers[m];
        b.add(
            500 + m as u64,
            "fulfil",
            SpanKind::Consumer,
            None,
            *at,
            2,
            false,
            &q,
        );
        let last = b.spans.last_mut().unwrap();
        last.links = vec![Link {
            trace_id: [[0; 8], trace.to_be_bytes()].concat().try_into().unwrap(),
            span_id: id,
        }];
        lags.push((at - produced_end) as f64);
    }
    let v = b.graph();
    let d = v.destinations.iter().find(|d| d.name == "orders").unwrap();
    assert_eq!((d.produced, d.consumed, d.in_flight), (10, 7, 3));
    let mean = lags.iter().sum::<f64>() / lags.len() as f64;
    assert!(
        (d.lag_ms.unwrap().mean - mean).abs() < 1e-6,
        "{:?} vs {mean}",
        d.lag_ms
    );
    assert_eq!(d.out_of_order, 1);
}

#[test]
fn timeouts_are_counted_apart_from_other_errors() {
    let mut b = B::new();
    let cases: [(bool, &[(&str, &str)]); 6] = [
        (true, &[("rpc.grpc.status_code", "4")]),
        (true, &[("error.type", "java.net.SocketTimeoutException")]),
        (true, &[("error.type", "java.net.ConnectException")]),
        (true, &[("http.response.status_code", "504")]),
        (false, &[]),
        (false, &[("error.type", "timeout")]),
    ];
    for (t, (failed, attrs)) in cases.iter().enumerate() {
        let root = b.add(
            t as u64,
            "checkout",
            SpanKind::Server,
            None,
            0,
            100,
            false,
            &[],
        );
        let c = b.add(
            t as u64,
            "checkout",
            SpanKind::Client,
            Some(root),
            1,
            90,
            *failed,
            attrs,
        );
        b.add(
            t as u64,
            "payments",
            SpanKind::Server,
            Some(c),
            2,
            80,
            false,
            &[],
        );
    }
    let v = b.graph();
    let e = edge(&v, "checkout", "payments");
    // Failed: 4; of those, timeouts: DEADLINE_EXCEEDED, SocketTimeout, 504.
    // (An OK span naming a timeout is not a failed call.)
    assert_eq!((e.calls, e.errors, e.timeouts), (6, 4, 3));
    let hotspots =
        faultline::operators::offline_hotspots(&v, &Default::default(), &Default::default());
    let h = hotspots
        .iter()
        .find(|h| h.key == "edge:checkout->payments")
        .unwrap();
    let t = h
        .components
        .iter()
        .find(|c| c.name == "timeouts")
        .expect("timeouts component");
    assert!(
        (t.value - 0.5).abs() < 1e-9 && (t.points - 5.0).abs() < 1e-9,
        "{t:?}"
    );
}

/// One window's view: `n` traces of checkout → payments, and with `with_db`
/// also checkout → orders-db (a different edge set: another cluster).
fn window(n: u64, with_db: bool) -> GraphView {
    let mut b = B::new();
    for t in 0..n {
        let root = b.add(t, "checkout", SpanKind::Server, None, 0, 100, false, &[]);
        let c = b.add(
            t,
            "checkout",
            SpanKind::Client,
            Some(root),
            1,
            50,
            false,
            &[],
        );
        b.add(t, "payments", SpanKind::Server, Some(c), 2, 40, false, &[]);
        if with_db && t % 2 == 0 {
            b.add(
                t,
                "checkout",
                SpanKind::Client,
                Some(root),
                60,
                5,
                false,
                &[("db.system", "postgresql"), ("db.name", "orders-db")],
            );
        }
    }
    b.graph()
}

#[test]
fn a_new_path_signature_is_an_anomaly_after_warm_up() {
    use faultline::operators::records::AnomalyState;
    use faultline::operators::{Feedback, OperatorSettings, Operators};
    let settings = OperatorSettings::default();
    let need = settings.min_baseline_windows;
    let mut ops = Operators::new(settings, Feedback::default());
    let mut events = Vec::new();
    // Warm-up: the first signature seen at start is not news.
    for _ in 0..need + 1 {
        let v = window(20, false);
        events.extend(ops.evaluate(&v, &v).anomalies);
    }
    assert!(events.is_empty(), "{events:?}");
    let v = window(20, true);
    let new: Vec<_> = ops.evaluate(&v, &v).anomalies;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        (new[0].signal.as_str(), new[0].state),
        ("new_signature", AnomalyState::Start)
    );
    assert!(new[0].key.starts_with("cluster:"));
    // It ends once the cluster has been seen in enough windows.
    let mut later = Vec::new();
    for _ in 0..need {
        let v = window(20, true);
        later.extend(ops.evaluate(&v, &v).anomalies);
    }
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(
        (later[0].id.as_str(), later[0].state),
        (new[0].id.as_str(), AnomalyState::End)
    );
}

/// A target with fewer than `min_calls` calls is reported but takes no
/// baseline slot: a rare edge judged first used to fill `max_tracked` and
/// leave a busy edge's signals out of its records.
#[test]
fn rare_targets_take_no_baseline_slot() {
    use faultline::operators::{Feedback, OperatorSettings, Operators};
    let settings = OperatorSettings {
        max_tracked: 5, // one edge's five signals
        ..OperatorSettings::default()
    };
    let need = settings.min_baseline_windows;
    let mut ops = Operators::new(settings, Feedback::default());
    let view = || {
        let mut b = B::new();
        let c = b.add(1_000, "a-rare", SpanKind::Client, None, 0, 10, false, &[]);
        b.add(
            1_000,
            "b-other",
            SpanKind::Server,
            Some(c),
            1,
            5,
            false,
            &[],
        );
        for t in 0..20 {
            let c = b.add(t, "checkout", SpanKind::Client, None, 0, 50, false, &[]);
            b.add(t, "payments", SpanKind::Server, Some(c), 1, 40, false, &[]);
        }
        b.graph()
    };
    let mut last = Vec::new();
    for _ in 0..=need {
        let v = view();
        last = ops.evaluate(&v, &v).signals;
    }
    let record = |key: &str| {
        last.iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no record of {key}: {last:?}"))
    };
    let rare = record("edge:a-rare->b-other");
    let p99 = rare
        .signals
        .get("p99_ms")
        .expect("the rare edge's value is reported");
    assert!(p99.baseline.is_none() && p99.within_tolerance, "{rare:?}");
    let busy = record("edge:checkout->payments");
    assert_eq!(busy.signals.len(), 5, "{busy:?}");
    let p99 = busy.signals.get("p99_ms").unwrap();
    assert_eq!(
        p99.baseline.as_ref().map(|b| b.windows),
        Some(need),
        "{busy:?}"
    );
}

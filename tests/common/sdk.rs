//! Shared by the end-to-end SDK tests (`python_sdk`, `rust_sdk`): the test
//! pipeline, the receiver protocols, `/api/graph` and `/metrics` helpers and
//! the comparable "shape" of the graph. What each test expects stays in it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faultline::cli::serve::Running;
use serde_json::Value;

/// The default pipeline, on ports the OS picks, with a short pairing TTL and
/// tick (so CLIENT spans to uninstrumented peers expire quickly), and the
/// Tempo naming rule pinned.
pub const PIPELINE: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        max_recv_msg_size_mib: 16
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size_mib: 16

processors:
  graph:
    window: 10s
    windows_kept: 30
    tick: 100ms
    naming: tempo
    pairing:
      ttl: 1s
      max_items: 100000
    max_nodes: 10000
    max_edges: 100000
    max_operations: 100000

extensions:
  api:
    endpoint: 127.0.0.1:0

service:
  extensions: [api]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [graph]
      exporters: []
"#;

/// The OTLP receiver a test sends to. Tests add their own inherent methods
/// (how their exporter is configured) in their own file.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    /// The `receiver` label of the self-metrics.
    pub fn receiver(self) -> &'static str {
        match self {
            Protocol::Grpc => "otlp_grpc",
            Protocol::Http => "otlp_http",
        }
    }

    pub fn other(self) -> Protocol {
        match self {
            Protocol::Grpc => Protocol::Http,
            Protocol::Http => Protocol::Grpc,
        }
    }

    /// The endpoint as OTLP exporters want it (gRPC: base URL, HTTP: full
    /// `/v1/traces` URL).
    pub fn endpoint(self, running: &Running) -> String {
        match self {
            Protocol::Grpc => format!("http://{}", running.grpc.expect("gRPC receiver bound")),
            Protocol::Http => format!(
                "http://{}/v1/traces",
                running.http.expect("HTTP receiver bound")
            ),
        }
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// GET `http://{api}{path}`, failing unless it succeeds.
async fn get_ok(client: &reqwest::Client, api: SocketAddr, path: &str) -> reqwest::Response {
    let what = path.split('?').next().unwrap_or(path);
    let resp = client
        .get(format!("http://{api}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {what}: {e}"));
    assert!(resp.status().is_success(), "GET {what}: {}", resp.status());
    resp
}

pub async fn get_graph(client: &reqwest::Client, api: SocketAddr) -> Value {
    let resp = get_ok(client, api, "/api/graph?window=all").await;
    resp.json().await.expect("/api/graph is JSON")
}

pub async fn get_metrics(client: &reqwest::Client, api: SocketAddr) -> String {
    let resp = get_ok(client, api, "/metrics").await;
    resp.text().await.expect("/metrics body")
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

pub fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {v}"))
}

/// One edge as compared: (kind, calls, errors), keyed by (source, target).
pub type Edges = BTreeMap<(String, String), (String, u64, u64)>;

/// The parts of the graph a test pins down exactly.
#[derive(Debug, PartialEq)]
pub struct Shape {
    /// Node id -> kind.
    pub nodes: BTreeMap<String, String>,
    pub edges: Edges,
    /// `unpaired.pending`.
    pub pending: u64,
    /// (calls, errors) of the nodes the test watches, by id; a watched node
    /// missing from the graph is missing here.
    pub watched: BTreeMap<String, (u64, u64)>,
}

impl Shape {
    /// The shape of `graph`, with (calls, errors) of the `watch`ed nodes.
    pub fn of<'a>(graph: &Value, watch: impl IntoIterator<Item = &'a str>) -> Shape {
        let list = |key: &str| graph[key].as_array().cloned().unwrap_or_default();
        let nodes = list("nodes");
        let watched = watch
            .into_iter()
            .filter_map(|id| {
                let n = nodes.iter().find(|n| n["id"] == id)?;
                Some((
                    id.to_owned(),
                    (u64_field(n, "calls"), u64_field(n, "errors")),
                ))
            })
            .collect();
        Shape {
            nodes: nodes
                .iter()
                .map(|n| {
                    (
                        str_field(n, "id").to_owned(),
                        str_field(n, "kind").to_owned(),
                    )
                })
                .collect(),
            edges: list("edges")
                .iter()
                .map(|e| {
                    (
                        (
                            str_field(e, "source").to_owned(),
                            str_field(e, "target").to_owned(),
                        ),
                        (
                            str_field(e, "kind").to_owned(),
                            u64_field(e, "calls"),
                            u64_field(e, "errors"),
                        ),
                    )
                })
                .collect(),
            pending: u64_field(&graph["unpaired"], "pending"),
            watched,
        }
    }

    /// An expected shape: `(id, kind)` nodes, `(source, target, kind, calls,
    /// errors)` edges, `(id, calls, errors)` watched nodes, nothing pending.
    pub fn expected(
        nodes: &[(&str, &str)],
        edges: &[(&str, &str, &str, u64, u64)],
        watched: &[(&str, u64, u64)],
    ) -> Shape {
        Shape {
            nodes: nodes
                .iter()
                .map(|(id, kind)| (id.to_string(), kind.to_string()))
                .collect(),
            edges: edges
                .iter()
                .map(|(s, t, kind, calls, errors)| {
                    (
                        (s.to_string(), t.to_string()),
                        (kind.to_string(), *calls, *errors),
                    )
                })
                .collect(),
            pending: 0,
            watched: watched
                .iter()
                .map(|(id, calls, errors)| (id.to_string(), (*calls, *errors)))
                .collect(),
        }
    }

    /// The shape of `graph`, watching the nodes `self` watches.
    pub fn observe(&self, graph: &Value) -> Shape {
        Shape::of(graph, self.watched.keys().map(String::as_str))
    }
}

/// Node `id` of `graph`; fails showing the graph when there is none.
pub fn expect_node<'a>(graph: &'a Value, id: &str) -> &'a Value {
    super::node(graph, id).unwrap_or_else(|| panic!("no node {id}\n{}", pretty(graph)))
}

/// Edge `source -> target` of `graph`; fails showing the graph when there is none.
pub fn expect_edge<'a>(graph: &'a Value, source: &str, target: &str) -> &'a Value {
    super::edge(graph, source, target)
        .unwrap_or_else(|| panic!("no edge {source} -> {target}\n{}", pretty(graph)))
}

/// `key.mean` (a latency summary) of edge `source -> target`; fails showing
/// the graph when there is none.
pub fn edge_mean(graph: &Value, source: &str, target: &str, key: &str) -> f64 {
    let e = expect_edge(graph, source, target);
    e[key]["mean"]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key}.mean on {e}\n{}", pretty(graph)))
}

pub fn pretty(graph: &Value) -> String {
    serde_json::to_string_pretty(graph).unwrap_or_else(|_| graph.to_string())
}

/// Polls `/api/graph` every 100 ms for at most 15 s until it has the expected
/// shape; returns the graph, or fails showing the last one.
pub async fn wait_for_shape(client: &reqwest::Client, api: SocketAddr, want: &Shape) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let graph = get_graph(client, api).await;
        let got = want.observe(&graph);
        if got == *want {
            return graph;
        }
        if Instant::now() >= deadline {
            panic!(
                "the graph did not reach the expected state within 15 s\n\
                 expected: {want:#?}\n\
                 got:      {got:#?}\n\
                 graph JSON:\n{}",
                pretty(&graph)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts exact nodes, edges and counts one by one, for precise messages
/// (after [`wait_for_shape`] already required the whole shape).
pub fn assert_shape(graph: &Value, want: &Shape) {
    let json = pretty(graph);
    let got = want.observe(graph);
    assert_eq!(got.nodes, want.nodes, "nodes and kinds\n{json}");
    assert_eq!(got.edges, want.edges, "edges (kind, calls, errors)\n{json}");
    assert_eq!(got.pending, 0, "unpaired.pending\n{json}");
    assert_eq!(
        got.watched, want.watched,
        "watched nodes (calls, errors)\n{json}"
    );
}

/// Asserts every edge's `error_rate`: `rate` on `failing` (source, target),
/// 0 elsewhere.
pub fn assert_edge_error_rates(graph: &Value, failing: (&str, &str), rate: f64) {
    let json = pretty(graph);
    let edges = graph["edges"].as_array().expect("`edges` is an array");
    for e in edges {
        let (s, t) = (str_field(e, "source"), str_field(e, "target"));
        let got = e["error_rate"].as_f64().expect("error_rate is a number");
        let want = if (s, t) == failing { rate } else { 0.0 };
        assert!(
            approx(got, want, 1e-12),
            "{s} -> {t}: error_rate {got}, want {want}\n{json}"
        );
    }
}

/// `name{receiver="..."}` from the Prometheus text, if present.
pub fn metric(text: &str, name: &str, receiver: &str) -> Option<u64> {
    let prefix = format!("{name}{{receiver=\"{receiver}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| {
        v.trim()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{name}: bad value {v:?}: {e}")) as u64
    })
}

/// Self-metrics: every one of the `sent` spans was accepted, by the
/// `protocol` receiver only, and none was refused.
pub async fn assert_accepted_by(
    client: &reqwest::Client,
    api: SocketAddr,
    protocol: Protocol,
    sent: u64,
) {
    let metrics = get_metrics(client, api).await;
    let accepted = "faultline_receiver_accepted_spans_total";
    assert_eq!(
        metric(&metrics, accepted, protocol.receiver()),
        Some(sent),
        "{accepted}{{receiver=\"{}\"}} in /metrics:\n{metrics}",
        protocol.receiver()
    );
    assert_eq!(
        metric(&metrics, accepted, protocol.other().receiver()).unwrap_or(0),
        0,
        "nothing was sent to the other receiver:\n{metrics}"
    );
    let served = "faultline_receiver_request_duration_seconds_count";
    assert!(
        metric(&metrics, served, protocol.receiver()).is_some_and(|n| n >= 1),
        "the requests are timed, {served}{{receiver=\"{}\"}}:\n{metrics}",
        protocol.receiver()
    );
    assert_eq!(
        metric(&metrics, served, protocol.other().receiver()),
        None,
        "the other receiver timed no request:\n{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "faultline_receiver_refused_spans_total",
            protocol.receiver()
        )
        .unwrap_or(0),
        0,
        "no span refused:\n{metrics}"
    );
}

pub fn approx(actual: f64, want: f64, tolerance: f64) -> bool {
    (actual - want).abs() <= tolerance
}

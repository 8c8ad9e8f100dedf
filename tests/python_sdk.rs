//! End to end with the real OpenTelemetry Python SDK: `tests/python/send_shop_trace.py`
//! exports a five-service "shop" trace to a running faultline over OTLP/gRPC
//! and over OTLP/HTTP, and `/api/graph` must then show exactly the expected
//! nodes, edges, counts and error rates.
//!
//! Needs `python3` with the packages in `tests/python/requirements.txt`; the
//! tests fail (never skip) when they are missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use faultline::cli::serve::{self, Running};
use faultline::config;
use serde_json::Value;

/// Traces the script sends; the first one has a failed payment.
const TRACES: u64 = 5;
/// Spans in one trace (see the script's docstring).
const SPANS_PER_TRACE: u64 = 11;

/// The default pipeline, on ports the OS picks, with a short pairing TTL so
/// the CLIENT span to the uninstrumented email provider expires quickly.
const PIPELINE: &str = r#"
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

const INSTALL_HINT: &str = "install the OpenTelemetry Python SDK and exporters with \
     `pip install -r tests/python/requirements.txt` (from the faultline directory)";

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    fn arg(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }

    fn receiver(self) -> &'static str {
        match self {
            Protocol::Grpc => "otlp_grpc",
            Protocol::Http => "otlp_http",
        }
    }

    fn other(self) -> Protocol {
        match self {
            Protocol::Grpc => Protocol::Http,
            Protocol::Http => Protocol::Grpc,
        }
    }

    /// The endpoint as each Python exporter wants it.
    fn endpoint(self, running: &Running) -> String {
        match self {
            Protocol::Grpc => format!("http://{}", running.grpc.expect("gRPC receiver bound")),
            Protocol::Http => format!(
                "http://{}/v1/traces",
                running.http.expect("HTTP receiver bound")
            ),
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.current_dir(manifest_dir())
        // The collector is on loopback: never go through a proxy to reach it.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Fails the test (never skips it) when python3 or the SDK packages are missing.
fn require_python_sdk() {
    let out = python()
        .args([
            "-c",
            "import opentelemetry.sdk.trace, \
             opentelemetry.exporter.otlp.proto.grpc.trace_exporter, \
             opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3, then {INSTALL_HINT}")
        });
    assert!(
        out.status.success(),
        "python3 cannot import the OpenTelemetry SDK/exporters: {INSTALL_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the script and returns how many spans it sent (its `spans=N` line).
fn send_shop_traces(protocol: Protocol, endpoint: &str, traces: u64) -> u64 {
    let out = python()
        .arg("tests/python/send_shop_trace.py")
        .args(["--protocol", protocol.arg(), "--endpoint", endpoint])
        .args(["--traces", &traces.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {INSTALL_HINT}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "send_shop_trace.py over {protocol:?} to {endpoint} failed ({}); if an import \
         failed, {INSTALL_HINT}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
        .trim()
        .strip_prefix("spans=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "expected `spans=N` as the script's only output, got:\n{stdout}\nstderr:\n{stderr}"
            )
        })
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

async fn get_graph(client: &reqwest::Client, api: SocketAddr) -> Value {
    let resp = client
        .get(format!("http://{api}/api/graph?window=all"))
        .send()
        .await
        .expect("GET /api/graph");
    assert!(
        resp.status().is_success(),
        "GET /api/graph: {}",
        resp.status()
    );
    resp.json().await.expect("/api/graph is JSON")
}

async fn get_metrics(client: &reqwest::Client, api: SocketAddr) -> String {
    let resp = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        resp.status().is_success(),
        "GET /metrics: {}",
        resp.status()
    );
    resp.text().await.expect("/metrics body")
}

/// One edge as compared: (kind, calls, errors), keyed by (source, target).
type Edges = BTreeMap<(String, String), (String, u64, u64)>;

/// The parts of the graph the test pins down exactly.
#[derive(Debug, PartialEq)]
struct Shape {
    nodes: BTreeMap<String, String>,
    edges: Edges,
    pending: u64,
    /// (calls, errors) of node `payments`.
    payments: Option<(u64, u64)>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer in {v}"))
}

fn shape(graph: &Value) -> Shape {
    let list = |key: &str| graph[key].as_array().cloned().unwrap_or_default();
    let nodes = list("nodes")
        .iter()
        .map(|n| {
            (
                str_field(n, "id").to_owned(),
                str_field(n, "kind").to_owned(),
            )
        })
        .collect();
    let edges = list("edges")
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
        .collect();
    let payments = list("nodes")
        .iter()
        .find(|n| n["id"] == "payments")
        .map(|n| (u64_field(n, "calls"), u64_field(n, "errors")));
    Shape {
        nodes,
        edges,
        pending: u64_field(&graph["unpaired"], "pending"),
        payments,
    }
}

fn expected_shape(n: u64) -> Shape {
    let nodes = [
        ("email-provider", "external"),
        ("gateway", "service"),
        ("inventory", "service"),
        ("notifier", "service"),
        ("orders", "service"),
        ("payments", "service"),
        ("redis", "database"),
        ("user", "external"),
    ];
    let edges = [
        ("user", "gateway", "external", n, 0),
        ("gateway", "orders", "rpc", n, 0),
        ("orders", "inventory", "rpc", n, 0),
        ("inventory", "redis", "database", n, 0),
        ("orders", "payments", "rpc", n, 1),
        ("orders", "notifier", "messaging", n, 0),
        ("notifier", "email-provider", "external", n, 0),
    ];
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
        payments: Some((n, 1)),
    }
}

fn pretty(graph: &Value) -> String {
    serde_json::to_string_pretty(graph).unwrap_or_else(|_| graph.to_string())
}

/// Polls `/api/graph` every 100 ms for at most 15 s until it has the expected
/// shape; returns the graph, or fails showing the last one.
async fn wait_for_shape(client: &reqwest::Client, api: SocketAddr, want: &Shape) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let graph = get_graph(client, api).await;
        let got = shape(&graph);
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

/// `name{receiver="..."}` from the Prometheus text, if present.
fn metric(text: &str, name: &str, receiver: &str) -> Option<u64> {
    let prefix = format!("{name}{{receiver=\"{receiver}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| {
        v.trim()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{name}: bad value {v:?}: {e}")) as u64
    })
}

fn approx(actual: f64, want: f64, tolerance: f64) -> bool {
    (actual - want).abs() <= tolerance
}

async fn shop_trace_over(protocol: Protocol) {
    require_python_sdk();
    let config = config::parse("<python_sdk test pipeline>", PIPELINE).expect("test pipeline");
    let running = serve::start(&config).await.expect("faultline starts");
    let api = running.api.expect("API bound");
    let endpoint = protocol.endpoint(&running);

    let sent = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || send_shop_traces(protocol, &endpoint, TRACES)
    })
    .await
    .expect("the script runner did not panic");
    assert_eq!(
        sent,
        TRACES * SPANS_PER_TRACE,
        "spans the script reports sending"
    );

    let client = http_client();
    let want = expected_shape(TRACES);
    let graph = wait_for_shape(&client, api, &want).await;
    let json = pretty(&graph);
    let got = shape(&graph);

    // Exact nodes, edges and counts (the poll above already required them;
    // asserted again one by one for precise messages).
    assert_eq!(got.nodes, want.nodes, "nodes and kinds\n{json}");
    assert_eq!(got.edges, want.edges, "edges (kind, calls, errors)\n{json}");
    assert_eq!(got.pending, 0, "unpaired.pending\n{json}");

    let edges = graph["edges"].as_array().unwrap();
    for e in edges {
        let (s, t) = (str_field(e, "source"), str_field(e, "target"));
        let rate = e["error_rate"].as_f64().expect("error_rate is a number");
        let want_rate = if (s, t) == ("orders", "payments") {
            1.0 / TRACES as f64
        } else {
            0.0
        };
        assert!(
            approx(rate, want_rate, 1e-12),
            "{s} -> {t}: error_rate {rate}, want {want_rate}\n{json}"
        );
    }
    let node = |id: &str| {
        graph["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id}\n{json}"))
    };
    let payments = node("payments");
    assert_eq!(
        u64_field(payments, "calls"),
        TRACES,
        "payments calls\n{json}"
    );
    assert_eq!(u64_field(payments, "errors"), 1, "payments errors\n{json}");
    assert!(
        approx(
            payments["error_rate"].as_f64().unwrap(),
            1.0 / TRACES as f64,
            1e-12
        ),
        "payments error_rate\n{json}"
    );
    for service in ["gateway", "orders", "inventory", "notifier"] {
        let n = node(service);
        assert_eq!(
            (u64_field(n, "calls"), u64_field(n, "errors")),
            (TRACES, 0),
            "{service} (calls, errors)\n{json}"
        );
    }
    assert_eq!(node("redis")["system"], "redis", "redis system\n{json}");

    // The script's explicit start/end times survive the trip (HDR histograms
    // keep 3 significant digits, hence the tolerance).
    let edge = |s: &str, t: &str| {
        edges
            .iter()
            .find(|e| e["source"] == s && e["target"] == t)
            .unwrap_or_else(|| panic!("no edge {s} -> {t}\n{json}"))
    };
    let mean = |e: &Value, key: &str| {
        e[key]["mean"]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key}.mean on {e}\n{json}"))
    };
    let rpc = edge("gateway", "orders");
    assert!(
        approx(mean(rpc, "latency_ms"), 55.0, 0.5),
        "gateway -> orders client latency\n{json}"
    );
    assert!(
        approx(mean(rpc, "server_latency_ms"), 53.0, 0.5),
        "gateway -> orders server latency\n{json}"
    );
    assert!(
        approx(
            mean(edge("orders", "notifier"), "queue_latency_ms"),
            16.0,
            0.5
        ),
        "orders -> notifier queue latency (consumer start - producer end)\n{json}"
    );

    // Self-metrics: every span the SDK sent was accepted, by this receiver only.
    let metrics = get_metrics(&client, api).await;
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

    running.stop().await.expect("faultline stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_shop_trace_over_otlp_grpc() {
    shop_trace_over(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_shop_trace_over_otlp_http() {
    shop_trace_over(Protocol::Http).await;
}

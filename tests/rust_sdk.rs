//! End to end with the official OpenTelemetry Rust SDK (`opentelemetry_sdk`
//! and `opentelemetry-otlp`): each service gets its own `SdkTracerProvider`
//! exporting to a running faultline, unchanged, over OTLP/gRPC (tonic) and
//! over OTLP/HTTP (protobuf, async reqwest), and `/api/graph` must then show
//! exactly the expected nodes, edges, counts and error rates.
//!
//! Each trace is
//!
//! ```text
//! web  SERVER  GET /checkout              (root: edge user -> web)
//! └─ web  CLIENT  GET /users              (traceparent injected ...)
//!    └─ api  SERVER  GET /users           (... and extracted: edge web -> api)
//!       └─ api  CLIENT  SELECT users      (db.system=postgresql, db.name=users:
//!                                          edge api -> users, Tempo naming)
//! ```
//!
//! and the first trace fails on both sides of `web -> api`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use faultline::cli::serve::{self, Running};
use faultline::config;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::Value;

/// Traces sent; the first one has a failed `web -> api` call.
const TRACES: u64 = 4;
/// Spans in one trace (see the module docs).
const SPANS_PER_TRACE: u64 = 4;

/// Explicit span timings, checked back through the graph's latency summaries.
const ROOT_MS: u64 = 30;
const RPC_CLIENT_MS: u64 = 20;
const RPC_SERVER_MS: u64 = 15;
const DB_MS: u64 = 5;

/// The default pipeline, on ports the OS picks, with a short pairing TTL and
/// tick, and the Tempo naming rule pinned (the `users` database name comes
/// from `db.name`).
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

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
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

    /// The endpoint as each Rust exporter wants it.
    fn endpoint(self, running: &Running) -> String {
        match self {
            Protocol::Grpc => format!("http://{}", running.grpc.expect("gRPC receiver bound")),
            Protocol::Http => format!(
                "http://{}/v1/traces",
                running.http.expect("HTTP receiver bound")
            ),
        }
    }

    /// An OTLP span exporter built the way an application would.
    fn exporter(self, endpoint: &str) -> SpanExporter {
        let built = match self {
            Protocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(5))
                .build(),
            Protocol::Http => SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(5))
                .build(),
        };
        built.unwrap_or_else(|e| panic!("building the {self:?} span exporter for {endpoint}: {e}"))
    }
}

/// One provider per service, each with its own exporter.
///
/// gRPC uses the SDK's default `BatchSpanProcessor` (several traces per
/// request). HTTP uses the `SimpleSpanProcessor` (one span per request): the
/// batch processor exports from its own plain thread, where the async
/// `reqwest-client` panics with "there is no reactor running"; the simple one
/// exports on the ending thread, which here is inside the Tokio runtime.
fn provider(protocol: Protocol, endpoint: &str, service: &'static str) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let exporter = protocol.exporter(endpoint);
    match protocol {
        Protocol::Grpc => builder.with_batch_exporter(exporter),
        Protocol::Http => builder.with_simple_exporter(exporter),
    }
    .build()
}

/// Produces `traces` traces through the SDK, then flushes and shuts the
/// providers down; returns how many spans were ended. Blocking: the batch
/// processor's flush and shutdown wait on its export thread, the simple
/// processor exports as each span ends.
fn send_traces(protocol: Protocol, endpoint: &str, traces: u64) -> u64 {
    let web_provider = provider(protocol, endpoint, "web");
    let api_provider = provider(protocol, endpoint, "api");
    let web = web_provider.tracer("faultline-rust-sdk-test");
    let api = api_provider.tracer("faultline-rust-sdk-test");
    let propagator = TraceContextPropagator::new();
    let ms = Duration::from_millis;
    let mut ended = 0;

    for i in 0..traces {
        let failed = i == 0;
        let t0 = SystemTime::now();

        // web: the entry point, no parent.
        let root_cx = Context::current_with_span(
            web.span_builder("GET /checkout")
                .with_kind(SpanKind::Server)
                .with_start_time(t0)
                .with_attributes([
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("http.route", "/checkout"),
                ])
                .start_with_context(&web, &Context::new()),
        );

        // web -> api, the client side; its context travels as `traceparent`.
        let client_cx = Context::current_with_span(
            web.span_builder("GET /users")
                .with_kind(SpanKind::Client)
                .with_start_time(t0 + ms(2))
                .with_attributes([KeyValue::new("http.request.method", "GET")])
                .start_with_context(&web, &root_cx),
        );
        let mut headers = HashMap::new();
        propagator.inject_context(&client_cx, &mut headers);
        assert!(
            headers.contains_key("traceparent"),
            "traceparent injected: {headers:?}"
        );

        // api: the server side, parented by the extracted remote context.
        let incoming = propagator.extract(&headers);
        assert!(
            incoming.span().span_context().is_remote(),
            "extracted a remote parent from {headers:?}"
        );
        let server_cx = Context::current_with_span(
            api.span_builder("GET /users")
                .with_kind(SpanKind::Server)
                .with_start_time(t0 + ms(4))
                .with_attributes([
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("http.route", "/users"),
                ])
                .start_with_context(&api, &incoming),
        );

        // api -> users database; no server.address, which Tempo would prefer.
        let mut query = api
            .span_builder("SELECT users")
            .with_kind(SpanKind::Client)
            .with_start_time(t0 + ms(6))
            .with_attributes([
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new("db.name", "users"),
                KeyValue::new("db.operation", "SELECT"),
            ])
            .start_with_context(&api, &server_cx);
        query.end_with_timestamp(t0 + ms(6 + DB_MS));

        let server = server_cx.span();
        if failed {
            server.set_status(Status::error("users lookup failed"));
            server.set_attribute(KeyValue::new("http.response.status_code", 500));
        }
        server.end_with_timestamp(t0 + ms(4 + RPC_SERVER_MS));

        let client = client_cx.span();
        if failed {
            client.set_status(Status::error("HTTP 500"));
            client.set_attribute(KeyValue::new("http.response.status_code", 500));
        }
        client.end_with_timestamp(t0 + ms(2 + RPC_CLIENT_MS));

        root_cx.span().end_with_timestamp(t0 + ms(ROOT_MS));
        ended += SPANS_PER_TRACE;
    }

    for (service, p) in [("web", &web_provider), ("api", &api_provider)] {
        p.force_flush()
            .unwrap_or_else(|e| panic!("{service} provider force_flush over {protocol:?}: {e}"));
    }
    for (service, p) in [("web", &web_provider), ("api", &api_provider)] {
        p.shutdown()
            .unwrap_or_else(|e| panic!("{service} provider shutdown over {protocol:?}: {e}"));
    }
    ended
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
    /// (calls, errors) of node `api`.
    api: Option<(u64, u64)>,
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
    let api = list("nodes")
        .iter()
        .find(|n| n["id"] == "api")
        .map(|n| (u64_field(n, "calls"), u64_field(n, "errors")));
    Shape {
        nodes,
        edges,
        pending: u64_field(&graph["unpaired"], "pending"),
        api,
    }
}

fn expected_shape(n: u64) -> Shape {
    let nodes = [
        ("api", "service"),
        ("user", "external"),
        ("users", "database"),
        ("web", "service"),
    ];
    let edges = [
        ("user", "web", "external", n, 0),
        ("web", "api", "rpc", n, 1),
        ("api", "users", "database", n, 0),
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
        api: Some((n, 1)),
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

async fn rust_sdk_traces_over(protocol: Protocol) {
    let config = config::parse("<rust_sdk test pipeline>", PIPELINE).expect("test pipeline");
    let running = serve::start(&config).await.expect("faultline starts");
    let api = running.api.expect("API bound");
    let endpoint = protocol.endpoint(&running);

    // The SDK blocks in flush/shutdown: keep it off the async workers, but
    // inside the runtime (tonic's channel and async reqwest need it).
    let sent = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || send_traces(protocol, &endpoint, TRACES)
    })
    .await
    .expect("the SDK sender did not panic");
    assert_eq!(sent, TRACES * SPANS_PER_TRACE, "spans the SDK ended");

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
        let want_rate = if (s, t) == ("web", "api") {
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
    let api_node = node("api");
    assert_eq!(
        (u64_field(api_node, "calls"), u64_field(api_node, "errors")),
        (TRACES, 1),
        "api (calls, errors)\n{json}"
    );
    assert!(
        approx(
            api_node["error_rate"].as_f64().unwrap(),
            1.0 / TRACES as f64,
            1e-12
        ),
        "api error_rate\n{json}"
    );
    let web = node("web");
    assert_eq!(
        (u64_field(web, "calls"), u64_field(web, "errors")),
        (TRACES, 0),
        "web (calls, errors)\n{json}"
    );
    assert_eq!(
        node("users")["system"],
        "postgresql",
        "users system\n{json}"
    );

    // The SDK's explicit start/end times survive the trip (HDR histograms
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
    let rpc = edge("web", "api");
    assert!(
        approx(mean(rpc, "latency_ms"), RPC_CLIENT_MS as f64, 0.5),
        "web -> api client latency\n{json}"
    );
    assert!(
        approx(mean(rpc, "server_latency_ms"), RPC_SERVER_MS as f64, 0.5),
        "web -> api server latency\n{json}"
    );
    assert!(
        approx(mean(edge("api", "users"), "latency_ms"), DB_MS as f64, 0.5),
        "api -> users latency\n{json}"
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
async fn rust_sdk_traces_over_otlp_grpc() {
    rust_sdk_traces_over(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_traces_over_otlp_http() {
    rust_sdk_traces_over(Protocol::Http).await;
}

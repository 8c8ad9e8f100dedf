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

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use common::sdk::{
    approx, assert_accepted_by, assert_edge_error_rates, assert_shape, edge_mean, expect_node,
    http_client, pretty, u64_field, wait_for_shape, Protocol, Shape, PIPELINE,
};
use faultline::cli::serve;
use faultline::config;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Traces sent; the first one has a failed `web -> api` call.
const TRACES: u64 = 4;
/// Spans in one trace (see the module docs).
const SPANS_PER_TRACE: u64 = 4;

/// Explicit span timings, checked back through the graph's latency summaries.
const ROOT_MS: u64 = 30;
const RPC_CLIENT_MS: u64 = 20;
const RPC_SERVER_MS: u64 = 15;
const DB_MS: u64 = 5;

impl Protocol {
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

fn expected_shape(n: u64) -> Shape {
    Shape::expected(
        &[
            ("api", "service"),
            ("user", "external"),
            ("users", "database"),
            ("web", "service"),
        ],
        &[
            ("user", "web", "external", n, 0),
            ("web", "api", "rpc", n, 1),
            ("api", "users", "database", n, 0),
        ],
        &[("api", n, 1)],
    )
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

    // Exact nodes, edges and counts (the poll above already required them;
    // asserted again one by one for precise messages).
    assert_shape(&graph, &want);
    assert_edge_error_rates(&graph, ("web", "api"), 1.0 / TRACES as f64);
    let node = |id: &str| expect_node(&graph, id);
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
    let mean = |s: &str, t: &str, key: &str| edge_mean(&graph, s, t, key);
    assert!(
        approx(mean("web", "api", "latency_ms"), RPC_CLIENT_MS as f64, 0.5),
        "web -> api client latency\n{json}"
    );
    assert!(
        approx(
            mean("web", "api", "server_latency_ms"),
            RPC_SERVER_MS as f64,
            0.5
        ),
        "web -> api server latency\n{json}"
    );
    assert!(
        approx(mean("api", "users", "latency_ms"), DB_MS as f64, 0.5),
        "api -> users latency\n{json}"
    );

    // Self-metrics: every span the SDK sent was accepted, by this receiver only.
    assert_accepted_by(&client, api, protocol, sent).await;

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

//! gzip over OTLP/gRPC: the official Rust SDK's tonic exporter with
//! `Compression::Gzip`, and `faultline loadgen --gzip` (which frames its own
//! level-1 gzip messages), are accepted by faultline's gRPC receiver and
//! their spans land in the graph.
//!
//! The SDK's traffic goes through a relay on loopback that counts the bytes
//! the exporter writes: far fewer than the spans' attributes alone would
//! take uncompressed, so the requests really were compressed.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::sdk::{
    assert_accepted_by, assert_shape, http_client, pretty, wait_for_shape, Protocol, Shape,
    PIPELINE,
};
use faultline::cli::serve;
use faultline::config;
use faultline::loadgen::run::{run, LoadConfig};
use faultline::loadgen::SpanShape;
use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Compression, SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Calls sent through the SDK, each a CLIENT and a SERVER span.
const CALLS: u64 = 50;
/// Bytes of the (very compressible) attribute on every span.
const PAYLOAD: usize = 2048;

/// Forwards connections from a fresh loopback port to `to`, counting the
/// bytes clients send.
async fn counting_relay(to: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
    let addr = listener.local_addr().expect("relay address");
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else {
                continue;
            };
            let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
            let (from_client, to_client) = inbound.into_split();
            let (from_server, to_server) = outbound.into_split();
            tokio::spawn(pipe(from_client, to_server, Some(counter.clone())));
            tokio::spawn(pipe(from_server, to_client, None));
        }
    });
    (addr, sent)
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, counter: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = &counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn gzip_provider(endpoint: &str, service: &'static str) -> SdkTracerProvider {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_compression(Compression::Gzip)
        .with_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("building the gzip gRPC exporter for {endpoint}: {e}"));
    SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_batch_exporter(exporter)
        .build()
}

/// `CALLS` calls from `gz-web` to `gz-api`, each span carrying `PAYLOAD`
/// bytes; flushes and shuts down. Blocking (the batch processor's flush
/// waits on its thread).
fn send_calls(endpoint: &str) {
    let web_provider = gzip_provider(endpoint, "gz-web");
    let api_provider = gzip_provider(endpoint, "gz-api");
    let web = web_provider.tracer("faultline-grpc-gzip-test");
    let api = api_provider.tracer("faultline-grpc-gzip-test");
    let payload = "x".repeat(PAYLOAD);
    for _ in 0..CALLS {
        let mut client = web
            .span_builder("GET /items")
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("payload", payload.clone())])
            .start_with_context(&web, &Context::new());
        let remote = Context::new().with_remote_span_context(client.span_context().clone());
        let mut server = api
            .span_builder("GET /items")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("payload", payload.clone())])
            .start_with_context(&api, &remote);
        server.end();
        client.end();
    }
    for (service, p) in [("gz-web", &web_provider), ("gz-api", &api_provider)] {
        p.force_flush()
            .unwrap_or_else(|e| panic!("{service} force_flush over gzip gRPC: {e}"));
        p.shutdown()
            .unwrap_or_else(|e| panic!("{service} shutdown over gzip gRPC: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_exporting_gzip_over_grpc_lands_in_the_graph() {
    let config = config::parse("<grpc_gzip test pipeline>", PIPELINE).expect("test pipeline");
    let running = serve::start(&config).await.expect("faultline starts");
    let api = running.api.expect("API bound");
    let (relay, wire_bytes) = counting_relay(running.grpc.expect("gRPC bound")).await;
    let endpoint = format!("http://{relay}");
    tokio::task::spawn_blocking(move || send_calls(&endpoint))
        .await
        .expect("the SDK sender did not panic");

    let client = http_client();
    let want = Shape::expected(
        &[("gz-api", "service"), ("gz-web", "service")],
        &[("gz-web", "gz-api", "rpc", CALLS, 0)],
        &[("gz-api", CALLS, 0)],
    );
    let graph = wait_for_shape(&client, api, &want).await;
    assert_shape(&graph, &want);
    assert_accepted_by(&client, api, Protocol::Grpc, 2 * CALLS).await;

    let payloads = 2 * CALLS * PAYLOAD as u64;
    let wire = wire_bytes.load(Ordering::Relaxed);
    assert!(
        wire > 0 && wire < payloads / 4,
        "the exporter wrote {wire} bytes for {payloads} bytes of attributes: not gzip?\n{}",
        pretty(&graph)
    );
    running.stop().await.expect("faultline stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_gzip_over_grpc_is_accepted_exactly() {
    let running = common::serve().await;
    let load = LoadConfig {
        protocol: faultline::loadgen::run::Protocol::Grpc,
        endpoint: format!("http://{}", running.grpc.expect("grpc enabled")),
        shape: SpanShape::default(),
        rate: None,
        duration: Duration::from_millis(1500),
        concurrency: 2,
        gzip: true,
        metrics_url: Some(format!("http://{}/metrics", running.api.expect("api"))),
        templates: 4,
        probes: None,
    };
    let report = run(load).await.expect("load runs");
    assert_eq!(report.failed_requests, 0, "{:?}", report.first_error);
    assert!(report.requests >= 2, "{report:?}");
    assert_eq!(report.spans_rejected, 0);
    assert_eq!(
        report.server_accepted,
        Some(report.spans_sent),
        "{report:?}"
    );
    let graph =
        common::wait_for_graph(&running, |g| common::edge(g, "svc-3", "svc-4").is_some()).await;
    assert!(common::edge(&graph, "svc-0", "svc-1").is_some());
    running.stop().await.unwrap();
}

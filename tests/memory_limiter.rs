//! The memory limiter (`processors.memory_limiter`): past the soft limit
//! the receivers refuse with a retry delay, count the refusals, and accept
//! again once memory is back under it. Memory is read through a
//! `ManualProbe` the test sets, and the limiter is re-checked explicitly
//! after each change, so no assertion waits on the check timer.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sdk::{get_metrics, http_client, metric};
use common::{request, rpc_pair};
use faultline::cli::serve::{self, Running};
use faultline::config;
use faultline::memory_limiter::ManualProbe;
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

const MIB: u64 = 1 << 20;
/// Soft limit of the test pipeline: 100 MiB hard, 20 MiB spike.
const SOFT: u64 = 80 * MIB;
const REFUSED: &str = "faultline_memory_limiter_refused_requests_total";
const ACCEPTED: &str = "faultline_receiver_accepted_spans_total";

/// The default pipeline on free ports, limited to 100 MiB, memory read from `probe`.
async fn start(probe: Arc<ManualProbe>) -> Running {
    let text = config::on_free_ports(config::DEFAULT_PIPELINE, &common::data_dir())
        .replace("limit_mib: 1024", "limit_mib: 100")
        .replace("spike_limit_mib: 256", "spike_limit_mib: 20")
        .replace("retry_after: 1s", "retry_after: 2s");
    let config = config::parse("memory limiter test pipeline", &text).expect("pipeline parses");
    serve::start_with_probe(&config, probe)
        .await
        .expect("collector starts")
}

/// Sets what the probe reads and re-checks now; returns whether it refuses.
fn set_memory(running: &Running, probe: &ManualProbe, bytes: u64) -> bool {
    probe.set(bytes);
    running.memory_limiter.as_ref().expect("limiter on").check()
}

fn one_pair() -> ExportTraceServiceRequest {
    request(&rpc_pair("front", "back", 7, 2_000))
}

async fn metrics(running: &Running) -> String {
    get_metrics(&http_client(), running.api.expect("api bound")).await
}

fn gauge(text: &str, series: &str) -> Option<u64> {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("a gauge value"))
}

#[tokio::test]
async fn grpc_exports_get_resource_exhausted_with_retry_info_until_memory_is_back() {
    let probe = Arc::new(ManualProbe::new(10 * MIB));
    let running = start(probe.clone()).await;
    let addr = format!("http://{}", running.grpc.unwrap());
    let mut client = TraceServiceClient::connect(addr).await.expect("connects");
    client
        .export(one_pair())
        .await
        .expect("accepted under the limit");

    assert!(
        set_memory(&running, &probe, SOFT),
        "refusing at the soft limit"
    );
    let status = client
        .export(one_pair())
        .await
        .expect_err("refused over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("a RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
    assert!(
        status.message().contains("memory limit"),
        "{}",
        status.message()
    );

    let text = metrics(&running).await;
    assert_eq!(metric(&text, REFUSED, "otlp_grpc"), Some(1), "{text}");
    assert_eq!(
        metric(&text, ACCEPTED, "otlp_grpc"),
        Some(2),
        "only the first request's spans\n{text}"
    );
    assert_eq!(
        gauge(&text, "faultline_memory_limiter_refusing"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        gauge(&text, "faultline_memory_limiter_bytes{value=\"used\"}"),
        Some(SOFT),
        "{text}"
    );
    assert_eq!(
        gauge(
            &text,
            "faultline_memory_limiter_bytes{value=\"soft_limit\"}"
        ),
        Some(SOFT),
        "{text}"
    );

    assert!(
        !set_memory(&running, &probe, SOFT - 1),
        "admitting under the soft limit"
    );
    client.export(one_pair()).await.expect("accepted again");
    let text = metrics(&running).await;
    assert_eq!(metric(&text, ACCEPTED, "otlp_grpc"), Some(4), "{text}");
    assert_eq!(metric(&text, REFUSED, "otlp_grpc"), Some(1), "{text}");
    assert_eq!(
        gauge(&text, "faultline_memory_limiter_refusing"),
        Some(0),
        "{text}"
    );
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn http_exports_get_429_with_retry_after_until_memory_is_back() {
    let probe = Arc::new(ManualProbe::new(10 * MIB));
    let running = start(probe.clone()).await;
    let url = format!("http://{}/v1/traces", running.http.unwrap());
    let client = http_client();
    let post = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let protobuf = one_pair().encode_to_vec();
    assert_eq!(
        post("application/x-protobuf", protobuf.clone())
            .await
            .unwrap()
            .status(),
        200
    );

    assert!(set_memory(&running, &probe, 90 * MIB));
    let resp = post("application/x-protobuf", protobuf.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let status =
        tonic_types::Status::decode(resp.bytes().await.unwrap()).expect("a google.rpc.Status body");
    assert_eq!(status.code, Code::ResourceExhausted as i32);
    assert_eq!(status.details.len(), 1, "{status:?}");
    assert!(status.details[0].type_url.ends_with("google.rpc.RetryInfo"));

    let json = r#"{"resourceSpans":[]}"#.as_bytes().to_vec();
    let resp = post("application/json", json).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 8, "{body}");
    assert_eq!(body["details"][0]["retryDelay"], "2.000000000s", "{body}");

    let text = metrics(&running).await;
    assert_eq!(metric(&text, REFUSED, "otlp_http"), Some(2), "{text}");
    assert_eq!(metric(&text, ACCEPTED, "otlp_http"), Some(2), "{text}");

    assert!(!set_memory(&running, &probe, 10 * MIB));
    assert_eq!(
        post("application/x-protobuf", protobuf)
            .await
            .unwrap()
            .status(),
        200
    );
    let text = metrics(&running).await;
    assert_eq!(metric(&text, ACCEPTED, "otlp_http"), Some(4), "{text}");
    running.stop().await.expect("stops");
}

/// The OpenTelemetry Rust SDK's OTLP/gRPC exporter, unchanged: it backs off
/// on RESOURCE_EXHAUSTED + RetryInfo and delivers every span once faultline
/// accepts again. Nothing is lost: the exporter kept the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_backs_off_and_delivers_later() {
    const SPANS: u64 = 20;
    let probe = Arc::new(ManualProbe::new(10 * MIB));
    let running = start(probe.clone()).await;
    assert!(set_memory(&running, &probe, 90 * MIB));
    let endpoint = format!("http://{}", running.grpc.unwrap());
    let sender = tokio::task::spawn_blocking(move || send_with_sdk(&endpoint, SPANS));

    // Wait (bounded) until the SDK has been refused at least once ...
    let refused = wait_for_metric(&running, REFUSED, |n| n >= 1).await;
    assert_eq!(
        metric(&metrics(&running).await, ACCEPTED, "otlp_grpc").unwrap_or(0),
        0
    );
    // ... then let memory fall; the SDK's next attempt must get through.
    assert!(!set_memory(&running, &probe, 10 * MIB));
    sender.await.expect("the SDK sender did not panic");
    let accepted = wait_for_metric(&running, ACCEPTED, |n| n == SPANS).await;
    assert_eq!(
        accepted, SPANS,
        "every span delivered after {refused} refusal(s)"
    );
    running.stop().await.expect("stops");
}

/// Ends `n` spans through a batch processor and flushes; the flush returns
/// once the exporter (with its retries) is done.
fn send_with_sdk(endpoint: &str, n: u64) {
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(30))
        .build()
        .expect("gRPC span exporter");
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("sdk-app").build())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("memory-limiter-test");
    for i in 0..n {
        let mut span = tracer
            .span_builder(format!("op-{i}"))
            .with_kind(SpanKind::Server)
            .start(&tracer);
        span.set_attribute(opentelemetry::KeyValue::new("attempt", i as i64));
        span.end();
    }
    provider
        .force_flush()
        .expect("flush delivers after backing off");
    provider.shutdown().expect("shutdown");
}

/// Polls `/metrics` (up to 30 s) until the grpc receiver's `name` satisfies `done`.
async fn wait_for_metric(running: &Running, name: &str, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics(running).await;
        let value = metric(&text, name, "otlp_grpc").unwrap_or(0);
        if done(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got there; last /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn skipped_trace_assembly_is_exported() {
    let probe = Arc::new(ManualProbe::new(10 * MIB));
    let text = config::on_free_ports(config::DEFAULT_PIPELINE, &common::data_dir())
        .replace("max_traces: 100000", "max_traces: 1")
        .replace(
            "max_operations: 100000\n",
            "max_operations: 100000\n    shards: 1\n",
        );
    let config = config::parse("skipped traces pipeline", &text).expect("pipeline parses");
    let running = serve::start_with_probe(&config, probe)
        .await
        .expect("starts");
    let mut client = TraceServiceClient::connect(format!("http://{}", running.grpc.unwrap()))
        .await
        .unwrap();
    // Two traces while the first is still open: the second's two spans skip assembly.
    let mut spans = rpc_pair("a", "b", 1, 1_000).to_vec();
    spans.extend(rpc_pair("a", "b", 2, 1_000));
    client.export(request(&spans)).await.expect("accepted");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(&running).await;
        let skipped = gauge(&text, "faultline_trace_assembly_skipped_spans");
        if skipped == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "skipped spans {skipped:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await.expect("stops");
}

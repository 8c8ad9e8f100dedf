//! End to end with the real OpenTelemetry Python SDK: `tests/python/send_shop_trace.py`
//! exports a five-service "shop" trace to a running faultline over OTLP/gRPC
//! and over OTLP/HTTP, and `/api/graph` must then show exactly the expected
//! nodes, edges, counts and error rates.
//!
//! Needs `python3` with the packages in `tests/python/requirements.txt`; the
//! tests fail (never skip) when they are missing.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::sdk::{
    approx, assert_accepted_by, assert_edge_error_rates, assert_shape, edge_mean, expect_node,
    http_client, pretty, u64_field, wait_for_shape, Protocol, Shape, PIPELINE,
};
use faultline::cli::serve;
use faultline::config;

/// Traces the script sends; the first one has a failed payment.
const TRACES: u64 = 5;
/// Spans in one trace (see the script's docstring).
const SPANS_PER_TRACE: u64 = 11;

const INSTALL_HINT: &str = "install the OpenTelemetry Python SDK and exporters with \
     `pip install -r tests/python/requirements.txt` (from the faultline directory)";

/// How `send_shop_trace.py` names each protocol.
impl Protocol {
    fn arg(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
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

fn expected_shape(n: u64) -> Shape {
    Shape::expected(
        &[
            ("email-provider", "external"),
            ("gateway", "service"),
            ("inventory", "service"),
            ("notifier", "service"),
            ("orders", "service"),
            ("payments", "service"),
            ("redis", "database"),
            ("user", "external"),
        ],
        &[
            ("user", "gateway", "external", n, 0),
            ("gateway", "orders", "rpc", n, 0),
            ("orders", "inventory", "rpc", n, 0),
            ("inventory", "redis", "database", n, 0),
            ("orders", "payments", "rpc", n, 1),
            ("orders", "notifier", "messaging", n, 0),
            ("notifier", "email-provider", "external", n, 0),
        ],
        &[("payments", n, 1)],
    )
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

    // Exact nodes, edges and counts (the poll above already required them;
    // asserted again one by one for precise messages).
    assert_shape(&graph, &want);
    assert_edge_error_rates(&graph, ("orders", "payments"), 1.0 / TRACES as f64);
    let node = |id: &str| expect_node(&graph, id);
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
    let mean = |s: &str, t: &str, key: &str| edge_mean(&graph, s, t, key);
    assert!(
        approx(mean("gateway", "orders", "latency_ms"), 55.0, 0.5),
        "gateway -> orders client latency\n{json}"
    );
    assert!(
        approx(mean("gateway", "orders", "server_latency_ms"), 53.0, 0.5),
        "gateway -> orders server latency\n{json}"
    );
    assert!(
        approx(mean("orders", "notifier", "queue_latency_ms"), 16.0, 0.5),
        "orders -> notifier queue latency (consumer start - producer end)\n{json}"
    );

    // Self-metrics: every span the SDK sent was accepted, by this receiver only.
    assert_accepted_by(&client, api, protocol, sent).await;

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

//! `faultline loadgen` against a running faultline: what it says it sent is
//! exactly what the server says it accepted, over both transports, and the
//! traffic builds the graph it describes.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;
use faultline::loadgen::probe::ProbeSettings;
use faultline::loadgen::run::{run, LoadConfig, Protocol};
use faultline::loadgen::SpanShape;

fn config(protocol: Protocol, endpoint: String, metrics: String) -> LoadConfig {
    LoadConfig {
        protocol,
        endpoint,
        shape: SpanShape::default(),
        rate: None,
        duration: Duration::from_secs(2),
        concurrency: 2,
        gzip: false,
        metrics_url: Some(metrics),
        templates: 4,
        probes: None,
    }
}

fn metrics_url(running: &faultline::cli::serve::Running) -> String {
    format!("http://{}/metrics", running.api.expect("api enabled"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_load_for_two_seconds_is_accepted_exactly() {
    let running = serve().await;
    let endpoint = format!("http://{}", running.grpc.expect("grpc enabled"));
    let report = run(config(Protocol::Grpc, endpoint, metrics_url(&running)))
        .await
        .expect("load runs");
    assert_eq!(report.failed_requests, 0, "{:?}", report.first_error);
    assert!(report.requests >= 2, "{report:?}");
    assert_eq!(report.spans_sent, report.requests * 512);
    assert_eq!(report.spans_rejected, 0);
    assert_eq!(
        report.server_accepted,
        Some(report.spans_sent),
        "{report:?}"
    );
    assert!(report.latency_p99_ms >= report.latency_p50_ms && report.latency_p50_ms > 0.0);
    // The chain svc-0 -> ... -> svc-4, with the 2% error ratio on its edges.
    let graph = wait_for_graph(&running, |g| edge(g, "svc-3", "svc-4").is_some()).await;
    let calls = edge(&graph, "svc-0", "svc-1").expect("first hop")["calls"]
        .as_u64()
        .unwrap();
    assert!(calls > 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_gzip_load_at_a_rate_is_accepted_exactly_and_not_exceeded() {
    let running = serve().await;
    let endpoint = format!("http://{}/v1/traces", running.http.expect("http enabled"));
    let mut load = config(Protocol::Http, endpoint, metrics_url(&running));
    load.gzip = true;
    load.rate = Some(20_000.0);
    load.duration = Duration::from_millis(1500);
    load.shape.batch = 200;
    let report = run(load).await.expect("load runs");
    assert_eq!(report.failed_requests, 0, "{:?}", report.first_error);
    assert!(report.spans_sent > 0);
    assert_eq!(
        report.server_accepted,
        Some(report.spans_sent),
        "{report:?}"
    );
    // The rate is a ceiling: 1.5 s at 20 k/s, plus the requests already due.
    assert!(report.spans_sent <= 30_000 + 2 * 200, "{report:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_see_their_edge_in_the_graph_and_the_signals() {
    let running = serve().await;
    let endpoint = format!("http://{}", running.grpc.expect("grpc enabled"));
    let mut load = config(Protocol::Grpc, endpoint, metrics_url(&running));
    load.rate = Some(20_000.0);
    load.probes = Some(ProbeSettings {
        count: 3,
        api: format!("http://{}", running.api.expect("api enabled")),
        timeout: Duration::from_secs(8),
    });
    let report = run(load).await.expect("load runs");
    assert_eq!(report.failed_requests, 0, "{:?}", report.first_error);
    let probes = report.probes.as_ref().expect("a probe report");
    assert_eq!((probes.sent, probes.failed), (3, 0), "{probes:?}");
    assert_eq!(
        (probes.graph.seen, probes.graph.missed),
        (3, 0),
        "{probes:?}"
    );
    assert_eq!(
        (probes.signals.seen, probes.signals.missed),
        (3, 0),
        "{probes:?}"
    );
    assert_eq!(
        (probes.open_signals.seen, probes.open_signals.missed),
        (3, 0),
        "{probes:?}"
    );
    let (graph, signals, open) = (&probes.graph, &probes.signals, &probes.open_signals);
    assert!(graph.p50_ms > 0.0 && graph.p50_ms <= graph.p99_ms && graph.p99_ms <= graph.max_ms);
    // A closed window's signal waits for its window (1 s) to close: never
    // before the open window shows the edge.
    assert!(open.p50_ms > 0.0, "{probes:?}");
    assert!(signals.p50_ms >= open.p50_ms, "{probes:?}");
    // The probes' spans are accepted too, and counted in the loss check.
    assert_eq!(probes.spans_accepted, 6);
    assert_eq!(
        report.server_accepted,
        Some(report.expected_accepted()),
        "{report:?}"
    );
    let all = wait_for_graph(&running, |g| {
        g["edges"].as_array().is_some_and(|edges| {
            edges
                .iter()
                .filter(|e| {
                    e["source"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("probe-"))
                })
                .count()
                == 3
        })
    })
    .await;
    assert!(edge(&all, "svc-0", "svc-1").is_some());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_an_error_that_names_it() {
    let load = config(
        Protocol::Grpc,
        "http://127.0.0.1:1".into(),
        "http://127.0.0.1:1/metrics".into(),
    );
    let err = run(load).await.expect_err("nothing listens on port 1");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_prints_a_json_report_matching_the_server() {
    let running = serve().await;
    let grpc = format!("http://{}", running.grpc.expect("grpc enabled"));
    let metrics = metrics_url(&running);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .args(["loadgen", "--duration", "1s", "--concurrency", "1"])
            .args(["--services", "3", "--fan-out", "2", "--batch", "100"])
            .args(["--endpoint", &grpc, "--metrics", &metrics, "--json"])
            .output()
            .expect("runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let sent = report["spans_sent"].as_u64().unwrap();
    assert!(sent > 0 && sent.is_multiple_of(100), "{report}");
    assert_eq!(report["server_accepted"].as_u64(), Some(sent), "{report}");
    // Fan-out 2 over 3 services: svc-0 calls svc-1 and svc-2.
    let graph = wait_for_graph(&running, |g| edge(g, "svc-0", "svc-2").is_some()).await;
    assert!(edge(&graph, "svc-0", "svc-1").is_some());
    running.stop().await.unwrap();
}

#[test]
fn help_is_a_manual() {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["loadgen", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--rate",
        "--duration",
        "--concurrency",
        "--batch",
        "--services",
        "--depth",
        "--fan-out",
        "--attributes",
        "--attribute-size",
        "--error-ratio",
        "--gzip",
        "--metrics",
        "--probes",
        "--api",
        "flat out",
        "Examples",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
}

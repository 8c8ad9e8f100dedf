//! History and SQL: Parquet windows written by a live collector, read back
//! with DataFusion over HTTP and on the command line.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use faultline::cli::serve::{start, Running};
use faultline::config;
use faultline::graph::partial::{NodeKind, WindowPartial};
use faultline::graph::ClosedWindow;
use faultline::query::{Engine, Limits, ParquetConfig, ParquetExporter};
use faultline::telemetry::Telemetry;
use serde_json::{json, Value};

use common::traffic::{drive, now_ns, DEGRADED, HEALTHY};

const SHOP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/formats/shop.otlp.json"
);

/// A collector on free ports whose history lives in `data_dir` and is
/// flushed every 500 ms.
async fn serve_in(data_dir: &str) -> Running {
    let text = config::on_free_ports(config::DEFAULT_PIPELINE, data_dir)
        .replace("ttl: 10s", "ttl: 1s")
        .replace("tick: 1s", "tick: 100ms")
        .replace("flush: 60s", "flush: 500ms");
    let config = config::parse("history test pipeline", &text).expect("pipeline parses");
    start(&config).await.expect("collector starts")
}

/// `POST /api/query`: the status and the JSON body.
async fn query(running: &Running, sql: &str) -> (u16, Value) {
    let url = format!("http://{}/api/query", running.api.unwrap());
    let reply = reqwest::Client::new()
        .post(url)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("POST /api/query");
    let status = reply.status().as_u16();
    (status, reply.json().await.expect("a JSON body"))
}

async fn rows(running: &Running, sql: &str) -> Vec<Value> {
    let (status, body) = query(running, sql).await;
    assert_eq!(status, 200, "{sql}: {body}");
    body["rows"].as_array().unwrap().clone()
}

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

/// The edge's calls according to the API (all windows since start).
async fn api_edge(running: &Running, source: &str, target: &str) -> Value {
    let graph = common::get_json(running, "/api/graph?window=all").await;
    common::edge(&graph, source, target)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls until the history holds every call of orders -> payments that the
/// API counts (the last windows close a tick after traffic stops); returns
/// the API's edge.
async fn wait_until_history_has_all(running: &Running) -> Value {
    let sql =
        "SELECT sum(calls) AS calls FROM edges WHERE source = 'orders' AND target = 'payments'";
    let mut last = (Value::Null, Value::Null);
    for _ in 0..100 {
        let edge = api_edge(running, "orders", "payments").await;
        let history = rows(running, sql).await[0]["calls"].clone();
        if edge["calls"].as_u64().is_some() && history == edge["calls"] {
            return edge;
        }
        last = (edge["calls"].clone(), history);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("history never caught up with the API: (api, history) = {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_history_finds_the_slowed_edge_with_the_apis_exact_p99() {
    let dir = common::data_dir();
    let running = serve_in(&dir).await;
    let url = format!("http://{}/v1/traces", running.http.unwrap());
    drive(&url, HEALTHY, 10, Duration::from_secs(3)).await;
    let slowed_from = now_ns() / 1_000_000;
    drive(&url, DEGRADED, 10, Duration::from_secs(3)).await;
    let edge = wait_until_history_has_all(&running).await;

    // The edge whose p99 grew the most from the healthy windows to the
    // slow ones is the one that was slowed (its callers slowed too, but
    // by a smaller factor: their own time did not change).
    let first_slow = slowed_from / 1000 * 1000 + 1000;
    let last_healthy = slowed_from / 1000 * 1000 - 1000;
    let top = rows(
        &running,
        &format!(
            "SELECT source, target, \
               hdr_quantile(hdr_merge(CASE WHEN window_start_ms >= {first_slow} THEN latency_hist END), 0.99) \
               / hdr_quantile(hdr_merge(CASE WHEN window_start_ms < {last_healthy} THEN latency_hist END), 0.99) \
               AS slowdown \
             FROM edges GROUP BY source, target ORDER BY slowdown DESC NULLS LAST LIMIT 1"
        ),
    )
    .await;
    assert_eq!(top[0]["source"], "orders", "{top:?}");
    assert_eq!(top[0]["target"], "payments", "{top:?}");
    assert!(top[0]["slowdown"].as_f64().unwrap() > 10.0, "{top:?}");
    // Merged histograms give exactly the API's p99 for the same range
    // (every window since start), not an average of per-window p99s.
    let merged = rows(
        &running,
        "SELECT hdr_quantile(hdr_merge(latency_hist), 0.99) AS p99_ms, avg(p99_ms) AS mean_of_p99s \
         FROM edges WHERE source = 'orders' AND target = 'payments'",
    )
    .await;
    let api_p99 = edge["latency_ms"]["p99"].as_f64().unwrap();
    assert_eq!(merged[0]["p99_ms"].as_f64().unwrap(), api_p99, "{edge}");
    assert!(api_p99 > 500.0, "the slowdown shows: {api_p99}");
    assert_ne!(merged[0]["mean_of_p99s"].as_f64().unwrap(), api_p99);

    // Per window, the history agrees with the signals the API published.
    let signals = common::get_json(
        &running,
        "/api/signals?target=edge:orders->payments&since=0",
    )
    .await;
    let records = signals["records"].as_array().unwrap();
    assert!(records.len() >= 4, "{signals}");
    for r in records {
        let start = r["window_start_ms"].as_u64().unwrap();
        let sql = format!(
            "SELECT hdr_quantile(hdr_merge(latency_hist), 0.99) AS p99_ms FROM edges \
             WHERE source = 'orders' AND target = 'payments' AND window_start_ms = {start}"
        );
        let got = rows(&running, &sql).await;
        if r["calls"] == 0 {
            // Retries of a trace assembled later land in a window of their
            // own, with no call and so no histogram (the API says 0).
            assert!(got[0]["p99_ms"].is_null(), "window {start}: {got:?}");
            continue;
        }
        assert_eq!(
            got[0]["p99_ms"], r["signals"]["p99_ms"]["value"],
            "window {start}"
        );
    }
    // The same windows' signal records are a table too.
    let slow = rows(
        &running,
        &format!(
            "SELECT count(*) AS windows FROM signals WHERE key = 'edge:orders->payments' \
             AND signal = 'p99_ms' AND value > 500 AND window_start_ms >= {}",
            slowed_from - 1000
        ),
    )
    .await;
    assert!(slow[0]["windows"].as_u64().unwrap() >= 2, "{slow:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_the_cli_reads_it() {
    let dir = common::data_dir();
    let first = serve_in(&dir).await;
    let url = format!("http://{}/v1/traces", first.http.unwrap());
    drive(&url, HEALTHY, 5, Duration::from_secs(2)).await;
    let edge = wait_until_history_has_all(&first).await;
    let calls = edge["calls"].as_u64().unwrap();
    first.stop().await.unwrap();

    let second = serve_in(&dir).await;
    let sql = "SELECT sum(calls) AS calls, hdr_quantile(hdr_merge(latency_hist), 0.99) AS p99_ms \
               FROM edges WHERE source = 'orders' AND target = 'payments'";
    let after = rows(&second, sql).await;
    assert_eq!(after[0]["calls"].as_u64(), Some(calls));
    assert_eq!(after[0]["p99_ms"], edge["latency_ms"]["p99"]);
    let live = rows(&second, "SELECT count(*) AS n FROM graph_edges").await;
    assert_eq!(live[0]["n"], 0, "the new process saw no spans itself");
    second.stop().await.unwrap();

    // The files alone, without a server.
    let out = faultline()
        .args(["query", "--format", "json", "--data-dir", &dir, sql])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["calls"].as_u64(), Some(calls), "{doc}");
    let files = std::fs::read_dir(Path::new(&dir).join("history/edges"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(files.iter().all(|f| f.starts_with("hour=")), "{files:?}");
}

fn window_at(start_ms: u64) -> ClosedWindow {
    let mut partial = WindowPartial::default();
    let name: Arc<str> = "checkout".into();
    let node = partial.node(&name, NodeKind::Service);
    node.stats.calls.record(3_000_000, false);
    node.stats.compact();
    ClosedWindow {
        index: start_ms / 1000,
        start_ms,
        end_ms: start_ms + 1000,
        partial: partial.into(),
    }
}

#[test]
fn buffered_rows_are_written_before_the_flush_interval_when_too_many() {
    let dir = tempfile::tempdir().unwrap();
    let config = ParquetConfig {
        flush: Duration::from_secs(3600),
        max_age: Duration::ZERO,
        max_size_mib: 0,
        max_buffered_rows: 2,
        ..ParquetConfig::in_directory(dir.path())
    };
    let writer = ParquetExporter::start(&config, Arc::new(Telemetry::new())).unwrap();
    use faultline::exporters::Exporter;
    let start = 1_795_000_000_000;
    let files = || -> usize {
        walk(&dir.path().join("history/nodes"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    };
    // One node row per window: the second reaches the bound; the third
    // stays buffered until the next bound or the hour's flush.
    for w in 0..3 {
        writer.window(&window_at(start + w * 1000));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = walk(&dir.path().join("history/nodes"));
    assert_eq!(files(), 1, "{written:?}");
    assert_eq!(read_parquet_rows(&written[0]), 2);
    assert!(writer.flush_now(Duration::from_secs(10)));
    assert_eq!(files(), 2);
}

/// Every file under `dir`, at any depth.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn retention_deletes_the_oldest_partition() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    let h0 = 1_795_000_000_000 / hour * hour;
    let now = Arc::new(AtomicU64::new(h0 + 60_000));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let config = ParquetConfig {
        flush: Duration::from_secs(3600),
        max_age: Duration::from_secs(3600),
        max_size_mib: 0,
        ..ParquetConfig::in_directory(dir.path())
    };
    let writer =
        ParquetExporter::start_with_clock(&config, Arc::new(Telemetry::new()), clock).unwrap();
    use faultline::exporters::Exporter;
    for h in 0..3 {
        writer.window(&window_at(h0 + h * hour + 5_000));
    }
    assert!(writer.flush_now(Duration::from_secs(10)));
    let hours = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("history/nodes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = hours(dir.path());
    assert_eq!(before.len(), 3, "{before:?}");

    // Half an hour later the first hour is more than an hour old.
    now.store(h0 + 2 * hour + 30 * 60_000, Ordering::SeqCst);
    assert!(writer.flush_now(Duration::from_secs(10)));
    let after = hours(dir.path());
    assert_eq!(after, before[1..].to_vec());

    let engine = Engine::new(Limits::default()).unwrap();
    engine
        .register_history(&dir.path().join("history"))
        .unwrap();
    let answer = engine
        .run("SELECT min(window_start_ms) AS first, count(*) AS n, min(hour) AS hour FROM nodes")
        .await
        .unwrap();
    let doc = faultline::query::output::json(&answer).unwrap();
    assert_eq!(doc.rows[0]["first"], json!(h0 + hour + 5_000));
    assert_eq!(doc.rows[0]["n"], json!(2));
    assert_eq!(
        format!("hour={}", doc.rows[0]["hour"].as_str().unwrap()),
        after[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_is_a_clear_error_over_http_and_on_the_cli() {
    let dir = common::data_dir();
    let running = serve_in(&dir).await;
    let (status, body) = query(&running, "SELEC * FROM edges").await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("SELEC"), "{error}");
    let (status, body) = query(&running, "SELECT * FROM no_such_table").await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("no_such_table") && error.contains("not found"),
        "{error}"
    );
    // Bytes that are no histogram get the function's own message.
    let (status, body) = query(&running, "SELECT hdr_quantile(X'00ff', 0.5) AS q").await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("not an HDR histogram"), "{error}");
    // The server is still fine.
    assert_eq!(rows(&running, "SELECT 1 AS one").await[0]["one"], 1);
    running.stop().await.unwrap();

    let out = faultline()
        .args(["query", "--data-dir", &dir, "SELECT nope FROM edges"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused() {
    let dir = common::data_dir();
    let running = serve_in(&dir).await;
    let outside = std::env::temp_dir().join(format!("faultline-copy-{}.csv", std::process::id()));
    for sql in [
        format!("COPY (SELECT 1) TO '{}'", outside.display()),
        format!(
            "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{}'",
            outside.display()
        ),
        "INSERT INTO edges SELECT * FROM edges".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
    ] {
        let (status, body) = query(&running, &sql).await;
        assert_eq!(status, 400, "{sql}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("not supported"),
            "{sql}: {body}"
        );
    }
    assert!(!outside.exists());
    running.stop().await.unwrap();
    let out = faultline()
        .args(["query", "--data-dir", &dir])
        .arg(format!("COPY (SELECT 1) TO '{}'", outside.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));
    assert!(!outside.exists());
}

#[test]
fn query_input_reads_offline_spans_and_their_graph() {
    let out = faultline()
        .args(["query", "--format", "json", "--input", SHOP])
        .arg("SELECT count(*) AS spans, count(DISTINCT trace_id) AS traces, sum(CASE WHEN is_error THEN 1 ELSE 0 END) AS errors FROM spans")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["spans"], 25, "{doc}");
    assert!(doc["rows"][0]["errors"].as_u64().unwrap() >= 1, "{doc}");
    // The graph built from the same spans is queryable beside them.
    let out = faultline()
        .args(["query", "--format", "csv", "--input", SHOP])
        .arg("SELECT source, target, calls, errors FROM edges WHERE source = 'checkout' AND target = 'payments'")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, "source,target,calls,errors\ncheckout,payments,3,1\n");
}

fn read_parquet_rows(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    reader.map(|b| b.unwrap().num_rows()).sum()
}

fn read_arrow_rows(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    let reader = arrow::ipc::reader::FileReader::try_new(file, None).unwrap();
    reader.map(|b| b.unwrap().num_rows()).sum()
}

#[test]
fn export_writes_readable_files_in_each_format() {
    let out_dir = tempfile::tempdir().unwrap();
    for format in ["parquet", "arrow", "csv"] {
        let out = out_dir.path().join(format);
        let run = faultline()
            .args(["export", "--format", format, "--input", SHOP, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let path = |t: &str| -> PathBuf { out.join(format!("{t}.{format}")) };
        let count = |t: &str| match format {
            "parquet" => read_parquet_rows(&path(t)),
            "arrow" => read_arrow_rows(&path(t)),
            _ => std::fs::read_to_string(path(t)).unwrap().lines().count() - 1,
        };
        assert_eq!(count("spans"), 25, "{format}");
        assert_eq!(count("edges"), 6, "{format}");
        assert!(count("nodes") >= 5, "{format}");
    }
    let csv = std::fs::read_to_string(out_dir.path().join("csv/edges.csv")).unwrap();
    assert!(
        csv.starts_with("window_start_ms,window_end_ms,source,target,kind,calls"),
        "{csv}"
    );
}

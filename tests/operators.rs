//! Live signals, anomalies and hotspots over the embedded default (JSON
//! lines files and the API), driven by OTLP traffic with a known
//! degradation of one edge.

use crate::common;

use std::time::Duration;

use common::traffic::healthy_degraded_healthy;
use serde_json::Value;

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

/// The first event of `state` for a target and signal.
fn event<'a>(events: &'a [Value], key: &str, signal: &str, state: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["key"] == key && e["signal"] == signal && e["state"] == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_edge_is_detected_ranked_first_and_seen_recovering() {
    let running = common::serve_with(&[("tick: 100ms", "tick: 1s")]).await;
    let url = format!("http://{}/v1/traces", running.http.unwrap());
    let phases = [
        Duration::from_secs(8),
        Duration::from_secs(3),
        Duration::from_secs(5),
    ];
    let (start_ms, end_ms) = healthy_degraded_healthy(&url, phases).await;
    // Two more ticks so the last windows are closed and evaluated.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let dir = running
        .jsonl_dir
        .clone()
        .expect("jsonl exporter on by default");
    let anomalies = read_lines(&dir.join("anomalies.jsonl"));
    let key = "edge:orders->payments";
    let began = event(&anomalies, key, "p99_ms", "start").expect("p99 anomaly started");
    let ended = event(&anomalies, key, "p99_ms", "end").expect("p99 anomaly ended");
    let started = began["started_ms"].as_u64().unwrap();
    let finished = ended["ended_ms"].as_u64().unwrap();
    assert!(
        started >= start_ms && started <= start_ms + 3000,
        "started {started}, degradation at {start_ms}"
    );
    assert!(
        finished >= end_ms && finished <= end_ms + 3000,
        "ended {finished}, recovery at {end_ms}"
    );
    assert_eq!(began["id"], ended["id"]);
    assert!(event(&anomalies, key, "error_rate", "start").is_some());
    // The healthy cache edge never became anomalous.
    assert!(anomalies.iter().all(|e| e["key"] != "edge:orders->redis"));

    // While degraded, the degraded edge ranks first, with its reasons.
    let hotspots = read_lines(&dir.join("hotspots.jsonl"));
    let during = common::tops_during(&hotspots, start_ms, end_ms);
    assert!(
        !during.is_empty(),
        "hotspots were ranked during the degradation"
    );
    for h in &during {
        assert_eq!(h["key"], key, "top hotspot at {}: {h:#}", h["at_ms"]);
        let names: Vec<&str> = h["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"error_rate") && names.contains(&"p99_vs_baseline"),
            "{names:?}"
        );
    }

    // Signals carry baselines and tolerance, and the API serves the same.
    let signals = read_lines(&dir.join("signals.jsonl"));
    let seqs: Vec<u64> = signals.iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence has no gaps"
    );
    let last = signals.iter().rev().find(|s| s["key"] == key).unwrap();
    let p99 = &last["signals"]["p99_ms"];
    assert!(p99["baseline"]["median"].as_f64().unwrap() < 100.0, "{p99}");
    assert_eq!(p99["within_tolerance"], true);
    let api = common::get_json(&running, &format!("/api/signals?target={key}")).await;
    assert_eq!(api["records"][0]["key"], key);
    let api = common::get_json(&running, "/api/anomalies").await;
    assert!(api["recent"].as_array().unwrap().len() >= 2);
    let paths = common::get_json(&running, "/api/paths").await;
    let path = paths["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["nodes"] == serde_json::json!(["gateway", "orders", "payments"]))
        .expect("the payments path");
    assert_eq!(path["critical_edge"]["target"], "payments");
    // Every record parses against its documented schema.
    for (file, schema) in [
        ("signals", "signal"),
        ("anomalies", "anomaly"),
        ("hotspots", "hotspot"),
    ] {
        let schema = common::schema::load(schema);
        let lines = read_lines(&dir.join(format!("{file}.jsonl")));
        assert!(!lines.is_empty(), "{file}.jsonl has records");
        for line in &lines {
            let bad = common::schema::violations(&schema, line);
            assert!(bad.is_empty(), "{file}: {bad:?} in {line}");
        }
    }
    running.stop().await.unwrap();
}

#[test]
fn the_schema_checker_catches_violations() {
    let schema = common::schema::load("anomaly");
    let good = serde_json::json!({"seq": 1, "id": "x", "state": "start", "key": "edge:a->b",
        "target": {"type": "edge", "source": "a", "target": "b", "kind": "rpc"},
        "signal": "p99_ms", "value": 1.0, "baseline": null, "z": null,
        "started_ms": 5, "ended_ms": null, "reason": "r"});
    assert!(common::schema::violations(&schema, &good).is_empty());
    let mut bad = good.clone();
    bad["state"] = "paused".into();
    bad.as_object_mut().unwrap().remove("reason");
    bad["target"]["kind"] = 3.into();
    assert_eq!(common::schema::violations(&schema, &bad).len(), 3);
}

/// `GET /api/signals?open=true` reads the window in progress at once,
/// unjudged, beside the closed windows' records (none yet here: the window
/// is a minute long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_window_shows_signals_before_it_closes() {
    let running = common::serve_with(&[("window: 1s", "window: 60s")]).await;
    let mut spans = Vec::new();
    for trace in 1..=3u8 {
        let mut pair = common::rpc_pair("front", "back", trace, 2_000);
        pair[0].error = trace == 3;
        spans.extend(pair);
    }
    let url = format!("http://{}/v1/traces", running.http.unwrap());
    let client = reqwest::Client::new();
    common::traffic::post(&client, &url, &common::request(&spans)).await;

    let key = "edge:front->back";
    let path = format!("/api/signals?open=true&target={key}");
    let mut doc = Value::Null;
    for _ in 0..50 {
        doc = common::get_json(&running, &path).await;
        if doc["open_window"]["records"][0]["calls"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = &doc["open_window"];
    let record = &open["records"][0];
    assert_eq!(record["key"], key, "{doc:#}");
    assert_eq!(record["calls"], 3, "{doc:#}");
    let error_rate = &record["signals"]["error_rate"];
    assert!((error_rate["value"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(error_rate["baseline"], Value::Null);
    assert_eq!(error_rate["within_tolerance"], true);
    let start = open["window_start_ms"].as_u64().unwrap();
    assert_eq!(start % 60_000, 0, "{open:#}");
    assert_eq!(record["window_start_ms"], start);
    assert_eq!(
        doc["records"].as_array().unwrap().len(),
        0,
        "no window closed yet"
    );

    // Filters apply to the open window too; without `open` it is absent.
    let paths = common::get_json(&running, &format!("{path}&kind=path")).await;
    assert_eq!(paths["open_window"]["records"].as_array().unwrap().len(), 0);
    let closed = common::get_json(&running, &format!("/api/signals?target={key}")).await;
    assert!(closed.get("open_window").is_none(), "{closed:#}");
}

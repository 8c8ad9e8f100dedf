//! Turning what faultline holds into table rows: a window's partial into
//! `nodes`, `edges` and `paths`; operator records into `signals`,
//! `anomalies`, `hotspots`, `scenarios` and `experiments`.
//!
//! Histograms go in as their HDR V2 encoding, never as percentiles, so a
//! query over any range of windows merges them exactly (`hdr_merge`).

use std::collections::BTreeMap;

use super::schema::{Cell, Rows, ANOMALIES, EDGES, EXPERIMENTS, HOTSPOTS, NODES, PATHS};
use super::schema::{SCENARIOS, SIGNALS};
use crate::exporters::{Record, Stream};
use crate::graph::partial::WindowPartial;
use crate::graph::stats::Latency;
use crate::operators::records::{AnomalyEvent, Hotspot, SignalRecord, Target};

/// The `nodes`, `edges` and `paths` rows of one window.
pub struct WindowRows {
    pub nodes: Rows,
    pub edges: Rows,
    pub paths: Rows,
}

/// Rows of a window `[start_ms, end_ms)`, sorted by name so files (and the
/// tests reading them) are deterministic.
pub fn window(partial: &WindowPartial, start_ms: u64, end_ms: u64) -> WindowRows {
    let span = || [Cell::int(start_ms), Cell::int(end_ms)];
    let mut nodes = NODES.rows();
    let sorted: BTreeMap<_, _> = partial.nodes.iter().collect();
    for (name, n) in sorted {
        let mut row = span().to_vec();
        row.extend([
            Cell::text(&**name),
            Cell::text(lower(&n.kind)),
            Cell::opt_text(n.system.as_deref()),
            Cell::opt_text(n.k8s_namespace.as_deref()),
            Cell::opt_text(n.k8s_deployment.as_deref()),
            Cell::int(n.stats.calls.calls),
            Cell::int(n.stats.calls.errors),
        ]);
        row.extend(latency(&n.stats.calls.latency));
        nodes.push(row);
    }
    let mut edges = EDGES.rows();
    let sorted: BTreeMap<_, _> = partial.edges.iter().collect();
    for (key, e) in sorted {
        let mut row = span().to_vec();
        row.extend([
            Cell::text(&*key.source),
            Cell::text(&*key.target),
            Cell::text(lower(&key.kind)),
            Cell::int(e.calls),
            Cell::int(e.errors),
            Cell::int(e.timeouts),
            Cell::int(e.attempts),
            Cell::int(e.retries),
        ]);
        row.extend(latency(&e.client));
        row.push(hist(&e.server));
        row.push(hist(&e.queue));
        edges.push(row);
    }
    let mut paths = PATHS.rows();
    let sorted: BTreeMap<_, _> = partial.paths.iter().collect();
    for (key, p) in sorted {
        let names: Vec<&str> = key.iter().map(|n| &**n).collect();
        let mut row = span().to_vec();
        row.extend([
            Cell::text(names.join(">")),
            Cell::opt_text(names.first().copied()),
            Cell::opt_text(names.last().copied()),
            Cell::int(names.len().saturating_sub(1) as u64),
            Cell::int(p.traces),
            Cell::int(p.errors),
        ]);
        row.extend(latency(&p.latency));
        paths.push(row);
    }
    WindowRows {
        nodes,
        edges,
        paths,
    }
}

/// `mean_ms`, `p50_ms`, `p99_ms`, `max_ms` and the histogram.
fn latency(l: &Latency) -> [Cell; 5] {
    let s = l.summary();
    [
        Cell::Float(s.map(|s| s.mean)),
        Cell::Float(s.map(|s| s.p50)),
        Cell::Float(s.map(|s| s.p99)),
        Cell::Float(s.map(|s| s.max)),
        hist(l),
    ]
}

fn hist(l: &Latency) -> Cell {
    Cell::Bytes((l.count > 0).then(|| l.encoded()))
}

/// `rpc`, `service`, …: the serde name of a unit enum.
fn lower<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn target_type(t: &Target) -> &'static str {
    match t {
        Target::Edge { .. } => "edge",
        Target::Path { .. } => "path",
        Target::Destination { .. } => "destination",
        Target::Cluster { .. } => "cluster",
    }
}

/// Converts exported records into rows (`now_ms` stamps scenarios, which
/// carry no time of their own). A record that does not parse is
/// skipped with a log line: history is best effort, the records themselves
/// still reach every other exporter.
pub fn records(records: &[Record], now_ms: u64) -> Vec<Rows> {
    let mut signals = SIGNALS.rows();
    let mut anomalies = ANOMALIES.rows();
    let mut hotspots = HOTSPOTS.rows();
    let mut scenarios = SCENARIOS.rows();
    let mut experiments = EXPERIMENTS.rows();
    for r in records {
        let done = match r.stream {
            Stream::Signals => parse(r).map(|s| signal(&mut signals, &s)),
            Stream::Anomalies => parse(r).map(|a| anomalies.push(anomaly(&a))),
            Stream::Hotspots => parse(r).map(|h| hotspots.push(hotspot(&h))),
            Stream::Scenarios => parse(r).map(|v| scenarios.push(scenario(&v, now_ms))),
            Stream::Experiments => parse(r).map(|v| experiments.push(experiment(&v))),
        };
        if let Err(error) = done {
            tracing::warn!(%error, stream = r.stream.name(), "record not kept in history");
        }
    }
    [signals, anomalies, hotspots, scenarios, experiments]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(r: &Record) -> Result<T, serde_json::Error> {
    serde_json::from_slice(&r.json)
}

fn signal(rows: &mut Rows, s: &SignalRecord) {
    for (name, v) in &s.signals {
        let b = v.baseline.as_ref();
        rows.push(vec![
            Cell::int(s.window_start_ms),
            Cell::int(s.window_end_ms),
            Cell::text(&s.key),
            Cell::text(target_type(&s.target)),
            Cell::int(s.calls),
            Cell::text(name),
            Cell::Float(Some(v.value)),
            Cell::Float(b.map(|b| b.median)),
            Cell::Float(b.map(|b| b.mad)),
            Cell::Float(b.map(|b| b.ewma)),
            Cell::Int(b.map(|b| b.windows as i64)),
            Cell::Float(v.z),
            Cell::Bool(Some(v.within_tolerance)),
            Cell::int(s.seq),
        ]);
    }
}

fn anomaly(a: &AnomalyEvent) -> Vec<Cell> {
    vec![
        Cell::int(a.ended_ms.unwrap_or(a.started_ms)),
        Cell::text(&a.id),
        Cell::text(lower(&a.state)),
        Cell::text(&a.key),
        Cell::text(target_type(&a.target)),
        Cell::text(&a.signal),
        Cell::Float(Some(a.value)),
        Cell::Float(a.baseline.map(|b| b.median)),
        Cell::Float(a.z),
        Cell::int(a.started_ms),
        Cell::Int(a.ended_ms.map(|t| t as i64)),
        Cell::text(&a.reason),
        Cell::int(a.seq),
    ]
}

fn hotspot(h: &Hotspot) -> Vec<Cell> {
    vec![
        Cell::int(h.at_ms),
        Cell::int(h.rank as u64),
        Cell::text(&h.key),
        Cell::text(target_type(&h.target)),
        Cell::Float(Some(h.score)),
        Cell::Float(Some(h.target_factor)),
        Cell::Float(Some(h.feedback_weight)),
        Cell::int(h.anomalies.len() as u64),
        Cell::Float(h.signals.get("error_rate").copied()),
        Cell::Float(h.signals.get("p99_ms").copied()),
        Cell::text(serde_json::to_string(&h.components).unwrap_or_default()),
        Cell::int(h.seq),
    ]
}

fn scenario(v: &serde_json::Value, now_ms: u64) -> Vec<Cell> {
    let key = serde_json::from_value::<Target>(v["target"].clone())
        .map(|t| t.key())
        .ok();
    vec![
        Cell::int(now_ms),
        text(v, "/id"),
        int(v, "/rank"),
        text(v, "/title"),
        Cell::opt_text(key),
        text(v, "/fault/kind"),
        int(v, "/duration_s"),
        Cell::Float(v["priority"].as_f64()),
        text(v, "/source"),
        Cell::text(v.to_string()),
    ]
}

fn experiment(v: &serde_json::Value) -> Vec<Cell> {
    vec![
        int(v, "/started_ms"),
        text(v, "/run_id"),
        text(v, "/scenario_id"),
        text(v, "/title"),
        text(v, "/target"),
        int(v, "/fault_start_ms"),
        int(v, "/fault_end_ms"),
        int(v, "/ended_ms"),
        int(v, "/time_to_detect_ms"),
        int(v, "/time_to_recover_ms"),
        Cell::Bool(v["recovered"].as_bool()),
        text(v, "/aborted"),
        text(v, "/verdict"),
        Cell::text(v.to_string()),
    ]
}

fn text(v: &serde_json::Value, pointer: &str) -> Cell {
    Cell::opt_text(v.pointer(pointer).and_then(|x| x.as_str()))
}

fn int(v: &serde_json::Value, pointer: &str) -> Cell {
    Cell::Int(v.pointer(pointer).and_then(|x| x.as_i64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::partial::{EdgeKey, EdgeKind, NodeKind};

    #[test]
    fn a_window_becomes_rows_with_exact_histograms() {
        let mut p = WindowPartial::default();
        let a: std::sync::Arc<str> = "a".into();
        let b: std::sync::Arc<str> = "b".into();
        p.node(&b, NodeKind::Service)
            .stats
            .calls
            .record(5_000_000, false);
        let key = EdgeKey {
            source: a,
            target: b,
            kind: EdgeKind::Rpc,
        };
        let e = p.edge(&key);
        e.calls = 1;
        e.client.record(7_000_000);
        let expected = e.client.encoded();
        let rows = window(&p, 1000, 2000);
        assert_eq!(rows.nodes.len(), 1);
        let batch = rows.edges.batch();
        assert_eq!(batch.num_rows(), 1);
        let hist = batch
            .column_by_name("latency_hist")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .unwrap()
            .value(0)
            .to_vec();
        assert_eq!(hist, expected);
        assert!(batch.column_by_name("server_hist").unwrap().is_null(0));
    }

    #[test]
    fn signal_records_become_one_row_per_signal() {
        let json = serde_json::json!({
            "seq": 3, "key": "edge:a->b",
            "target": {"type": "edge", "source": "a", "target": "b", "kind": "rpc"},
            "window_start_ms": 1000, "window_end_ms": 2000, "calls": 12,
            "signals": {
                "p99_ms": {"value": 801.0, "baseline": {"median": 21.0, "mad": 0.0, "ewma": 95.3, "windows": 8}, "z": 372.4, "within_tolerance": false},
                "error_rate": {"value": 0.5, "baseline": null, "z": null, "within_tolerance": true}
            }
        });
        let r = Record::new(Stream::Signals, "edge:a->b", &json);
        let bad = Record::new(Stream::Anomalies, "x", &serde_json::json!({"nope": 1}));
        let tables = records(&[r, bad], 0);
        assert_eq!(tables.len(), 1, "the bad anomaly is skipped");
        assert_eq!(tables[0].table.name, "signals");
        assert_eq!(tables[0].len(), 2);
    }
}

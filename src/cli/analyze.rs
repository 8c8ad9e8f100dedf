//! `faultline analyze FILE...`: the same graph, built offline from exported spans.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::table;
use crate::graph::{GraphSettings, GraphView, OfflineGraph};
use crate::receivers::file::{self, Imported};

/// Files larger than this get a progress bar (on a terminal).
const PROGRESS_FROM_BYTES: u64 = 16 << 20;

/// What `analyze --format json` prints: the `/api/graph` document plus the files read.
#[derive(Serialize)]
pub struct Analysis {
    #[serde(flatten)]
    pub graph: GraphView,
    pub files: Vec<Imported>,
}

/// Reads every file, builds the graph, expires all pending pairs.
pub fn analyze(paths: &[PathBuf], settings: GraphSettings) -> anyhow::Result<Analysis> {
    let mut graph = OfflineGraph::new(settings);
    let mut files = Vec::new();
    for path in paths {
        let size = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read", path.display()))?
            .len();
        let bar = progress_bar(size, path);
        let mut imported = file::import(path, &|done| bar.set_position(done))?;
        bar.finish_and_clear();
        graph.ingest(&imported.batch.spans);
        imported.batch.spans = Vec::new();
        files.push(imported);
    }
    Ok(Analysis {
        graph: graph.finish(),
        files,
    })
}

fn progress_bar(size: u64, path: &std::path::Path) -> ProgressBar {
    if size < PROGRESS_FROM_BYTES {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    bar
}

/// The human-readable report: files, nodes, edges, unpaired spans.
pub fn render_table(a: &Analysis) -> String {
    let g = &a.graph;
    let ms = |l: Option<crate::graph::stats::LatencySummary>,
              f: fn(&crate::graph::stats::LatencySummary) -> f64| {
        l.map(|l| format!("{:.2}", f(&l)))
            .unwrap_or_else(|| "-".into())
    };
    let pct = |r: f64| format!("{:.1}%", r * 100.0);
    let mut out = String::new();
    for f in &a.files {
        out += &format!(
            "{}: {:?}, {} spans, {} rejected\n",
            f.path, f.format, f.spans, f.rejected
        );
    }
    out += "\nNODES\n";
    let rows: Vec<Vec<String>> = g
        .nodes
        .iter()
        .map(|n| {
            let kind = format!("{:?}", n.kind).to_lowercase();
            vec![
                n.id.clone(),
                kind,
                n.calls.to_string(),
                pct(n.error_rate),
                ms(n.latency_ms, |l| l.p50),
                ms(n.latency_ms, |l| l.p99),
                n.fan_out.to_string(),
            ]
        })
        .collect();
    out += &table::render(
        &[
            "node", "kind", "calls", "errors", "p50 ms", "p99 ms", "fan-out",
        ],
        &rows,
    );
    out += "\nEDGES\n";
    let rows: Vec<Vec<String>> = g
        .edges
        .iter()
        .map(|e| {
            let kind = format!("{:?}", e.kind).to_lowercase();
            vec![
                format!("{} -> {}", e.source, e.target),
                kind,
                e.calls.to_string(),
                pct(e.error_rate),
                ms(e.latency_ms, |l| l.mean),
                ms(e.latency_ms, |l| l.p99),
            ]
        })
        .collect();
    out += &table::render(
        &["edge", "kind", "calls", "errors", "mean ms", "p99 ms"],
        &rows,
    );
    let u = &g.unpaired;
    out += &format!(
        "\nUNPAIRED: {} expired to virtual nodes, {} client and {} server spans expired without a peer, {} dropped\n",
        u.expired_to_virtual, u.expired_client, u.expired_server, u.dropped
    );
    out
}

//! SQL inside a running collector (`POST /api/query`): the Parquet history
//! plus the live window as in-memory tables.
//!
//! Live tables carry the `live_` prefix (`live_edges`, `live_signals`, …)
//! and the history tables' columns, so a query can `UNION ALL` the two.
//! `live_nodes`, `live_edges` and `live_paths` are the window in progress
//! (`graph_nodes`, `graph_edges`, `graph_paths`: everything since start,
//! as one row per node, edge or path, what `/api/graph` shows);
//! `live_signals` the latest evaluated window, `live_hotspots` the current
//! ranking, `live_anomalies` the anomalies open now and `live_scenarios`
//! the current scenarios.

use std::sync::Arc;
use std::time::Duration;

use super::engine::{Answer, Engine, Limits, QueryError};
use super::rows;
use super::schema::{Rows, ANOMALIES, HOTSPOTS, SCENARIOS, SIGNALS};
use super::writer::ParquetExporter;
use crate::exporters::{Record, Stream};
use crate::graph::{Graph, WindowSelect};
use crate::operators::SharedLatest;

/// How long a query waits for the history writer to write what it buffers.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// What a query in the server can read.
#[derive(Clone)]
pub struct QueryService {
    pub graph: Graph,
    pub latest: SharedLatest,
    /// The history writer, when `exporters.parquet` is on.
    pub history: Option<Arc<ParquetExporter>>,
    pub limits: Limits,
}

impl QueryService {
    /// Runs `sql` over the history (flushed first, so rows of windows that
    /// closed a moment ago are in it) and the live tables.
    pub async fn run(&self, sql: &str) -> Result<Answer, QueryError> {
        let engine = Engine::new(self.limits)?;
        if let Some(history) = &self.history {
            let writer = history.clone();
            let flushed = tokio::task::spawn_blocking(move || writer.flush_now(FLUSH_WAIT)).await;
            if !matches!(flushed, Ok(true)) {
                tracing::warn!("history writer did not flush before a query");
            }
            engine.register_history(history.history())?;
        }
        register(&engine, &self.graph, &self.latest).await?;
        engine.run(sql).await
    }
}

/// Registers the `live_*` and `graph_*` tables.
pub async fn register(
    engine: &Engine,
    graph: &Graph,
    latest: &SharedLatest,
) -> Result<(), QueryError> {
    let (partial, start) = graph.partial(WindowSelect::Current).await;
    let end = start + graph.settings().window_ms;
    let window = rows::window(&partial, start, end);
    engine.register_rows("live_nodes", &window.nodes)?;
    engine.register_rows("live_edges", &window.edges)?;
    engine.register_rows("live_paths", &window.paths)?;
    let (all, _) = graph.partial(WindowSelect::All).await;
    let graph_rows = rows::window(&all, 0, crate::graph::now_ms());
    engine.register_rows("graph_nodes", &graph_rows.nodes)?;
    engine.register_rows("graph_edges", &graph_rows.edges)?;
    engine.register_rows("graph_paths", &graph_rows.paths)?;
    let mut tables = rows::records(&latest_records(latest), crate::graph::now_ms());
    for def in [&SIGNALS, &ANOMALIES, &HOTSPOTS, &SCENARIOS] {
        let found = tables.iter().position(|r| r.table.name == def.name);
        let rows: Rows = match found {
            Some(i) => tables.swap_remove(i),
            None => def.rows(),
        };
        engine.register_rows(&format!("live_{}", def.name), &rows)?;
    }
    Ok(())
}

/// The operators' latest results as records (the same rows as history).
fn latest_records(latest: &SharedLatest) -> Vec<Record> {
    let l = latest.read();
    let scenarios = l
        .scenarios
        .iter()
        .map(|s| Record::new(Stream::Scenarios, s.target.key(), s));
    crate::operators::live::records(&l.signals, &l.active, &l.hotspots)
        .chain(scenarios)
        .collect()
}

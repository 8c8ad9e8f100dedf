//! Offline imports for SQL: exported span files become a `spans` table
//! (one row per span) and the graph built from them becomes `nodes`,
//! `edges` and `paths`, as `faultline analyze` would build it.

use std::path::PathBuf;

use anyhow::Context;

use super::engine::{Engine, QueryError};
use super::rows::{self, WindowRows};
use super::schema::{Cell, Rows, SPANS};
use crate::graph::{GraphSettings, OfflineGraph};
use crate::model::Span;
use crate::receivers::file;

/// What the files held, as rows.
pub struct Imported {
    pub spans: Rows,
    pub graph: WindowRows,
}

/// Reads every file (format detected per file, as `analyze` does).
pub fn import(paths: &[PathBuf], settings: GraphSettings) -> anyhow::Result<Imported> {
    let mut graph = OfflineGraph::new(settings);
    let mut spans = SPANS.rows();
    let (mut first_ns, mut last_ns) = (u64::MAX, 0);
    for path in paths {
        let imported =
            file::import(path, &|_| {}).with_context(|| format!("importing {}", path.display()))?;
        let name = path.display().to_string();
        for s in &imported.batch.spans {
            spans.push(span_row(s, &name));
            first_ns = first_ns.min(s.start_unix_nano);
            last_ns = last_ns.max(s.end_unix_nano);
        }
        graph.ingest(&imported.batch.spans);
    }
    let partial = graph.finish_partial();
    let (start, end) = if first_ns > last_ns {
        (0, 0)
    } else {
        (first_ns / 1_000_000, last_ns.div_ceil(1_000_000))
    };
    Ok(Imported {
        spans,
        graph: rows::window(&partial, start, end),
    })
}

impl Imported {
    /// Registers `spans`, `nodes`, `edges` and `paths` (the whole import
    /// as one window, from the first span's start to the last one's end).
    pub fn register(&self, engine: &Engine) -> Result<(), QueryError> {
        engine.register_rows("spans", &self.spans)?;
        engine.register_rows("nodes", &self.graph.nodes)?;
        engine.register_rows("edges", &self.graph.edges)?;
        engine.register_rows("paths", &self.graph.paths)
    }
}

fn span_row(s: &Span, file: &str) -> Vec<Cell> {
    let a = &s.attributes;
    let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
    vec![
        Cell::int(s.start_unix_nano / 1_000_000),
        Cell::text(hex::encode(s.trace_id)),
        Cell::text(hex::encode(s.span_id)),
        Cell::opt_text(s.parent_span_id.map(hex::encode)),
        Cell::text(&**s.service()),
        Cell::text(&*s.name),
        Cell::text(lower(&s.kind)),
        Cell::int(s.start_unix_nano),
        Cell::int(s.end_unix_nano),
        Cell::Float(Some(s.duration_nanos() as f64 / 1e6)),
        Cell::text(lower(&s.status)),
        Cell::Bool(Some(s.is_error())),
        Cell::Bool(Some(s.is_timeout())),
        Cell::opt_text(a.peer_service()),
        Cell::opt_text(a.server_address()),
        Cell::opt_text(a.db_system().or(a.db_system_name())),
        Cell::opt_text(a.db_namespace().or(a.db_name())),
        Cell::opt_text(a.messaging_system()),
        Cell::opt_text(a.messaging_destination()),
        Cell::Int(a.http_status_code),
        Cell::Int(a.rpc_grpc_status_code),
        Cell::opt_text(s.resource.k8s_namespace.as_deref()),
        Cell::opt_text(s.resource.k8s_deployment.as_deref()),
        Cell::text(file),
    ]
}

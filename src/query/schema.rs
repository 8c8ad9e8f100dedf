//! The tables SQL sees: their columns, types and meaning, in one place.
//!
//! Every table is declared here as data ([`TableDef`]) rather than as a
//! hand-written Arrow schema per writer, so the Parquet writer, the live
//! in-memory tables, the offline importer and the documentation test all
//! read the same list. Columns are only ever added, never renamed: saved
//! queries and old Parquet files must keep working.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder};
use arrow::array::{RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// A column's SQL type. Integers are `BIGINT` (signed, so arithmetic and
/// comparisons never trip over unsigned coercions in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Text,
    /// Raw bytes: HDR histograms in their V2 encoding.
    Bytes,
    Bool,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub doc: &'static str,
    /// The millisecond column whose hour names the Parquet partition.
    pub time_column: &'static str,
    pub columns: &'static [Column],
}

const fn col(name: &'static str, kind: Kind, doc: &'static str) -> Column {
    Column { name, kind, doc }
}

use Kind::{Bool, Bytes, Float, Int, Text};

const WINDOW_START: Column = col(
    "window_start_ms",
    Int,
    "start of the window, ms since the epoch",
);
const WINDOW_END: Column = col("window_end_ms", Int, "end of the window (exclusive)");
const MEAN: Column = col("mean_ms", Float, "mean latency in this window");
const P50: Column = col("p50_ms", Float, "median latency in this window");
const P99: Column = col(
    "p99_ms",
    Float,
    "p99 in this window (over several windows, merge `latency_hist` instead)",
);
const MAX: Column = col("max_ms", Float, "slowest call in this window");

pub const NODES: TableDef = TableDef {
    name: "nodes",
    doc: "one row per node and closed window: the calls the node served",
    time_column: "window_start_ms",
    columns: &[
        WINDOW_START,
        WINDOW_END,
        col("node", Text, "service name, or the virtual node's name"),
        col("kind", Text, "service, database, messaging or external"),
        col(
            "system",
            Text,
            "db.system / messaging.system of a virtual node",
        ),
        col("k8s_namespace", Text, "k8s.namespace.name of a service"),
        col("k8s_deployment", Text, "k8s.deployment.name of a service"),
        col("calls", Int, "calls served"),
        col("errors", Int, "calls that failed"),
        MEAN,
        P50,
        P99,
        MAX,
        col(
            "latency_hist",
            Bytes,
            "HDR histogram (V2 encoding, microseconds) of the served calls",
        ),
    ],
};

pub const EDGES: TableDef = TableDef {
    name: "edges",
    doc: "one row per edge and closed window: calls from source to target",
    time_column: "window_start_ms",
    columns: &[
        WINDOW_START,
        WINDOW_END,
        col("source", Text, "calling node"),
        col("target", Text, "called node"),
        col("kind", Text, "rpc, messaging, database or external"),
        col("calls", Int, "calls"),
        col("errors", Int, "calls where either side failed"),
        col("timeouts", Int, "calls that failed by timing out"),
        col("attempts", Int, "client spans in assembled traces"),
        col("retries", Int, "retries among the attempts"),
        MEAN,
        P50,
        P99,
        MAX,
        col(
            "latency_hist",
            Bytes,
            "HDR histogram (V2, µs) of the caller's spans: what /api/graph's latency_ms reads",
        ),
        col(
            "server_hist",
            Bytes,
            "HDR histogram of the callee's spans (null when never seen)",
        ),
        col(
            "queue_hist",
            Bytes,
            "messaging: HDR histogram of consumer start - producer end",
        ),
    ],
};

pub const PATHS: TableDef = TableDef {
    name: "paths",
    doc: "one row per root-to-leaf path and closed window",
    time_column: "window_start_ms",
    columns: &[
        WINDOW_START,
        WINDOW_END,
        col("path", Text, "the nodes, root first, joined by `>`"),
        col("root", Text, "first node"),
        col("leaf", Text, "last node"),
        col("hops", Int, "edges on the path"),
        col("traces", Int, "traces that followed it"),
        col("errors", Int, "traces with a failed hop"),
        MEAN,
        P50,
        P99,
        MAX,
        col(
            "latency_hist",
            Bytes,
            "HDR histogram (V2, µs) of the root span's duration",
        ),
    ],
};

pub const SIGNALS: TableDef = TableDef {
    name: "signals",
    doc: "one row per target, signal and evaluated window (the `signals` stream, long format)",
    time_column: "window_start_ms",
    columns: &[
        WINDOW_START,
        WINDOW_END,
        col(
            "key",
            Text,
            "target key: edge:a->b, path:a>b, destination:q, cluster:…",
        ),
        col("target_type", Text, "edge, path, destination or cluster"),
        col("calls", Int, "calls, traces or messages in the window"),
        col(
            "signal",
            Text,
            "error_rate, timeout_rate, p99_ms, retries, …",
        ),
        col("value", Float, "the signal's value"),
        col(
            "baseline_median",
            Float,
            "median of the baseline (null without one)",
        ),
        col(
            "baseline_mad",
            Float,
            "median absolute deviation of the baseline",
        ),
        col("baseline_ewma", Float, "EWMA of the baseline"),
        col("baseline_windows", Int, "windows the baseline covers"),
        col("z", Float, "robust z-score against the baseline"),
        col("within_tolerance", Bool, "false when out of tolerance"),
        col("seq", Int, "the record's sequence number on its stream"),
    ],
};

pub const ANOMALIES: TableDef = TableDef {
    name: "anomalies",
    doc: "one row per anomaly start or end event",
    time_column: "at_ms",
    columns: &[
        col(
            "at_ms",
            Int,
            "when the event happened: started_ms or ended_ms",
        ),
        col(
            "id",
            Text,
            "<key>/<signal>/<start ms>, shared by start and end",
        ),
        col("state", Text, "start or end"),
        col("key", Text, "target key"),
        col("target_type", Text, "edge, path, destination or cluster"),
        col("signal", Text, "the signal, or new_signature"),
        col("value", Float, "the signal's value"),
        col("baseline_median", Float, "median of the baseline"),
        col("z", Float, "robust z-score"),
        col(
            "started_ms",
            Int,
            "end of the first window out of tolerance",
        ),
        col(
            "ended_ms",
            Int,
            "end of the first window back within (end events)",
        ),
        col("reason", Text, "in words"),
        col("seq", Int, "sequence number on the anomalies stream"),
    ],
};

pub const HOTSPOTS: TableDef = TableDef {
    name: "hotspots",
    doc: "one row per ranked hotspot per evaluation",
    time_column: "at_ms",
    columns: &[
        col("at_ms", Int, "end of the evaluated window"),
        col("rank", Int, "1 is the riskiest"),
        col("key", Text, "target key"),
        col("target_type", Text, "edge, path, destination or cluster"),
        col("score", Float, "points × target factor × feedback weight"),
        col(
            "target_factor",
            Float,
            "1, or weights.path_factor for paths",
        ),
        col("feedback_weight", Float, "the weight experiments raise"),
        col("active_anomalies", Int, "anomalies active on the target"),
        col(
            "error_rate",
            Float,
            "latest error rate (null if not a signal of the target)",
        ),
        col("p99_ms", Float, "latest p99"),
        col("components", Text, "the score's components, JSON"),
        col("seq", Int, "sequence number on the hotspots stream"),
    ],
};

pub const SCENARIOS: TableDef = TableDef {
    name: "scenarios",
    doc: "one row per generated scenario, each time the ranking changed",
    time_column: "generated_ms",
    columns: &[
        col(
            "generated_ms",
            Int,
            "when this set of scenarios was generated",
        ),
        col("id", Text, "stable scenario id"),
        col("rank", Int, "1 runs first"),
        col("title", Text, "in words"),
        col("key", Text, "target key"),
        col(
            "fault",
            Text,
            "fault kind: latency, timeout, down, retry_storm, …",
        ),
        col("duration_s", Int, "how long the fault is applied"),
        col(
            "priority",
            Float,
            "rule points + hotspot score + anomaly points",
        ),
        col("source", Text, "rules or llm"),
        col("json", Text, "the whole scenario (docs/scenarios.md)"),
    ],
};

pub const EXPERIMENTS: TableDef = TableDef {
    name: "experiments",
    doc: "one row per finished experiment run",
    time_column: "started_ms",
    columns: &[
        col("started_ms", Int, "when the run started (baseline)"),
        col("run_id", Text, "the run"),
        col("scenario_id", Text, "the scenario it ran"),
        col("title", Text, "in words"),
        col("target", Text, "target key watched"),
        col("fault_start_ms", Int, "fault injected"),
        col("fault_end_ms", Int, "fault removed"),
        col("ended_ms", Int, "run finished"),
        col(
            "time_to_detect_ms",
            Int,
            "fault start to the first window out of band",
        ),
        col(
            "time_to_recover_ms",
            Int,
            "fault removal to recovery (null: never)",
        ),
        col("recovered", Bool, "whether it recovered within the limit"),
        col("aborted", Text, "why the fault ended early, if it did"),
        col("verdict", Text, "expected or unexpected"),
        col("json", Text, "the whole result (docs/experiments.md)"),
    ],
};

pub const SPANS: TableDef = TableDef {
    name: "spans",
    doc: "offline imports (`faultline query --input`): one row per span, the fields the graph uses",
    time_column: "start_ms",
    columns: &[
        col("start_ms", Int, "span start, ms since the epoch"),
        col("trace_id", Text, "hex"),
        col("span_id", Text, "hex"),
        col("parent_span_id", Text, "hex, null for a root span"),
        col("service", Text, "resource service.name"),
        col("name", Text, "operation (span name)"),
        col(
            "kind",
            Text,
            "internal, server, client, producer or consumer",
        ),
        col("start_unix_nano", Int, "span start, ns"),
        col("end_unix_nano", Int, "span end, ns"),
        col("duration_ms", Float, "end - start"),
        col("status", Text, "unset, ok or error"),
        col(
            "is_error",
            Bool,
            "failed per the semantic conventions (as the graph judges)",
        ),
        col("is_timeout", Bool, "failed by timing out"),
        col("peer_service", Text, "peer.service"),
        col("server_address", Text, "server.address"),
        col("db_system", Text, "db.system (or db.system.name)"),
        col("db_name", Text, "db.namespace (or db.name)"),
        col("messaging_system", Text, "messaging.system"),
        col("messaging_destination", Text, "messaging.destination.name"),
        col("http_status_code", Int, "http.response.status_code"),
        col("rpc_grpc_status_code", Int, "rpc.grpc.status_code"),
        col("k8s_namespace", Text, "k8s.namespace.name"),
        col("k8s_deployment", Text, "k8s.deployment.name"),
        col("file", Text, "the file the span was read from"),
    ],
};

/// The tables kept as history (Parquet), in documentation order.
pub const HISTORY: [&TableDef; 8] = [
    &NODES,
    &EDGES,
    &PATHS,
    &SIGNALS,
    &ANOMALIES,
    &HOTSPOTS,
    &SCENARIOS,
    &EXPERIMENTS,
];

/// The tables as Markdown (the column reference in `docs/history.md`,
/// which a unit test keeps equal to this).
pub fn markdown() -> String {
    let mut out = String::new();
    for t in HISTORY.iter().chain([&&SPANS]) {
        out += &format!("### `{}`\n\n{}.\n\n", t.name, capitalized(t.doc));
        out += "| column | type | meaning |\n|---|---|---|\n";
        for c in t.columns {
            let ty = match c.kind {
                Int => "BIGINT",
                Float => "DOUBLE",
                Text => "VARCHAR",
                Bytes => "BINARY",
                Bool => "BOOLEAN",
            };
            out += &format!("| `{}` | {ty} | {} |\n", c.name, c.doc.replace('|', "\\|"));
        }
        out += "\n";
    }
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl TableDef {
    /// The Arrow schema; every column is nullable, so old files and new
    /// columns merge without rewriting anything.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// An empty builder of this table's rows.
    pub fn rows(&'static self) -> Rows {
        Rows {
            table: self,
            rows: Vec::new(),
        }
    }
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Int => DataType::Int64,
            Float => DataType::Float64,
            Text => DataType::Utf8,
            Bytes => DataType::Binary,
            Bool => DataType::Boolean,
        }
    }
}

/// One value of a row, in the column's kind (`None` is SQL NULL).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
}

impl Cell {
    pub fn int(v: u64) -> Cell {
        Cell::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    pub fn text(v: impl Into<String>) -> Cell {
        Cell::Text(Some(v.into()))
    }

    pub fn opt_text(v: Option<impl Into<String>>) -> Cell {
        Cell::Text(v.map(Into::into))
    }

    fn kind(&self) -> Kind {
        match self {
            Cell::Int(_) => Int,
            Cell::Float(_) => Float,
            Cell::Text(_) => Text,
            Cell::Bytes(_) => Bytes,
            Cell::Bool(_) => Bool,
        }
    }
}

/// Rows of one table, built row by row and turned into one Arrow batch.
pub struct Rows {
    pub table: &'static TableDef,
    rows: Vec<Vec<Cell>>,
}

impl Rows {
    /// Adds a row. A row of the wrong shape is a bug in faultline, caught
    /// by the unit tests of every producer, so it panics in debug builds
    /// and is dropped (and logged) in release builds.
    pub fn push(&mut self, row: Vec<Cell>) {
        let fits = row.len() == self.table.columns.len()
            && row
                .iter()
                .zip(self.table.columns)
                .all(|(cell, c)| cell.kind() == c.kind);
        debug_assert!(fits, "row does not fit table {}", self.table.name);
        if fits {
            self.rows.push(row);
        } else {
            tracing::error!(table = self.table.name, "row of the wrong shape dropped");
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The time cell of each row (for partitioning), in ms.
    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let at = self.table.index_of(self.table.time_column).unwrap_or(0);
        self.rows.iter().map(move |r| match r[at] {
            Cell::Int(Some(t)) => t,
            _ => 0,
        })
    }

    /// Splits the rows by a key computed from each row's time (the hour).
    pub fn split_by<K: Ord>(self, key: impl Fn(i64) -> K) -> std::collections::BTreeMap<K, Rows> {
        let at = self.table.index_of(self.table.time_column).unwrap_or(0);
        let mut out: std::collections::BTreeMap<K, Rows> = Default::default();
        for row in self.rows {
            let t = match row[at] {
                Cell::Int(Some(t)) => t,
                _ => 0,
            };
            out.entry(key(t))
                .or_insert_with(|| self.table.rows())
                .rows
                .push(row);
        }
        out
    }

    /// The rows as one record batch.
    pub fn batch(&self) -> RecordBatch {
        let columns: Vec<ArrayRef> = (0..self.table.columns.len())
            .map(|i| self.column(i))
            .collect();
        RecordBatch::try_new(self.table.schema(), columns)
            .expect("columns are built from the table's own schema")
    }

    fn column(&self, i: usize) -> ArrayRef {
        let cells = self.rows.iter().map(|r| &r[i]);
        match self.table.columns[i].kind {
            Int => {
                let mut b = Int64Builder::with_capacity(self.rows.len());
                cells.for_each(|c| b.append_option(if let Cell::Int(v) = c { *v } else { None }));
                Arc::new(b.finish())
            }
            Float => {
                let mut b = Float64Builder::with_capacity(self.rows.len());
                cells.for_each(|c| b.append_option(if let Cell::Float(v) = c { *v } else { None }));
                Arc::new(b.finish())
            }
            Text => {
                let mut b = StringBuilder::new();
                cells.for_each(|c| match c {
                    Cell::Text(v) => b.append_option(v.as_deref()),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            Bytes => {
                let mut b = BinaryBuilder::new();
                cells.for_each(|c| match c {
                    Cell::Bytes(v) => b.append_option(v.as_deref()),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            Bool => {
                let mut b = BooleanBuilder::with_capacity(self.rows.len());
                cells.for_each(|c| b.append_option(if let Cell::Bool(v) = c { *v } else { None }));
                Arc::new(b.finish())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_its_time_column() {
        for t in HISTORY.iter().chain([&&SPANS]) {
            let i = t.index_of(t.time_column).expect(t.name);
            assert_eq!(t.columns[i].kind, Int, "{}", t.name);
        }
    }

    #[test]
    fn rows_become_a_batch_and_split_by_hour() {
        let mut rows = ANOMALIES.rows();
        for at in [1_000, 3_600_000, 3_600_001] {
            let mut row = vec![Cell::Int(Some(at))];
            row.extend(ANOMALIES.columns[1..].iter().map(|c| match c.kind {
                Int => Cell::Int(None),
                Float => Cell::Float(Some(1.5)),
                Text => Cell::text("x"),
                Bytes => Cell::Bytes(None),
                Bool => Cell::Bool(Some(true)),
            }));
            rows.push(row);
        }
        assert_eq!(rows.batch().num_rows(), 3);
        let parts = rows.split_by(|t| t / 3_600_000);
        let sizes: Vec<usize> = parts.values().map(Rows::len).collect();
        assert_eq!(sizes, vec![1, 2]);
    }

    #[test]
    fn the_documentation_lists_every_column() {
        let doc = include_str!("../../docs/history.md");
        assert!(
            doc.contains(&markdown()),
            "docs/history.md is behind the schema; paste `query::schema::markdown()` in:\n{}",
            markdown()
        );
    }
}

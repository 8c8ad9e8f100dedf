//! `faultline query "SQL"`: SQL over a data directory's history, offline
//! span files, or a running server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::graph::GraphSettings;
use crate::query::{history_dir, output, spans, Answer, Engine, Limits};

/// Where a query's tables come from (shared with `faultline export`).
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The data directory of a faultline whose pipeline has
    /// `exporters.parquet` (the embedded default does): its
    /// `history/<table>/hour=…/*.parquet` files are the tables `nodes`,
    /// `edges`, `paths`, `signals`, `anomalies`, `hotspots`, `scenarios`
    /// and `experiments`. The server may be running: it writes a file per
    /// table every `flush` (60 s by default), so the last minute may not be
    /// there yet; `--server` sees everything.
    #[arg(
        long,
        value_name = "DIR",
        env = "FAULTLINE_DATA_DIR",
        default_value = "./faultline-data"
    )]
    pub data_dir: PathBuf,
    /// An exported span file to read instead of a data directory (OTLP
    /// JSON, Jaeger JSON, Zipkin v2 JSON, detected per file, as for
    /// `faultline analyze`); repeat it for several files. The table `spans`
    /// has one row per span, and `nodes`, `edges` and `paths` hold the
    /// graph built from them, as one window.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    pub input: Vec<PathBuf>,
    /// A running faultline's API, e.g. http://127.0.0.1:8080: the query is
    /// sent to its `POST /api/query`, which also sees the window in
    /// progress (`live_nodes`, `live_edges`, `live_signals`, …), the whole
    /// graph since start (`graph_nodes`, `graph_edges`, `graph_paths`) and
    /// history rows not yet flushed.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Stop a query that runs longer than this (local queries; a server
    /// applies its own `extensions.api.query_timeout`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Memory a query's sorts, joins and aggregations may hold, in MiB;
    /// past it the query fails with DataFusion's "Resources exhausted"
    /// (nothing spills to disk).
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub memory_mib: usize,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The query, in DataFusion's SQL (PostgreSQL-like). Read-only:
    /// CREATE, INSERT, COPY and SET are refused. faultline adds
    /// `hdr_merge(hist)`, an aggregate that adds HDR histograms exactly,
    /// `hdr_quantile(hist, q)`, the value at quantile q in milliseconds,
    /// and `hdr_count(hist)`. Example:
    /// SELECT source, target, hdr_quantile(hdr_merge(latency_hist), 0.99) AS p99_ms
    /// FROM edges GROUP BY source, target ORDER BY p99_ms DESC LIMIT 5.
    /// `SHOW TABLES` and `SHOW COLUMNS FROM edges` list what there is; the
    /// columns are documented in docs/history.md.
    pub sql: String,
    #[command(flatten)]
    pub source: SourceArgs,
    /// How to print the answer: a text table (histograms shown by size),
    /// JSON (`{"columns", "rows"}`, histograms as hex) or CSV with a header.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum QueryFormat {
    Table,
    Json,
    Csv,
}

impl SourceArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            memory_bytes: self.memory_mib.max(1) << 20,
        }
    }

    /// A local engine over the data directory or the input files.
    pub fn engine(&self, settings: GraphSettings) -> anyhow::Result<Engine> {
        let engine = Engine::new(self.limits())?;
        if self.input.is_empty() {
            let history = history_dir(&self.data_dir);
            anyhow::ensure!(
                history.is_dir(),
                "no history in {} (expected {}; does the server's pipeline export to `parquet`?)",
                self.data_dir.display(),
                history.display()
            );
            engine.register_history(&history)?;
        } else {
            spans::import(&self.input, settings)?.register(&engine)?;
        }
        Ok(engine)
    }
}

/// Runs the query where `source` says and prints the answer.
pub async fn run(args: QueryArgs, settings: GraphSettings) -> anyhow::Result<()> {
    let answer = match &args.source.server {
        Some(url) => remote(url, &args.sql).await?,
        None => args.source.engine(settings)?.run(&args.sql).await?,
    };
    let text = match args.format {
        QueryFormat::Table => output::table(&answer)? + "\n",
        QueryFormat::Json => serde_json::to_string_pretty(&output::json(&answer)?)? + "\n",
        QueryFormat::Csv => String::from_utf8(output::csv(&answer)?)?,
    };
    print!("{text}");
    Ok(())
}

/// Sends `sql` to a server's `POST /api/query` and reads the Arrow answer.
pub async fn remote(server: &str, sql: &str) -> anyhow::Result<Answer> {
    let url = format!("{}/api/query", server.trim_end_matches('/'));
    let reply = reqwest::Client::new()
        .post(&url)
        .header("accept", crate::api::query::ARROW_STREAM)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = reply.status();
    let body = reply.bytes().await?;
    if !status.is_success() {
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = error["error"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).into_owned(),
            str::to_owned,
        );
        anyhow::bail!("{message}");
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(Answer { schema, batches })
}

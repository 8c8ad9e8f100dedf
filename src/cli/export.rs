//! `faultline export`: tables to files, for tools that read Parquet,
//! Arrow or CSV.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::query::{remote, SourceArgs};
use crate::graph::GraphSettings;
use crate::query::{output, schema, Answer};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// File format: `parquet` (zstd), `arrow` (the Arrow IPC file format,
    /// `.arrow`, readable by pyarrow, polars, DuckDB) or `csv` (with a
    /// header; histograms as hex).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Directory for the files, one per table (`edges.parquet`, …);
    /// created if missing, existing files of the same names are replaced.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only these tables (comma-separated), e.g. `--tables edges,signals`.
    /// Default: every history table, plus with --server the current graph
    /// (`graph_nodes`, `graph_edges`, `graph_paths`, everything since the
    /// server started) and the window in progress (`live_*`), or with
    /// --input `spans`, `nodes`, `edges` and `paths`.
    #[arg(long, value_name = "TABLES", value_delimiter = ',')]
    pub tables: Vec<String>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Arrow,
    Csv,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Arrow => "arrow",
            ExportFormat::Csv => "csv",
        }
    }
}

/// The tables exported when `--tables` names none.
fn default_tables(source: &SourceArgs) -> Vec<String> {
    let mut names: Vec<String> = if source.input.is_empty() {
        schema::HISTORY.iter().map(|t| t.name.to_owned()).collect()
    } else {
        ["spans", "nodes", "edges", "paths"]
            .map(String::from)
            .to_vec()
    };
    if source.server.is_some() {
        for prefix in ["graph", "live"] {
            for t in ["nodes", "edges", "paths"] {
                names.push(format!("{prefix}_{t}"));
            }
        }
        names.extend(
            [
                "live_signals",
                "live_anomalies",
                "live_hotspots",
                "live_scenarios",
            ]
            .map(String::from),
        );
    }
    names
}

/// Writes each table to `<out>/<table>.<ext>`; prints one line per file.
pub async fn run(args: ExportArgs, settings: GraphSettings) -> anyhow::Result<()> {
    let tables = if args.tables.is_empty() {
        default_tables(&args.source)
    } else {
        args.tables.clone()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let local = match &args.source.server {
        Some(_) => None,
        None => Some(args.source.engine(settings)?),
    };
    for table in &tables {
        anyhow::ensure!(
            table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{table:?} is not a table name"
        );
        let sql = format!("SELECT * FROM {table}");
        let answer = match (&local, &args.source.server) {
            (Some(engine), _) => engine.run(&sql).await?,
            (None, Some(url)) => remote(url, &sql).await?,
            (None, None) => unreachable!("a local engine exists without --server"),
        };
        let path = args
            .out
            .join(format!("{table}.{}", args.format.extension()));
        write(&path, args.format, &answer)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} rows", path.display(), answer.rows());
    }
    Ok(())
}

fn write(path: &Path, format: ExportFormat, answer: &Answer) -> anyhow::Result<()> {
    match format {
        ExportFormat::Parquet => output::parquet_file(path, answer.schema.clone(), &answer.batches),
        ExportFormat::Arrow => output::arrow_file(path, answer.schema.clone(), &answer.batches),
        ExportFormat::Csv => Ok(std::fs::write(path, output::csv(answer)?)?),
    }
}

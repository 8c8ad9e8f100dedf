//! Running one SQL query with DataFusion, read-only and bounded.
//!
//! Each query gets a fresh session: the history's directories are listed
//! at query time (so files written a second ago are seen), the live
//! window's tables are built for it, and its memory pool is its own.
//! Guards, each because a query is user input:
//! * DDL, DML, `COPY` and statements are refused at planning
//!   (DataFusion's `SQLOptions`), and no table points outside the data
//!   directory (no URL tables), so a query can neither write nor read
//!   elsewhere;
//! * spilling to disk is disabled, so an oversized sort or join fails with
//!   a resources error instead of writing temporary files;
//! * the memory pool caps what operators may hold, and a timeout drops the
//!   running plan (which cancels its tasks).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use super::schema::{Rows, TableDef, HISTORY};
use super::udf;

/// Bounds on one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The whole query, planning included.
    pub timeout: Duration,
    /// What its operators (sorts, joins, aggregations) may hold.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 512 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// DataFusion's own message: a syntax error, an unknown table or
    /// column, a refused write, a memory limit hit.
    #[error("{0}")]
    Sql(String),
    #[error("the query ran longer than {0:?} and was stopped (simplify it, or filter on window_start_ms / hour)")]
    Timeout(Duration),
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        QueryError::Sql(e.to_string())
    }
}

/// A query's answer: its columns and rows.
#[derive(Debug, Clone)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A session with faultline's functions and the tables registered so far.
pub struct Engine {
    ctx: SessionContext,
    limits: Limits,
}

impl Engine {
    pub fn new(limits: Limits) -> Result<Engine, QueryError> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(2);
        // Read strings and histograms as the types the tables declare, so
        // history and live tables look the same to a query.
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        udf::scalar_functions()
            .into_iter()
            .for_each(|f| ctx.register_udf(f));
        udf::aggregate_functions()
            .into_iter()
            .for_each(|f| ctx.register_udaf(f));
        Ok(Engine { ctx, limits })
    }

    /// Registers every history table over `<history>/<table>/hour=…/`;
    /// a table with no files yet is an empty one.
    pub fn register_history(&self, history: &Path) -> Result<(), QueryError> {
        for table in HISTORY {
            let dir = history.join(table.name);
            if dir.is_dir() {
                self.register_listing(table, &dir)?;
            } else {
                self.register_rows(table.name, &table.rows())?;
            }
        }
        Ok(())
    }

    fn register_listing(&self, table: &TableDef, dir: &Path) -> Result<(), QueryError> {
        let url = format!("{}/", dir.display());
        let url = ListingTableUrl::parse(&url)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("hour".into(), DataType::Utf8)]);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(table.schema());
        self.ctx
            .register_table(table.name, Arc::new(ListingTable::try_new(config)?))?;
        Ok(())
    }

    /// Registers rows as an in-memory table (the live window, imports).
    pub fn register_rows(&self, name: &str, rows: &Rows) -> Result<(), QueryError> {
        self.register_batches(name, rows.table.schema(), vec![rows.batch()])
    }

    pub fn register_batches(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<(), QueryError> {
        let table = MemTable::try_new(schema, vec![batches])?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Plans and runs `sql`, read-only, within the limits.
    ///
    /// The query runs on its own runtime ([`query_runtime`]); only the wait
    /// happens on the caller's. Why: DataFusion's operators are CPU-bound,
    /// and on the caller's two workers a large join could hold both, so the
    /// caller's timer (and, in `serve`, every receiver and the API) stopped
    /// until it finished: the timeout then never fired.
    pub async fn run(&self, sql: &str) -> Result<Answer, QueryError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let ctx = self.ctx.clone();
        let sql = sql.to_owned();
        let task = query_runtime().spawn(async move {
            let frame = ctx.sql_with_options(&sql, options).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok::<_, QueryError>(Answer { schema, batches })
        });
        let abort = task.abort_handle();
        match tokio::time::timeout(self.limits.timeout, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(stopped)) => Err(QueryError::Sql(format!("the query stopped: {stopped}"))),
            Err(_) => {
                // Dropping the plan at its next yield cancels its tasks.
                abort.abort();
                Err(QueryError::Timeout(self.limits.timeout))
            }
        }
    }
}

/// Threads SQL queries run on, shared by every [`Engine`] of the process
/// and started on the first query. Two, like the plans' partitions.
fn query_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("faultline-query")
            .enable_all()
            .build()
            .expect("the query runtime starts (two threads)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::schema::{Cell, EDGES};

    fn engine_with_edges() -> Engine {
        let engine = Engine::new(Limits::default()).unwrap();
        let mut rows = EDGES.rows();
        let mut row = vec![
            Cell::int(0),
            Cell::int(1000),
            Cell::text("a"),
            Cell::text("b"),
            Cell::text("rpc"),
        ];
        row.extend((0..5).map(|_| Cell::int(1)));
        row.extend((0..4).map(|_| Cell::Float(Some(1.0))));
        row.extend((0..3).map(|_| Cell::Bytes(None)));
        rows.push(row);
        engine.register_rows("edges", &rows).unwrap();
        engine
    }

    #[tokio::test]
    async fn selects_and_refuses_writes() {
        let engine = engine_with_edges();
        let answer = engine.run("SELECT source, calls FROM edges").await.unwrap();
        assert_eq!(answer.rows(), 1);
        for sql in [
            "COPY edges TO '/tmp/faultline-copy.csv'",
            "INSERT INTO edges SELECT * FROM edges",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE TABLE y AS SELECT 1",
            "DROP TABLE edges",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let err = engine.run(sql).await.unwrap_err().to_string();
            assert!(err.contains("not supported"), "{sql}: {err}");
        }
        assert!(!Path::new("/tmp/faultline-copy.csv").exists());
    }

    #[tokio::test]
    async fn a_bad_query_is_datafusions_message() {
        let engine = engine_with_edges();
        let err = engine.run("SELEC 1").await.unwrap_err().to_string();
        assert!(err.contains("SELEC"), "{err}");
        let err = engine.run("SELECT nope FROM edges").await.unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[tokio::test]
    async fn the_memory_limit_stops_a_large_sort() {
        let limits = Limits {
            memory_bytes: 1 << 20,
            ..Limits::default()
        };
        let engine = Engine::new(limits).unwrap();
        let sql = "SELECT v, repeat('x', 100) AS pad FROM generate_series(1, 2000000) AS t(v) ORDER BY pad, v DESC";
        let err = engine.run(sql).await.unwrap_err().to_string();
        assert!(
            err.contains("Resources exhausted") || err.contains("memory"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_timeout_stops_a_long_query() {
        let limits = Limits {
            timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let engine = Engine::new(limits).unwrap();
        let sql = "SELECT sum(a.value + b.value) FROM generate_series(1, 3000000) a CROSS JOIN generate_series(1, 3000000) b";
        let err = engine.run(sql).await.unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    }
}

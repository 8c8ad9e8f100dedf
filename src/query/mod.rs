//! History and SQL: Arrow tables, Parquet files, DataFusion queries.
//!
//! Data flow: the history writer ([`writer::ParquetExporter`], the pipeline's
//! `exporters.parquet`) receives every closed window and every operator
//! record, turns them into rows ([`rows`], shaped by [`schema`]) and writes
//! hourly Parquet partitions under `<data dir>/history/`, which
//! [`retention`] trims by age and size. A query ([`engine::Engine`]) sees
//! those files as tables, plus the live window ([`live`]) in a server or the
//! imported spans ([`spans`]) offline, with faultline's HDR functions
//! ([`udf`]). Answers leave through [`output`].

pub mod engine;
pub mod live;
pub mod output;
pub mod retention;
pub mod rows;
pub mod schema;
pub mod spans;
pub mod udf;
pub mod writer;

pub use engine::{Answer, Engine, Limits, QueryError};
pub use live::QueryService;
pub use writer::{history_dir, ParquetConfig, ParquetExporter};

//! The history writer: closed windows and operator records to Parquet.
//!
//! It is an exporter (`exporters.parquet` in the pipeline), so it sees the
//! same records as `jsonl` and `kafka`, plus every closed window. Nothing
//! is converted or written on the caller's thread: `export` and `window`
//! hand their input to a bounded channel and return; one writer thread
//! turns it into Arrow rows, buffers them per table and hour, and writes
//! one Parquet file per table and hour every `flush`. A full channel drops
//! (and counts) rather than slowing the span path down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;

use super::retention::{self, Policy};
use super::rows;
use super::schema::Rows;
use crate::exporters::{Exporter, Record};
use crate::graph::partial::WindowPartial;
use crate::graph::ClosedWindow;
use crate::telemetry::Telemetry;

/// `exporters.parquet` in the pipeline: history for SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// The data directory; files go to
    /// `<directory>/history/<table>/hour=YYYY-MM-DDTHH/*.parquet` (UTC).
    pub directory: PathBuf,
    /// How often buffered rows are written, e.g. `60s`. Shorter means
    /// fresher files for `faultline query --data-dir` and more, smaller
    /// files (one per table and hour per flush). `POST /api/query` flushes
    /// first, so it always sees everything.
    #[serde(
        default = "default_flush",
        deserialize_with = "crate::config::model::duration"
    )]
    pub flush: Duration,
    /// Hours that ended longer ago than this are deleted, e.g. `7d`; `0s`
    /// keeps them forever.
    #[serde(
        default = "default_max_age",
        deserialize_with = "crate::config::model::duration"
    )]
    pub max_age: Duration,
    /// Past this many MiB of history the oldest hours are deleted (never
    /// the newest); 0 means no limit.
    #[serde(default = "default_max_size")]
    pub max_size_mib: u64,
    /// Rows buffered before they are written whatever `flush` says. With
    /// tens of thousands of edges a window, a minute of rows took hundreds
    /// of MiB; this bounds that (more, smaller files instead).
    #[serde(default = "default_max_buffered_rows")]
    pub max_buffered_rows: usize,
}

fn default_flush() -> Duration {
    Duration::from_secs(60)
}

fn default_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_max_size() -> u64 {
    1024
}

fn default_max_buffered_rows() -> usize {
    262_144
}

impl ParquetConfig {
    /// The defaults a pipeline gets when it names only the directory.
    pub fn in_directory(directory: impl Into<PathBuf>) -> ParquetConfig {
        ParquetConfig {
            directory: directory.into(),
            flush: default_flush(),
            max_age: default_max_age(),
            max_size_mib: default_max_size(),
            max_buffered_rows: default_max_buffered_rows(),
        }
    }

    /// Where the tables' directories are.
    pub fn history_dir(&self) -> PathBuf {
        history_dir(&self.directory)
    }

    pub fn policy(&self) -> Policy {
        Policy {
            max_age: (!self.max_age.is_zero()).then_some(self.max_age),
            max_bytes: (self.max_size_mib > 0).then_some(self.max_size_mib << 20),
        }
    }
}

/// `<data dir>/history`.
pub fn history_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("cannot create the history directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The clock retention runs on, in ms since the epoch. Injectable, so a
/// test can be a day ahead without waiting for one.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

enum Message {
    /// A closed window, its start and end, and its entries (for `queued`).
    Window(std::sync::Arc<WindowPartial>, u64, u64, usize),
    Records(Vec<Record>),
    Flush(SyncSender<()>),
}

/// Messages waiting for the writer thread; past this, input is dropped
/// (and counted). The memory bound is [`MAX_QUEUED_ENTRIES`]; this one
/// counts messages: each closed window, and its records in chunks of 4 096
/// (about 25 messages a window at 10^5 edges), so a few windows' worth.
const QUEUE: usize = 256;

/// Entries queued for the writer: a window's nodes, edges, paths... and
/// each signal, anomaly or hotspot record. A message that would take the
/// queue past this is dropped (and counted), unless the queue is empty.
/// Why a second bound: with 10^5 edges a window holds about 40 000 entries
/// of about 300 bytes, so even 64 windows were 800 MiB once the writer fell
/// behind on a saturated core; the records evaluated from them (about half
/// a kilobyte of JSON each) had no bound at all. This keeps the queue under
/// about 100 MiB.
const MAX_QUEUED_ENTRIES: usize = 262_144;

pub struct ParquetExporter {
    tx: SyncSender<Message>,
    /// Entries of the windows and records in the queue (see
    /// [`MAX_QUEUED_ENTRIES`]).
    queued: Arc<AtomicUsize>,
    history: PathBuf,
    telemetry: Arc<Telemetry>,
}

impl ParquetExporter {
    pub fn start(config: &ParquetConfig, telemetry: Arc<Telemetry>) -> Result<Self, WriterError> {
        Self::start_with_clock(config, telemetry, Arc::new(crate::graph::now_ms))
    }

    pub fn start_with_clock(
        config: &ParquetConfig,
        telemetry: Arc<Telemetry>,
        clock: Clock,
    ) -> Result<Self, WriterError> {
        let history = config.history_dir();
        std::fs::create_dir_all(&history).map_err(|source| WriterError::Directory {
            path: history.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            queued: queued.clone(),
            history: history.clone(),
            every: config.flush.max(Duration::from_millis(10)),
            policy: config.policy(),
            clock,
            pending: BTreeMap::new(),
            pending_rows: 0,
            max_pending_rows: config.max_buffered_rows.max(1),
            telemetry: telemetry.clone(),
        };
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || {
                // Compressing and writing files can wait; ingest cannot.
                crate::background::lower_priority();
                writer.run(rx)
            })
            .map_err(|source| WriterError::Directory {
                path: history.clone(),
                source,
            })?;
        Ok(ParquetExporter {
            tx,
            queued,
            history,
            telemetry,
        })
    }

    /// `<data dir>/history`.
    pub fn history(&self) -> &Path {
        &self.history
    }

    /// Writes everything buffered now (and applies retention); waits up to
    /// `timeout`. Returns whether the writer confirmed.
    pub fn flush_now(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(ack)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).is_ok()
    }

    /// Queues `message` (`entries` of the budget [`MAX_QUEUED_ENTRIES`])
    /// for the writer, or counts `count` of `what` as dropped when the
    /// queue is full or over budget. An empty queue takes any message, so
    /// one huge window is written rather than never.
    fn queue(&self, message: Message, entries: usize, what: &'static str, count: u64) {
        let queued = self.queued.load(Ordering::Relaxed);
        if queued > 0 && queued + entries > MAX_QUEUED_ENTRIES {
            self.dropped(what, count);
            return;
        }
        self.queued.fetch_add(entries, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(message)
        {
            self.queued.fetch_sub(entries, Ordering::Relaxed);
            self.dropped(what, count);
        }
    }

    fn dropped(&self, what: &'static str, count: u64) {
        tracing::warn!(what, "history writer behind; input dropped");
        self.telemetry.export_dropped(self.name(), what, count);
    }
}

impl Exporter for ParquetExporter {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn export(&self, records: &[Record]) {
        let n = records.len();
        if n > 0 {
            let message = Message::Records(records.to_vec());
            self.queue(message, n, "records", n as u64);
        }
    }

    fn window(&self, w: &ClosedWindow) {
        let entries = w.partial.entries();
        let message = Message::Window(w.partial.clone(), w.start_ms, w.end_ms, entries);
        self.queue(message, entries, "windows", 1);
    }

    fn flush(&self, timeout: Duration) {
        if !self.flush_now(timeout) {
            tracing::warn!("history writer did not confirm its last flush");
        }
    }
}

/// The writer thread's state: rows waiting per (table, hour).
struct Writer {
    history: PathBuf,
    every: Duration,
    policy: Policy,
    clock: Clock,
    pending: BTreeMap<(&'static str, String), Vec<RecordBatch>>,
    pending_rows: usize,
    max_pending_rows: usize,
    queued: Arc<AtomicUsize>,
    telemetry: Arc<Telemetry>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Message>) {
        self.retain();
        let mut next = Instant::now() + self.every;
        loop {
            match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(Message::Window(p, start, end, entries)) => {
                    let r = rows::window(&p, start, end);
                    drop(p);
                    self.queued.fetch_sub(entries, Ordering::Relaxed);
                    [r.nodes, r.edges, r.paths]
                        .into_iter()
                        .for_each(|t| self.add(t));
                }
                Ok(Message::Records(records)) => {
                    let (n, now) = (records.len(), (self.clock)());
                    // A few at a time: rows are row-major cells (about a
                    // kilobyte per signal of a record), and a window's
                    // records at 10^5 edges made 150 MiB of them at once.
                    for chunk in records.chunks(RECORDS_PER_BATCH) {
                        rows::records(chunk, now)
                            .into_iter()
                            .for_each(|t| self.add(t));
                    }
                    drop(records);
                    self.queued.fetch_sub(n, Ordering::Relaxed);
                }
                Ok(Message::Flush(ack)) => {
                    self.flush();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
            if Instant::now() >= next || self.pending_rows >= self.max_pending_rows {
                self.flush();
                next = Instant::now() + self.every;
            }
        }
    }

    fn add(&mut self, rows: Rows) {
        if rows.is_empty() {
            return;
        }
        let table = rows.table.name;
        for (hour, part) in rows.split_by(retention::hour_of) {
            self.pending_rows += part.len();
            self.pending
                .entry((table, hour))
                .or_default()
                .push(part.batch());
        }
    }

    fn flush(&mut self) {
        self.pending_rows = 0;
        for ((table, hour), batches) in std::mem::take(&mut self.pending) {
            let dir = self.history.join(table).join(format!("hour={hour}"));
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            match write_file(&dir, &batches) {
                Ok(path) => tracing::debug!(path = %path.display(), rows, "history written"),
                Err(error) => {
                    tracing::error!(%error, "history not written");
                    self.telemetry.export_dropped("parquet", table, rows as u64);
                }
            }
        }
        self.retain();
    }

    fn retain(&self) {
        if let Err(error) = retention::enforce(&self.history, (self.clock)(), &self.policy) {
            tracing::error!(%error, dir = %self.history.display(), "history retention failed");
        }
    }
}

/// Records turned into rows and then into one Arrow batch at a time.
const RECORDS_PER_BATCH: usize = 1024;

static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `batches` (one table's rows) as one zstd-compressed Parquet file
/// in `dir`, under a temporary name first, so a reader never lists a
/// half-written file.
pub fn write_file(dir: &Path, batches: &[RecordBatch]) -> Result<PathBuf, WriterError> {
    let name = format!(
        "{}-{}-{}.parquet",
        crate::graph::now_ms(),
        std::process::id(),
        FILE_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let tmp = path.with_extension("parquet.tmp");
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| WriterError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
    let file = std::fs::File::create(&tmp).map_err(|e| fail(e.into()))?;
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(path);
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| fail(e.into()))?;
    for b in batches {
        writer.write(b).map_err(|e| fail(e.into()))?;
    }
    writer.close().map_err(|e| fail(e.into()))?;
    std::fs::rename(&tmp, &path).map_err(|e| fail(e.into()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporters::Stream;

    /// An exporter whose writer never drains its queue.
    fn stalled() -> (ParquetExporter, Receiver<Message>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let exporter = ParquetExporter {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            history: PathBuf::new(),
            telemetry: Arc::new(Telemetry::new()),
        };
        (exporter, rx)
    }

    fn records(n: usize) -> Vec<Record> {
        let r = Record::new(
            Stream::Signals,
            "edge:a->b",
            &serde_json::json!({"calls": 1}),
        );
        vec![r; n]
    }

    #[test]
    fn records_count_against_the_queue_budget() {
        let (exporter, rx) = stalled();
        let batch = MAX_QUEUED_ENTRIES / 3;
        for _ in 0..4 {
            exporter.export(&records(batch));
        }
        assert_eq!(
            exporter.queued.load(Ordering::Relaxed),
            3 * batch,
            "a fourth window's records would pass the budget"
        );
        assert_eq!(rx.try_iter().count(), 3, "only what fit was queued");
        exporter.queued.store(0, Ordering::Relaxed);
        exporter.export(&records(MAX_QUEUED_ENTRIES * 2));
        assert_eq!(rx.try_iter().count(), 1, "an empty queue takes any message");
    }

    #[test]
    fn the_writer_returns_the_budget_of_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let config = ParquetConfig::in_directory(dir.path());
        let exporter = ParquetExporter::start(&config, Arc::new(Telemetry::new())).unwrap();
        exporter.export(&records(100));
        assert!(exporter.flush_now(Duration::from_secs(10)));
        assert_eq!(exporter.queued.load(Ordering::Relaxed), 0);
    }
}

//! The JSON lines exporter: one file per stream in the data directory.
//!
//! The embedded default, so a single `faultline serve` leaves a record of
//! what it saw without any broker. Lines are appended and flushed per
//! export, so a crash loses at most the batch being written.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;

use super::{Exporter, Record, Stream};
use crate::telemetry::Telemetry;

/// `exporters.jsonl` in the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// Directory for `signals.jsonl`, `hotspots.jsonl`, …; created if missing.
    pub directory: PathBuf,
    /// A file past this size is renamed to `<stream>.jsonl.1` (replacing
    /// the previous one) and a new one is started.
    #[serde(default = "default_max_mib")]
    pub max_file_size_mib: u64,
}

fn default_max_mib() -> u64 {
    100
}

#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("cannot create the data directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct JsonlExporter {
    directory: PathBuf,
    max_bytes: u64,
    files: Mutex<HashMap<Stream, (File, u64)>>,
    telemetry: Arc<Telemetry>,
}

impl JsonlExporter {
    pub fn start(config: &JsonlConfig, telemetry: Arc<Telemetry>) -> Result<Self, JsonlError> {
        std::fs::create_dir_all(&config.directory).map_err(|source| JsonlError::Directory {
            path: config.directory.clone(),
            source,
        })?;
        Ok(JsonlExporter {
            directory: config.directory.clone(),
            max_bytes: config.max_file_size_mib.max(1) << 20,
            files: Mutex::new(HashMap::new()),
            telemetry,
        })
    }

    /// The file a stream's records go to.
    pub fn path(&self, stream: Stream) -> PathBuf {
        path_of(&self.directory, stream)
    }

    fn write(&self, stream: Stream, lines: &[u8], count: u64) -> std::io::Result<()> {
        let mut files = self.files.lock();
        if let Some((_, size)) = files.get(&stream) {
            if *size + lines.len() as u64 > self.max_bytes {
                files.remove(&stream);
                let path = self.path(stream);
                std::fs::rename(&path, path.with_extension("jsonl.1"))?;
            }
        }
        let (file, size) = match files.entry(stream) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let path = path_of(&self.directory, stream);
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                let size = file.metadata()?.len();
                e.insert((file, size))
            }
        };
        file.write_all(lines)?;
        file.flush()?;
        *size += lines.len() as u64;
        self.telemetry.exported(self.name(), stream.name(), count);
        Ok(())
    }
}

fn path_of(directory: &Path, stream: Stream) -> PathBuf {
    directory.join(format!("{}.jsonl", stream.name()))
}

impl Exporter for JsonlExporter {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn export(&self, records: &[Record]) {
        for stream in Stream::ALL {
            let mut lines = Vec::new();
            let mut count = 0;
            for r in records.iter().filter(|r| r.stream == stream) {
                lines.extend_from_slice(&r.json);
                lines.push(b'\n');
                count += 1;
            }
            if count == 0 {
                continue;
            }
            if let Err(error) = self.write(stream, &lines, count) {
                tracing::error!(%error, stream = stream.name(), dir = %self.directory.display(), "cannot write records");
                self.telemetry
                    .export_dropped(self.name(), stream.name(), count);
            }
        }
    }

    fn flush(&self, _timeout: std::time::Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_record_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let config = JsonlConfig {
            directory: dir.path().join("data"),
            max_file_size_mib: 1,
        };
        let telemetry = Arc::new(Telemetry::new());
        let e = JsonlExporter::start(&config, telemetry).unwrap();
        let r = Record::new(Stream::Signals, "edge:a->b", &serde_json::json!({"n": 1}));
        e.export(&[r.clone(), r.clone()]);
        let text = std::fs::read_to_string(e.path(Stream::Signals)).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":1}\n");
        let big = Record::new(Stream::Signals, "k", &"x".repeat(600 << 10));
        e.export(std::slice::from_ref(&big));
        e.export(&[big]);
        let rotated = e.path(Stream::Signals).with_extension("jsonl.1");
        assert!(rotated.exists(), "the first file was rotated");
        assert!(std::fs::metadata(e.path(Stream::Signals)).unwrap().len() < 1 << 20);
    }
}

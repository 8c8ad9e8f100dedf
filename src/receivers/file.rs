//! Offline import: reads exported span files and detects their format.
//!
//! Supported: OTLP JSON (one `ExportTraceServiceRequest` per file, per line,
//! or concatenated, as the SDK file exporter and the collector's `file`
//! exporter write them), Jaeger JSON (UI download and `/api/traces`), and
//! Zipkin v2 JSON. Detection reads the first bytes only, so a large file is
//! parsed once.

use std::path::Path;

use serde::Serialize;

use super::{jaeger_json, otlp_json, zipkin_json, Batch, DecodeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    OtlpJson,
    JaegerJson,
    ZipkinJson,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a known trace format (expected OTLP JSON with \"resourceSpans\", Jaeger JSON with \"data\"/\"spans\", or a Zipkin v2 JSON array)")]
    UnknownFormat { path: String },
    #[error("{path}: {format:?}: {source}")]
    Decode {
        path: String,
        format: Format,
        source: DecodeError,
    },
}

/// Guesses the format from the first few kilobytes.
pub fn detect(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('[') {
        return Some(Format::ZipkinJson);
    }
    if !trimmed.starts_with('{') {
        return None;
    }
    if text.contains("\"resourceSpans\"") || text.contains("\"resource_spans\"") {
        return Some(Format::OtlpJson);
    }
    if text.contains("\"traceID\"") || text.contains("\"processes\"") || text.contains("\"data\"") {
        return Some(Format::JaegerJson);
    }
    None
}

/// What one file gave.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub path: String,
    pub format: Format,
    pub spans: usize,
    pub rejected: u64,
    #[serde(skip)]
    pub batch: Batch,
}

/// Reads, detects and decodes one file. `progress` is told of bytes parsed.
pub fn import(path: &Path, progress: &dyn Fn(u64)) -> Result<Imported, ImportError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: name.clone(),
        source,
    })?;
    let format = detect(&bytes).ok_or_else(|| ImportError::UnknownFormat { path: name.clone() })?;
    let decoded = match format {
        Format::OtlpJson => otlp_json::decode_stream(&bytes, progress),
        Format::JaegerJson => jaeger_json::decode(&bytes),
        Format::ZipkinJson => zipkin_json::decode(&bytes),
    };
    progress(bytes.len() as u64);
    let batch = decoded.map_err(|source| ImportError::Decode {
        path: name.clone(),
        format,
        source,
    })?;
    Ok(Imported {
        path: name,
        format,
        spans: batch.spans.len(),
        rejected: batch.rejected,
        batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect(b"  {\"resourceSpans\": []}"), Some(Format::OtlpJson));
        assert_eq!(
            detect(b"{\"data\":[{\"traceID\":\"1\"}]}"),
            Some(Format::JaegerJson)
        );
        assert_eq!(detect(b"[{\"traceId\":\"1\"}]"), Some(Format::ZipkinJson));
        assert_eq!(detect(b"hello"), None);
    }
}

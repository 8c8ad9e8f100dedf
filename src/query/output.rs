//! An answer's rows in the formats people and tools read: a text table,
//! JSON rows, CSV, Arrow IPC and Parquet.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use serde::Serialize;

use super::engine::Answer;

/// The JSON answer of `POST /api/query` and `faultline query --format json`.
#[derive(Debug, Serialize)]
pub struct JsonAnswer {
    pub columns: Vec<JsonColumn>,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize)]
pub struct JsonColumn {
    pub name: String,
    /// Arrow's name of the type: `Int64`, `Float64`, `Utf8`, `Binary`, …
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Rows as JSON objects (binary columns as hex strings, NULLs kept as
/// `null`), with the column list so an empty answer still has a shape.
pub fn json(answer: &Answer) -> Result<JsonAnswer, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in &answer.batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    let rows = if buf.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&buf).map_err(|e| ArrowError::JsonError(e.to_string()))?
    };
    let columns = answer
        .schema
        .fields()
        .iter()
        .map(|f| JsonColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    Ok(JsonAnswer { columns, rows })
}

/// The Arrow IPC stream format (`application/vnd.apache.arrow.stream`).
pub fn arrow_ipc(answer: &Answer) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &answer.schema)?;
        for b in &answer.batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    Ok(buf)
}

/// CSV with a header line; histograms as hex.
pub fn csv(answer: &Answer) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in &answer.batches {
            writer.write(&binary_as_text(b, |bytes| hex::encode(bytes))?)?;
        }
    }
    Ok(buf)
}

/// A boxed text table for terminals; histograms are shown by size, since
/// their bytes mean nothing to a reader.
pub fn table(answer: &Answer) -> Result<String, ArrowError> {
    let shown: Vec<RecordBatch> = answer
        .batches
        .iter()
        .map(|b| binary_as_text(b, |bytes| format!("<{} bytes>", bytes.len())))
        .collect::<Result<_, _>>()?;
    if shown.is_empty() {
        let empty = RecordBatch::new_empty(answer.schema.clone());
        return Ok(arrow::util::pretty::pretty_format_batches(&[empty])?.to_string());
    }
    Ok(arrow::util::pretty::pretty_format_batches(&shown)?.to_string())
}

/// `batch` with every binary column replaced by `show(bytes)` text.
fn binary_as_text(
    batch: &RecordBatch,
    show: impl Fn(&[u8]) -> String,
) -> Result<RecordBatch, ArrowError> {
    use arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type() == &DataType::Binary {
            let bytes = column.as_binary::<i32>();
            let text: StringArray = (0..bytes.len())
                .map(|i| (!bytes.is_null(i)).then(|| show(bytes.value(i))))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(std::sync::Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// Writes `batches` as one zstd Parquet file at `path`.
pub fn parquet_file(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<()> {
    use parquet::basic::{Compression, ZstdLevel};
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(())
}

/// Writes `batches` as an Arrow IPC file (random access, `.arrow`).
pub fn arrow_file(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    Ok(())
}

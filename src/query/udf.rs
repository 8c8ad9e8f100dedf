//! SQL functions over HDR histograms: `hdr_quantile(hist, q)` and the
//! aggregate `hdr_merge(hist)`.
//!
//! Percentiles do not average: the p99 of an hour is not the mean of its
//! windows' p99s. The tables keep each window's histogram in the HDR V2
//! encoding, `hdr_merge` adds them bucket by bucket (exactly what the
//! graph does when the API reads several windows), and `hdr_quantile`
//! reads a quantile off the result. So
//! `hdr_quantile(hdr_merge(latency_hist), 0.99)` over a range of windows
//! is the same number `/api/graph` reports for that range.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::graph::stats::SIGNIFICANT_DIGITS;

/// The functions to register on a session.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(HdrQuantile::new()),
        ScalarUDF::from(HdrCount::new()),
    ]
}

pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![AggregateUDF::from(HdrMerge::new())]
}

fn decode(bytes: &[u8]) -> Result<Histogram<u64>> {
    match Deserializer::new().deserialize(&mut &bytes[..]) {
        Ok(h) => Ok(h),
        Err(e) => exec_err!("not an HDR histogram in the V2 encoding: {e:?}"),
    }
}

/// Histogram arguments may arrive as any binary type (Parquet readers like
/// views); they are read as plain `Binary`.
fn binary_arg(name: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary | DataType::Null => {
            Ok(DataType::Binary)
        }
        other => plan_err!("{name} takes an HDR histogram column (BINARY), not {other}"),
    }
}

/// `hdr_quantile(hist, q)`: the value at quantile `q` (0..1) of a
/// histogram, in milliseconds (faultline's histograms count microseconds).
/// NULL for a NULL or empty histogram.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HdrQuantile {
    signature: Signature,
}

impl HdrQuantile {
    pub fn new() -> Self {
        HdrQuantile {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for HdrQuantile {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for HdrQuantile {
    fn name(&self) -> &str {
        "hdr_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [hist, q] = args else {
            return plan_err!(
                "hdr_quantile(hist, q) takes 2 arguments, got {}",
                args.len()
            );
        };
        if !(q.is_numeric() || q.is_null()) {
            return plan_err!("hdr_quantile's quantile must be a number like 0.99, not {q}");
        }
        Ok(vec![binary_arg("hdr_quantile", hist)?, DataType::Float64])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let hists = arrays[0].as_binary::<i32>();
        let qs = arrays[1].as_primitive::<arrow::datatypes::Float64Type>();
        let mut out = Float64Builder::with_capacity(hists.len());
        for i in 0..hists.len() {
            if hists.is_null(i) || qs.is_null(i) || hists.value(i).is_empty() {
                out.append_null();
                continue;
            }
            let q = qs.value(i);
            if !(0.0..=1.0).contains(&q) {
                return exec_err!("hdr_quantile: the quantile must be between 0 and 1, got {q}");
            }
            let h = decode(hists.value(i))?;
            out.append_option((!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `hdr_count(hist)`: how many values a histogram holds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HdrCount {
    signature: Signature,
}

impl HdrCount {
    pub fn new() -> Self {
        HdrCount {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for HdrCount {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for HdrCount {
    fn name(&self) -> &str {
        "hdr_count"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [hist] => Ok(vec![binary_arg("hdr_count", hist)?]),
            _ => plan_err!("hdr_count(hist) takes 1 argument, got {}", args.len()),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let hists = arrays[0].as_binary::<i32>();
        let mut out = Int64Builder::with_capacity(hists.len());
        for i in 0..hists.len() {
            if hists.is_null(i) || hists.value(i).is_empty() {
                out.append_null();
            } else {
                out.append_value(decode(hists.value(i))?.len() as i64);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `hdr_merge(hist)`: the exact sum of the histograms in a group, as a
/// histogram (V2 encoding), for `hdr_quantile` or `hdr_count`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HdrMerge {
    signature: Signature,
}

impl HdrMerge {
    pub fn new() -> Self {
        HdrMerge {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for HdrMerge {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for HdrMerge {
    fn name(&self) -> &str {
        "hdr_merge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [hist] => Ok(vec![binary_arg("hdr_merge", hist)?]),
            _ => plan_err!("hdr_merge(hist) takes 1 argument, got {}", args.len()),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(MergeAccumulator::default()))
    }

    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new("hist", DataType::Binary, true))])
    }
}

/// The running sum of one group's histograms.
#[derive(Debug, Default)]
struct MergeAccumulator {
    sum: Option<Histogram<u64>>,
}

impl MergeAccumulator {
    fn add_all(&mut self, values: &ArrayRef) -> Result<()> {
        let hists = values.as_binary::<i32>();
        for i in 0..hists.len() {
            if hists.is_null(i) || hists.value(i).is_empty() {
                continue;
            }
            let h = decode(hists.value(i))?;
            let sum = self.sum.get_or_insert_with(|| {
                Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid")
            });
            if let Err(e) = sum.add(&h) {
                return exec_err!("hdr_merge: histograms do not add up: {e:?}");
            }
        }
        Ok(())
    }
}

impl Accumulator for MergeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_all(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add_all(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(h) = &self.sum else {
            return Ok(ScalarValue::Binary(None));
        };
        let mut buf = Vec::new();
        if let Err(e) = V2Serializer::new().serialize(h, &mut buf) {
            return exec_err!("hdr_merge: cannot encode the sum: {e:?}");
        }
        Ok(ScalarValue::Binary(Some(buf)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .sum
                .as_ref()
                .map_or(0, |h| h.distinct_values() * std::mem::size_of::<u64>())
    }
}

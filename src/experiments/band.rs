//! The tolerance band of a signal, from the experiment's own baseline.
//!
//! The runner samples the steady state before injecting, and judges every
//! later sample against it: a value is within tolerance when it is at most
//! `max(highest baseline value, median + 4 · scale)`, the scale being the
//! same robust one the operators use (1.4826 · MAD, floored per signal).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::operators::baseline::floor;
use crate::operators::records::SignalName;

/// How many scale units above the median still count as normal.
const Z: f64 = 4.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub median: f64,
    pub mad: f64,
    pub max: f64,
    /// Values above this are out of tolerance.
    pub upper: f64,
    pub samples: usize,
}

impl Band {
    pub fn of(signal: SignalName, values: &[f64]) -> Option<Band> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        let median = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        let mad = median_of_sorted_input(&mut dev);
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let scale = (1.4826 * mad)
            .max(floor(signal, median))
            .max(latency_floor(signal, median));
        Some(Band {
            median,
            mad,
            max,
            upper: max.max(median + Z * scale),
            samples: values.len(),
        })
    }

    pub fn holds(&self, value: f64) -> bool {
        value <= self.upper
    }
}

/// A wider floor for latencies than the operators use: an experiment's
/// baseline is short (seconds), and on a busy host a millisecond-scale p99
/// jumps by tens of milliseconds without anything being wrong. The band
/// must not call such a blip "not recovered"; a fault that matters moves
/// p99 by far more than 40 ms.
fn latency_floor(signal: SignalName, median: f64) -> f64 {
    match signal {
        SignalName::P99Ms | SignalName::QueueLagMs => (0.25 * median).max(10.0),
        _ => 0.0,
    }
}

fn median(v: &mut [f64]) -> f64 {
    median_of_sorted_input(v)
}

fn median_of_sorted_input(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Signal name text → enum, for the names records carry.
pub fn signal_name(name: &str) -> Option<SignalName> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// Bands per (key, signal) from baseline samples.
pub fn bands(samples: &BTreeMap<(String, String), Vec<f64>>) -> BTreeMap<(String, String), Band> {
    samples
        .iter()
        .filter_map(|((key, signal), values)| {
            let band = Band::of(signal_name(signal)?, values)?;
            Some(((key.clone(), signal.clone()), band))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_covers_the_baseline_and_a_margin() {
        let b = Band::of(SignalName::P99Ms, &[20.0, 22.0, 21.0, 25.0, 21.0]).unwrap();
        // median 21, MAD 1 → scale max(1.48, 2.1, 10) = 10 → 21 + 40 = 61.
        assert_eq!((b.median, b.mad, b.max), (21.0, 1.0, 25.0));
        assert!((b.upper - 61.0).abs() < 1e-9);
        assert!(b.holds(60.0) && !b.holds(800.0));
        let e = Band::of(SignalName::ErrorRate, &[0.0, 0.01, 0.0]).unwrap();
        // median 0, MAD 0 → the operators' floor 0.02 → 0.08.
        assert!((e.upper - 0.08).abs() < 1e-9);
        assert!(Band::of(SignalName::ErrorRate, &[]).is_none());
    }
}

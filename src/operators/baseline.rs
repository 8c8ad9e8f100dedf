//! Baselines: each target's signal against its own recent past.
//!
//! A robust baseline — the median and the median absolute deviation (MAD)
//! of the last N windows — is hard to drag with a few outliers, so one bad
//! window neither hides the next nor raises an alarm by itself. The robust
//! z-score is `(value − median) / (1.4826 · MAD)`, 1.4826 making MAD
//! comparable to a standard deviation. A floor on the scale per signal keeps
//! a perfectly flat history (MAD 0) from turning any wobble into infinity.
//! An EWMA is reported beside it for consumers that prefer a smooth line.

use std::collections::VecDeque;

use super::records::{Baseline, SignalName};

/// The recent values of one signal of one target.
#[derive(Debug, Clone, Default)]
pub struct History {
    values: VecDeque<f64>,
    ewma: Option<f64>,
}

/// The verdict on one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub baseline: Option<Baseline>,
    pub z: Option<f64>,
    /// One-sided: only a worse value (higher error rate, latency…) is out.
    pub within_tolerance: bool,
}

impl History {
    /// Judges `value` against the history (before adding it).
    pub fn judge(
        &self,
        signal: SignalName,
        value: f64,
        min_windows: usize,
        z_max: f64,
    ) -> Judgement {
        if self.values.len() < min_windows.max(1) {
            return Judgement {
                baseline: None,
                z: None,
                within_tolerance: true,
            };
        }
        let (median, mad) = median_mad(&self.values);
        let scale = (1.4826 * mad).max(floor(signal, median));
        let z = (value - median) / scale;
        Judgement {
            baseline: Some(Baseline {
                median,
                mad,
                ewma: self.ewma.unwrap_or(median),
                windows: self.values.len(),
            }),
            z: Some(z),
            within_tolerance: z <= z_max,
        }
    }

    /// Adds a window's value, keeping at most `keep`.
    pub fn push(&mut self, value: f64, keep: usize, alpha: f64) {
        self.values.push_back(value);
        while self.values.len() > keep.max(1) {
            self.values.pop_front();
        }
        self.ewma = Some(match self.ewma {
            Some(e) => alpha * value + (1.0 - alpha) * e,
            None => value,
        });
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The smallest deviation that counts as one unit of z, per signal: an
/// absolute floor, or 10% of the median for scale-dependent signals.
pub fn floor(signal: SignalName, median: f64) -> f64 {
    match signal {
        SignalName::ErrorRate | SignalName::TimeoutRate => 0.02,
        SignalName::P99Ms => (0.1 * median).max(1.0),
        SignalName::Retries => (0.1 * median).max(1.0),
        SignalName::RetryAmplification => 0.05,
        SignalName::QueueDepth => (0.1 * median).max(5.0),
        SignalName::QueueLagMs => (0.1 * median).max(5.0),
        SignalName::OutOfOrder => 1.0,
    }
}

fn median_mad(values: &VecDeque<f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().collect();
    let median = median_of(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    (median, median_of(&mut dev))
}

fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_by_hand() {
        let mut h = History::default();
        for v in [10.0, 12.0, 11.0, 50.0, 9.0] {
            h.push(v, 10, 0.5);
        }
        // sorted 9 10 11 12 50 → median 11; deviations 2 1 0 1 39 → MAD 1.
        let j = h.judge(SignalName::P99Ms, 16.0, 3, 4.0);
        let b = j.baseline.unwrap();
        assert_eq!((b.median, b.mad), (11.0, 1.0));
        // scale = max(1.4826, 1.1) → z = 5 / 1.4826 = 3.37: within 4.
        assert!((j.z.unwrap() - 5.0 / 1.4826).abs() < 1e-9);
        assert!(j.within_tolerance);
        let j = h.judge(SignalName::P99Ms, 30.0, 3, 4.0);
        assert!(!j.within_tolerance);
        // Better than usual is never anomalous.
        assert!(h.judge(SignalName::P99Ms, 0.0, 3, 4.0).within_tolerance);
    }

    #[test]
    fn no_baseline_until_enough_windows() {
        let mut h = History::default();
        h.push(1.0, 10, 0.5);
        let j = h.judge(SignalName::ErrorRate, 1.0, 2, 4.0);
        assert_eq!((j.baseline, j.z, j.within_tolerance), (None, None, true));
    }

    #[test]
    fn flat_history_uses_the_floor() {
        let mut h = History::default();
        for _ in 0..10 {
            h.push(0.0, 10, 0.5);
        }
        // MAD is 0; the error-rate floor (0.02) makes 5% errors z = 2.5.
        let j = h.judge(SignalName::ErrorRate, 0.05, 5, 4.0);
        assert!((j.z.unwrap() - 2.5).abs() < 1e-9);
        assert!(h.judge(SignalName::ErrorRate, 0.5, 5, 4.0).z.unwrap() > 4.0);
    }
}

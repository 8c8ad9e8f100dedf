//! `processors.operators` in the pipeline: baselines, anomaly thresholds, ranking.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorSettings {
    /// Past windows a baseline (median, MAD) is computed over.
    pub baseline_windows: usize,
    /// Windows a target needs before it has a baseline (and can be anomalous).
    pub min_baseline_windows: usize,
    /// Robust z-score past which a signal is anomalous (one-sided: worse only).
    pub z_threshold: f64,
    /// Calls (or traces, or messages) a window needs for its signals to be
    /// judged and to enter the baseline, so rare targets do not flap.
    pub min_calls: u64,
    /// Smoothing of the EWMA reported beside the median (0 < alpha <= 1).
    pub ewma_alpha: f64,
    /// Hotspots kept in the ranking.
    pub top_k: usize,
    /// Windows merged for ranking, so a hotspot does not vanish because one
    /// window was quiet (anomalies and baselines still use single windows).
    pub rank_windows: usize,
    /// Points per unit of each score component.
    pub weights: Weights,
    /// Where per-target feedback weights are stored (JSON); experiments
    /// raise them and they survive restarts. Unset: weights stay at 1.
    pub feedback_file: Option<PathBuf>,
    /// Anomaly state kept for at most this many (target, signal) pairs.
    pub max_tracked: usize,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            baseline_windows: 60,
            min_baseline_windows: 5,
            z_threshold: 4.0,
            min_calls: 10,
            ewma_alpha: 0.3,
            top_k: 10,
            rank_windows: 10,
            weights: Weights::default(),
            feedback_file: None,
            max_tracked: 50_000,
        }
    }
}

/// How many points one unit of each component is worth in a hotspot score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Per 100% errors.
    pub error_rate: f64,
    /// Per doubling of p99 over its baseline median.
    pub p99_vs_baseline: f64,
    /// Per decade of p99 in milliseconds (log10(1 + p99 ms)).
    pub tail_latency: f64,
    /// Per 100% timeouts.
    pub timeouts: f64,
    /// Per extra attempt per logical call (amplification − 1).
    pub retry_amplification: f64,
    /// Per doubling of queue lag in seconds (log2(1 + lag s)).
    pub queue_lag: f64,
    /// Per doubling of downstream nodes (log2(1 + fan-out)).
    pub fan_out: f64,
    /// Per active anomaly on the target.
    pub anomalies: f64,
    /// Multiplies a path's score: a path's risk is mostly carried by its
    /// edges already, so a path outranks its worst edge only when no single
    /// edge explains it.
    pub path_factor: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            error_rate: 10.0,
            p99_vs_baseline: 2.0,
            tail_latency: 1.0,
            timeouts: 10.0,
            retry_amplification: 5.0,
            queue_lag: 2.0,
            fan_out: 0.5,
            anomalies: 2.0,
            path_factor: 0.5,
        }
    }
}

//! The outcome of one run, as the API, Kafka and the reports carry it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::band::Band;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Baseline,
    Fault,
    Recovery,
}

/// One watched target's signals in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub window_end_ms: u64,
    pub phase: Phase,
    pub key: String,
    pub signals: BTreeMap<String, f64>,
    /// Signals above their band in this window.
    pub out_of_band: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The hypothesis held: no guardrail, within limits, recovered in time.
    Expected,
    /// Something broke; `reasons` says what, where and by how much.
    Unexpected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    First,
    Better,
    Worse,
    Same,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub run_id: String,
    pub scenario_id: String,
    pub title: String,
    pub target: String,
    pub proxy: String,
    pub started_ms: u64,
    pub fault_start_ms: u64,
    pub fault_end_ms: u64,
    pub ended_ms: u64,
    /// The steady state: a band per `key/signal`.
    pub baseline: BTreeMap<String, Band>,
    pub timeline: Vec<Point>,
    /// Set when a guardrail (or an interruption) ended the fault early.
    pub aborted: Option<String>,
    /// Fault start to the first window out of band.
    pub time_to_detect_ms: Option<u64>,
    /// Fault removal to the start of the first of K in-band windows.
    pub time_to_recover_ms: Option<u64>,
    pub recovered: bool,
    /// The worst value per `key/signal` while the fault was on.
    pub peak: BTreeMap<String, f64>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// New feedback weights per target key, when the verdict raised them.
    pub feedback: BTreeMap<String, f64>,
    /// Against the previous run of the same scenario (time to recover).
    pub trend: Trend,
}

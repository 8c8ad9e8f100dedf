//! Operators: from windows of the graph to signals, anomalies and hotspots.
//!
//! Each closed window is evaluated once, in order: [`signals`] turns it into
//! per-target values, [`baseline`] compares each with the target's own past,
//! [`anomalies`] opens and closes anomaly events, and [`ranking`] scores the
//! targets into hotspots. The results are [`records`], which the API serves
//! and exporters publish.

pub mod records;
pub mod settings;

pub use records::{AnomalyEvent, Hotspot, ScoreComponent, Signal, SignalRecord, Target};
pub use settings::{OperatorSettings, Weights};

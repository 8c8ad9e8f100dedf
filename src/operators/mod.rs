//! Operators: from windows of the graph to signals, anomalies and hotspots.
//!
//! Each closed window is evaluated once, in order: [`signals`] reads
//! per-target values off the window, [`baseline`] compares each with the
//! target's own past, [`engine`] opens and closes anomaly events, and
//! [`ranking`] scores targets into hotspots (weighted by [`feedback`]).
//! The results are [`records`], which the API serves and exporters publish.

pub mod baseline;
pub mod engine;
pub mod feedback;
pub mod live;
pub mod ranking;
pub mod records;
pub mod settings;
pub mod signals;

pub use engine::{offline_hotspots, Evaluation, Operators};
pub use feedback::Feedback;
pub use live::{Latest, Live, SharedLatest};
pub use records::{AnomalyEvent, Hotspot, ScoreComponent, Signal, SignalRecord, Target};
pub use settings::{OperatorSettings, Weights};

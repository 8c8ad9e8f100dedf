//! Experiments: run a fault against a live system and measure what it did.
//!
//! A [`plan::Plan`] names the fault (Toxiproxy toxics on a proxy), the
//! targets to watch and the hypothesis. The [`runner`] samples a baseline,
//! injects through any Toxiproxy API ([`toxiproxy`]), watches the signals
//! ([`source`]) against tolerance bands ([`band`]), removes the fault on
//! every way out ([`journal`] makes that survive a kill), times recovery
//! and writes the verdict ([`result`], [`report`]). Unexpected verdicts
//! raise the touched targets' feedback weights, which the next ranking reads.

pub mod band;
pub mod from_scenario;
pub mod journal;
pub mod plan;
pub mod report;
pub mod result;
pub mod runner;
pub mod service;
pub mod source;
pub mod toxiproxy;

pub use plan::{Plan, RunSettings};
pub use result::{ExperimentResult, Verdict};
pub use runner::{RunError, Runner};

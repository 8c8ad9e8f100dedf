//! faultline: finds the failures that live between services.
//!
//! A span's way through the crate reads top to bottom:
//! [`receivers`] decode OTLP and exported files into the shared [`model`];
//! [`graph`] pairs spans across service boundaries and aggregates them in
//! windows; [`operators`] judge each closed window; [`exporters`] and the
//! Parquet history in [`query`] keep what they saw, which SQL reads back;
//! [`api`] serves the graph; [`config`] wires it all from one
//! pipeline YAML file; [`cli`] holds the user's jobs.

pub mod api;
pub mod background;
pub mod cli;
pub mod config;
pub mod demo;
pub mod experiments;
pub mod exporters;
pub mod faultproxy;
pub mod graph;
pub mod loadgen;
pub mod memory_limiter;
pub mod model;
pub mod operators;
pub mod query;
pub mod receivers;
pub mod scenarios;
pub mod telemetry;

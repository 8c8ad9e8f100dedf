//! Every integration test, in one test binary.
//!
//! Each file under `tests/` is a module here rather than a binary of its
//! own: each binary links datafusion, arrow and rdkafka (about 290 MB
//! unoptimized), so 25 of them took about 7 GB of disk and a link each.
//! `cargo test --test integration <module>::` runs one file's tests.

mod common;

mod cli;
mod conformance;
mod demo;
mod demo_no_ui;
mod demo_shop;
mod experiments;
mod fast_decoder;
mod faultproxy;
mod grpc_gzip;
mod history;
mod import_formats;
mod kafka;
mod kafka_pipeline;
mod loadgen;
mod memory_limiter;
mod operators;
mod python_sdk;
mod receivers;
mod rust_sdk;
mod scenarios;
mod trace_signals;
mod web_page;

//! The user's jobs, one file each. `main.rs` only parses arguments.

pub mod analyze;
pub mod demo;
pub mod experiment;
pub mod export;
pub mod loadgen;
pub mod proxy;
pub mod query;
pub mod scenarios;
pub mod serve;
mod table;

//! The user's jobs, one file each. `main.rs` only parses arguments.

pub mod analyze;
pub mod loadgen;
pub mod serve;
mod table;
